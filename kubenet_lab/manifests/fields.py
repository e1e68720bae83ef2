"""A small declarative type system for manifest fields, with located error messages.

Every check reports through an `At` (file, line, field path) into one `Sink`, so validation
never stops at the first problem: the user sees everything that is wrong in one run. A field
that fails its check becomes `INVALID`; an object holding an invalid field becomes `INVALID`
too, which keeps the cross-field checks (`post`) from reporting follow-on noise.
"""
from __future__ import annotations

import difflib
from typing import Any, Callable, Mapping

from ..model.objects import Origin

class _Marker:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


INVALID: Any = _Marker("INVALID")  # a value that failed its check (the problem is reported)
_IGNORED: Any = _Marker("IGNORED")  # a value accepted and dropped


class Invalid(ValueError):
    """Raised by a parse function: the message says what was expected."""


class LMap(dict):
    """A YAML mapping that remembers the line of each key (and keys written twice)."""

    def __init__(self, line: int):
        super().__init__()
        self.line = line
        self.lines: dict[Any, int] = {}
        self.repeated: list[tuple[Any, int, int]] = []  # (key, its later line, the first line)


class LList(list):
    """A YAML sequence that remembers the line of each item."""

    def __init__(self, line: int):
        super().__init__()
        self.line = line
        self.lines: list[int] = []


def field_lines(value: Any, prefix: str = "") -> dict[str, int]:
    """Every field's path (as messages write it: `spec.ports[0].nodePort`) -> its line."""
    out: dict[str, int] = {}
    if isinstance(value, LMap):
        for key, child in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            out[path] = value.lines.get(key, value.line)
            out.update(field_lines(child, path))
    elif isinstance(value, LList):
        for i, child in enumerate(value):
            path = f"{prefix}[{i}]"
            out[path] = value.lines[i] if i < len(value.lines) else value.line
            out.update(field_lines(child, path))
    return out


def plain(value: Any) -> Any:
    """The same data without line bookkeeping: what a JSON decoder would have produced."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


class Sink:
    """Collects problems and warnings, reported in file order, then line order, each once; and
    notes: facts a field check found that only the whole input can judge (a nodeName)."""

    def __init__(self) -> None:
        self._files: dict[str, int] = {}
        self._problems: list[tuple[int, int, int, str]] = []
        self._warnings: list[tuple[int, int, int, str]] = []
        self.notes: dict[str, list[tuple[At, Any]]] = {}

    def note(self, topic: str, at: At, value: Any) -> None:
        self.notes.setdefault(topic, []).append((at, value))

    def register(self, file: str) -> None:
        """Files are reported in the order they were read, whichever had a problem first."""
        self._files.setdefault(file, len(self._files))

    def _key(self, file: str, line: int) -> tuple[int, int, int]:
        index = self._files.setdefault(file, len(self._files))
        return index, line, len(self._problems) + len(self._warnings)

    def problem(self, file: str, line: int | None, text: str) -> None:
        where = f"{file}:{line}" if line else file
        self._problems.append((*self._key(file, line or 0), f"{where}: {text}"))

    def warn(self, file: str, line: int | None, text: str) -> None:
        where = f"{file}:{line}" if line else file
        self._warnings.append((*self._key(file, line or 0), f"{where}: {text}"))

    @property
    def count(self) -> int:
        return len(self._problems)

    @staticmethod
    def _ordered(entries: list[tuple[int, int, int, str]]) -> list[str]:
        seen: set[str] = set()
        out = []
        for *_, text in sorted(entries):
            if text not in seen:
                seen.add(text)
                out.append(text)
        return out

    @property
    def problems(self) -> list[str]:
        return self._ordered(self._problems)

    @property
    def warnings(self) -> list[str]:
        return self._ordered(self._warnings)


class At:
    """A place in a manifest: where a message about a field points."""

    __slots__ = ("sink", "file", "line", "path")

    def __init__(self, sink: Sink, file: str, line: int, path: str = ""):
        self.sink, self.file, self.line, self.path = sink, file, line, path

    def __repr__(self) -> str:
        return f"At({self.file}:{self.line}: {self.path})"

    def child(self, key: Any, line: int | None = None) -> At:
        path = f"{self.path}.{key}" if self.path else str(key)
        return At(self.sink, self.file, line or self.line, path)

    def item(self, index: int, line: int | None = None) -> At:
        return At(self.sink, self.file, line or self.line, f"{self.path}[{index}]")

    def error(self, message: str) -> Any:
        self.sink.problem(self.file, self.line, f"{self.path}: {message}" if self.path else message)
        return INVALID

    def warn(self, message: str) -> None:
        self.sink.warn(self.file, self.line, f"{self.path}: {message}" if self.path else message)

    @property
    def origin(self) -> Origin:
        return Origin(self.file, self.line)


def describe(value: Any) -> str:
    """A value as the user wrote it, for `got ...`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a map"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return str(value)


def did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Checked(dict):
    """A validated object: its fields (converted), and where each one was written."""

    def __init__(self, here: At):
        super().__init__()
        self.here = here
        self.ats: dict[str, At] = {}

    def at(self, key: str) -> At:
        return self.ats.get(key) or self.here.child(key)


class Type:
    def convert(self, value: Any, at: At) -> Any:
        raise NotImplementedError


class Ignore(Type):
    """A field real manifests carry that the lab has no use for: accepted as it is."""

    def __init__(self, warning: str | None = None):
        self.warning = warning

    def convert(self, value: Any, at: At) -> Any:
        if self.warning:
            at.warn(self.warning)
        return _IGNORED


IGNORE = Ignore()


class Str(Type):
    def __init__(self, parse: Callable[[str], Any] | None = None):
        self.parse = parse

    def convert(self, value: Any, at: At) -> Any:
        if not isinstance(value, str):
            return at.error(f"expected a string, got {describe(value)}")
        if self.parse is None:
            return value
        try:
            return self.parse(value)
        except Invalid as e:
            return at.error(str(e))


class Int(Type):
    def __init__(self, low: int | None = None, high: int | None = None):
        self.low, self.high = low, high

    def convert(self, value: Any, at: At) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            return at.error(f"expected an integer, got {describe(value)}")
        if self.high is None and self.low is not None and value < self.low:
            return at.error(f"Invalid value: {value}: must be greater than or equal to {self.low}")
        if self.high is not None and not self.low <= value <= self.high:  # type: ignore[operator]
            return at.error(f"Invalid value: {value}: must be between {self.low} and {self.high}, inclusive")
        return value


class Bool(Type):
    def convert(self, value: Any, at: At) -> Any:
        if not isinstance(value, bool):
            return at.error(f"expected true or false, got {describe(value)}")
        return value


class OneOf(Type):
    """A string from a fixed set; `refused` maps known-but-unsupported values to an explanation."""

    def __init__(self, *choices: str, refused: Mapping[str, str] | None = None):
        self.choices = choices
        self.refused = dict(refused or {})

    def convert(self, value: Any, at: At) -> Any:
        if not isinstance(value, str):
            return at.error(f"expected a string, got {describe(value)}")
        if value in self.choices:
            return value
        if value in self.refused:
            return at.error(self.refused[value])
        return at.error(f"expected one of {', '.join(self.choices)}, got {describe(value)}")


class Either(Type):
    """An int-or-string field (intstr.IntOrString): the YAML type decides which branch checks it."""

    def __init__(self, number: Type, text: Type):
        self.number, self.text = number, text

    def convert(self, value: Any, at: At) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return self.number.convert(value, at)
        if isinstance(value, str):
            return self.text.convert(value, at)
        return at.error(f"expected an integer or a string, got {describe(value)}")


class Noted(Type):
    """A field checked here and noted in the sink for a check across all objects (a nodeName)."""

    def __init__(self, topic: str, kind: Type):
        self.topic, self.kind = topic, kind

    def convert(self, value: Any, at: At) -> Any:
        converted = self.kind.convert(value, at)
        if converted is not INVALID:
            at.sink.note(self.topic, at, converted)
        return converted


class ListOf(Type):
    def __init__(self, item: Type, at_least: int = 0, what: str = "item"):
        self.item, self.at_least, self.what = item, at_least, what

    def convert(self, value: Any, at: At) -> Any:
        if not isinstance(value, list):
            return at.error(f"expected a list, got {describe(value)}")
        if len(value) < self.at_least:
            return at.error(f"at least {self.at_least} {self.what} required")
        lines = getattr(value, "lines", [])
        out = []
        for i, v in enumerate(value):
            item_at = at.item(i, lines[i] if i < len(lines) else None)
            if v is None:
                out.append(item_at.error("expected a value, got null"))
            else:
                out.append(self.item.convert(v, item_at))
        return INVALID if any(v is INVALID for v in out) else out


class MapOf(Type):
    """A map of string keys to values (labels, selectors); messages name the key."""

    def __init__(self, key: Callable[[str], Any], value: Callable[[str], Any]):
        self.key, self.value = key, value

    def convert(self, value: Any, at: At) -> Any:
        if not isinstance(value, dict):
            return at.error(f"expected a map, got {describe(value)}")
        lines = getattr(value, "lines", {})
        out: dict[str, str] = {}
        ok = _no_repeats(value, at, fields=False)
        for k, v in value.items():
            entry = At(at.sink, at.file, lines.get(k, at.line), at.path)
            ok = _entry(self.key, k, "key", entry, prefix=False) and ok
            ok = _entry(self.value, v, f"value of {describe(k)}", entry) and ok
            out[k] = v
        return out if ok else INVALID


def _no_repeats(value: Any, at: At, fields: bool) -> bool:
    """A key written twice: YAML keeps the last silently, Kubernetes refuses it (strict decoding)."""
    repeated = getattr(value, "repeated", ())
    for key, line, first in repeated:
        if fields:
            at.child(key, line).error(f"given twice (first at line {first})")
        else:
            At(at.sink, at.file, line, at.path).error(f"key {describe(key)} given twice (first at line {first})")
    return not repeated


def _entry(parse: Callable[[str], Any], value: Any, what: str, at: At, prefix: bool = True) -> bool:
    if not isinstance(value, str):
        at.error(f"{what} {describe(value)}: expected a string" if not prefix else
                 f"{what}: expected a string, got {describe(value)}")
        return False
    try:
        parse(value)
    except Invalid as e:
        at.error(f"{what}: {e}" if prefix else str(e))
        return False
    return True


class Obj(Type):
    """A map with known fields. Unknown fields are errors with a did-you-mean hint; null means
    absent, as in the Kubernetes API; `post` checks fields against each other once all are valid."""

    def __init__(self, fields: Mapping[str, Type], required: tuple[str, ...] = (),
                 post: Callable[[Checked], None] | None = None):
        self.fields, self.required, self.post = dict(fields), required, post

    def convert(self, value: Any, at: At) -> Any:
        if not isinstance(value, dict):
            return at.error(f"expected a map, got {describe(value)}")
        lines = getattr(value, "lines", {})
        out = Checked(at)
        ok = _no_repeats(value, at, fields=True)
        for key, v in value.items():
            key_at = at.child(key, lines.get(key))
            out.ats[str(key)] = key_at
            kind = self.fields.get(key) if isinstance(key, str) else None
            if kind is None:
                key_at.error(f"unknown field{did_you_mean(str(key), self.fields)}")
                ok = False
                continue
            if v is None:
                continue
            converted = kind.convert(v, key_at)
            if converted is INVALID:
                ok = False
            elif converted is not _IGNORED:
                out[key] = converted
        for key in self.required:
            if value.get(key) is None:
                at.child(key).error("required field is missing")
                ok = False
        if not ok:
            return INVALID
        if self.post:
            self.post(out)
        return out
