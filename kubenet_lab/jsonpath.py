"""kubectl's JSONPath templates (`-o jsonpath=...`, `-o custom-columns=...`), in pure Python.

The dialect is the one of k8s.io/client-go/util/jsonpath, which kubectl uses, not RFC 9535:

- a template is text with actions in braces: `names: {.items[*].metadata.name}`; `$` and `@`
  (the current object) are optional; `{range EXPR}...{end}` repeats its body for each result;
  quoted text inside an action is a literal with Go escapes (`{"\\t"}`, `{'\\n'}`);
- `.field` (a backslash escapes a dot: `.kubernetes\\.io/hostname`), `..field` recursive
  descent, `*` / `[*]` every element, `[i]`, `[start:end:step]` (negative indices count from
  the end but do not wrap), `['key']`, unions `[a,b]`, filters `[?(@.name=="http")]` with
  == != < > <= >= and a bare `[?(@.field)]` for "has it";
- the results of one action are joined by a single space; maps and lists print as compact
  JSON (keys sorted, as Go's encoder writes them), strings as they are, null as `<nil>`;
- a missing key gives nothing when missing keys are allowed (kubectl's default,
  --allow-missing-template-keys=true) and the error `KEY is not found` otherwise; an index
  out of range is an error either way.

Errors are `JSONPathError`, with client-go's messages. The object handed in must be plain JSON
data (dict, list, str, int, float, bool, None), as kubectl hands over the object's JSON.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Sequence


class JSONPathError(ValueError):
    """A template that does not parse, or one that fails on the data it is given.

    `partial` is what the failing step left behind (client-go returns it with the error): an
    existence filter `[?(@.x)]` keeps an element when that is not empty."""

    def __init__(self, message: str, partial: list | None = None):
        super().__init__(message)
        self.partial = partial or []


# ------------------------------------------------------------------------------------------
# The parsed template
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """Literal text, outside an action or quoted inside one."""
    text: str


@dataclass(frozen=True)
class Field:
    name: str


@dataclass(frozen=True)
class Wildcard:
    pass


@dataclass(frozen=True)
class Recursive:
    pass


@dataclass(frozen=True)
class Slice:
    """`[start:end:step]`; `[i]` is start=i with a derived end of i+1."""
    start: int | None
    end: int | None
    step: int | None
    end_derived: bool = False


@dataclass(frozen=True)
class Union:
    branches: tuple[tuple, ...]


@dataclass(frozen=True)
class Filter:
    left: tuple
    op: str  # "exists" for [?(@.x)]
    right: tuple


@dataclass(frozen=True)
class Const:
    """A number or a boolean inside an action: one copy per current value."""
    value: Any


@dataclass(frozen=True)
class Identifier:
    """`range`, `end`; anything else fails when executed."""
    name: str


@dataclass(frozen=True)
class Action:
    nodes: tuple


Segment = Text | Action

_TERMINATORS = set(" \t\r\n.,[]$@{}")
_DICT_KEY = re.compile(r"^'([^']*)'$")
_SLICE = re.compile(r"^(-?[0-9]*)(:-?[0-9]*)?(:-?[0-9]*)?$")
_FILTER = re.compile(r"^([^!<>=]+)([!<>=]+)(.+?)$")


def _is_word(ch: str) -> bool:
    return ch == "_" or ch.isalpha() or ch.isdecimal()


def _go_rune(ch: str) -> str:
    """Go's %#U: U+0023 '#'."""
    return f"U+{ord(ch):04X} '{ch}'" if ch.isprintable() else f"U+{ord(ch):04X}"


class _Parser:
    def __init__(self, text: str):
        self.s = text
        self.pos = 0

    def parse(self) -> list[Segment]:
        segments: list[Segment] = []
        while self.pos < len(self.s):
            brace = self.s.find("{", self.pos)
            if brace < 0:
                segments.append(Text(self.s[self.pos:]))
                break
            if brace > self.pos:
                segments.append(Text(self.s[self.pos:brace]))
            self.pos = brace + 1
            segments.append(Action(tuple(self._action())))
        return segments

    def _peek(self, n: int = 1) -> str:
        return self.s[self.pos:self.pos + n]

    def _action(self) -> list:
        """The nodes of one action, up to and past its closing brace."""
        nodes: list = []
        while True:
            if self._peek() == "}":
                self.pos += 1
                return nodes
            if self._peek(3) == "[?(":
                nodes.append(self._filter())
                continue
            if self._peek(2) == "..":
                if nodes and isinstance(nodes[-1], Recursive):
                    raise JSONPathError("invalid multiple recursive descent")
                self.pos += 2
                nodes.append(Recursive())
                if self.pos < len(self.s) and _is_word(self.s[self.pos]):
                    nodes.append(self._field())
                continue
            if self.pos >= len(self.s) or self.s[self.pos] in "\r\n":
                raise JSONPathError("unclosed action")
            ch = self.s[self.pos]
            if ch in " @$":
                self.pos += 1
            elif ch == "[":
                self.pos += 1
                nodes.extend(self._brackets())
            elif ch in "\"'":
                nodes.append(self._quoted(ch))
            elif ch == ".":
                self.pos += 1
                nodes.append(self._field())
            elif ch in "+-" or ch.isdecimal():
                nodes.append(self._number())
            elif _is_word(ch):
                nodes.append(self._identifier())
            else:
                raise JSONPathError(f"unrecognized character in action: {_go_rune(ch)}")

    def _field(self):
        start = self.pos
        while self.pos < len(self.s):
            ch = self.s[self.pos]
            if ch == "\\":
                self.pos += 2
                continue
            if ch in _TERMINATORS:
                break
            self.pos += 1
        self.pos = min(self.pos, len(self.s))
        name = self.s[start:self.pos]
        return Wildcard() if name == "*" else Field(name.replace("\\", ""))

    def _identifier(self):
        start = self.pos
        while self.pos < len(self.s) and self.s[self.pos] not in _TERMINATORS:
            self.pos += 1
        word = self.s[start:self.pos]
        return Const(word == "true") if word in ("true", "false") else Identifier(word)

    def _number(self):
        start = self.pos
        if self.s[self.pos] in "+-":
            self.pos += 1
        while self.pos < len(self.s) and (self.s[self.pos] == "." or self.s[self.pos].isdecimal()):
            self.pos += 1
        text = self.s[start:self.pos]
        if text.isascii():
            if re.fullmatch(r"[+-]?[0-9]+", text) and abs(int(text)) < 2 ** 63:
                return Const(int(text))
            if re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)", text):
                return Const(float(text))
        raise JSONPathError(f"cannot parse number {text}")

    def _quoted(self, quote: str) -> Text:
        start = self.pos
        self.pos += 1
        while True:
            if self.pos >= len(self.s) or self.s[self.pos] == "\n":
                raise JSONPathError("unterminated quoted string")
            ch = self.s[self.pos]
            self.pos += 1
            if ch == quote and self.s[self.pos - 2] != "\\":
                break
        raw = self.s[start:self.pos]
        try:
            return Text(_unquote(raw))
        except ValueError:
            raise JSONPathError(f"unquote string {raw} error invalid syntax") from None

    def _brackets(self) -> list:
        """After `[`: an index or slice, `*`, a 'key', or a union `a,b`."""
        end = self.pos
        while True:
            if end >= len(self.s) or self.s[end] == "\n":
                raise JSONPathError("unterminated array")
            if self.s[end] == "]":
                break
            end += 1
        text, self.pos = self.s[self.pos:end], end + 1
        if text == "*":
            text = ":"
        parts = text.split(",")
        if len(parts) > 1:
            return [Union(tuple(tuple(_sub_action(f"[{p.strip(' ')}]")) for p in parts))]
        if m := _DICT_KEY.match(text):
            return _sub_action("." + m.group(1))
        m = _SLICE.match(text)
        if not m:
            raise JSONPathError(f"invalid array index {text}")
        values = [m.group(1) or "", (m.group(2) or "")[1:], (m.group(3) or "")[1:]]
        present = [m.group(1) not in (None, ""), m.group(2) is not None, m.group(3) is not None]

        def number(v: str) -> int:
            try:
                return int(v)
            except ValueError:
                raise JSONPathError(f"array index {v} is not a number") from None

        start = number(values[0]) if present[0] else None
        if present[1]:
            end_value, derived = (number(values[1]) if values[1] else None), False
        else:
            end_value, derived = (start or 0) + 1, True
        step = number(values[2]) if present[2] and values[2] else None
        return [Slice(start, end_value, step, derived)]

    def _filter(self) -> Filter:
        self.pos += 3
        start = self.pos
        opened = closed = False
        pair = ""
        while True:
            if self.pos >= len(self.s) or self.s[self.pos] == "\n":
                raise JSONPathError("unterminated filter")
            ch = self.s[self.pos]
            self.pos += 1
            if ch in "\"'":
                if not opened:
                    opened, pair = True, ch
                elif ch == pair and self.s[self.pos - 2] != "\\":
                    closed = True
            elif ch == ")" and opened == closed:
                break
        if self._peek() != "]":
            raise JSONPathError("unclosed array expect ]")
        self.pos += 1
        text = self.s[start:self.pos - 2]
        m = _FILTER.match(text)
        if not m:
            return Filter(tuple(_sub_action(text)), "exists", ())
        return Filter(tuple(_sub_action(m.group(1))), m.group(2), tuple(_sub_action(m.group(3))))


def _sub_action(text: str) -> list:
    """The nodes of `{text}`: brackets, filters and unions are parsed as actions of their own."""
    segments = _Parser("{" + text + "}").parse()
    return list(segments[0].nodes) if segments and isinstance(segments[0], Action) else []


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def _unquote(raw: str) -> str:
    """Go's strconv.Unquote, for single- as well as double-quoted strings (ValueError when
    it is not valid); \\x and octal escapes are bytes, as in Go."""
    quote, body = raw[0], raw[1:-1]
    if len(raw) < 2 or raw[-1] != quote:
        raise ValueError(raw)
    out, i = bytearray(), 0
    while i < len(body):
        ch = body[i]
        if ch == quote:
            raise ValueError(raw)
        if ch != "\\":
            out += ch.encode()
            i += 1
            continue
        if i + 1 >= len(body):
            raise ValueError(raw)
        esc = body[i + 1]
        i += 2
        if esc in _ESCAPES:
            out += _ESCAPES[esc].encode()
        elif esc in "'\"":
            if esc != quote:
                raise ValueError(raw)
            out += esc.encode()
        elif esc in "xuU":
            n = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i:i + n]
            if len(digits) != n or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                raise ValueError(raw)
            code = int(digits, 16)
            if esc == "x":
                out.append(code)
            elif code > 0x10FFFF or 0xD800 <= code < 0xE000:
                raise ValueError(raw)
            else:
                out += chr(code).encode()
            i += n
        elif esc in "01234567":
            digits = body[i - 1:i + 2]
            if not re.fullmatch(r"[0-7]{3}", digits) or int(digits, 8) > 255:
                raise ValueError(raw)
            out.append(int(digits, 8))
            i += 2
        else:
            raise ValueError(raw)
    return out.decode(errors="replace")


def parse(template: str) -> "JSONPath":
    """Parse a template; JSONPathError with client-go's message when it does not parse."""
    return JSONPath(template, tuple(_Parser(template).parse()))


# ------------------------------------------------------------------------------------------
# Execution
# ------------------------------------------------------------------------------------------


def _go_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int64"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, list):
        return "[]interface {}"
    return "<nil>"


def _children(v: Any) -> list:
    """What `*` yields: a map's values (in key order), a list's elements, a string's bytes."""
    if isinstance(v, dict):
        return [v[k] for k in sorted(v)]
    if isinstance(v, list):
        return list(v)
    if isinstance(v, str):
        return list(v.encode())
    return []


def _kind(v: Any) -> str | None:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return None


def _compare(left: Any, op: str, right: Any) -> bool:
    """Go text/template's eq/ne/lt/le/gt/ge: both sides of one basic kind."""
    kl, kr = _kind(left), _kind(right)
    if kl is None or kr is None:
        raise JSONPathError("invalid type for comparison")
    if kl != kr:
        raise JSONPathError("incompatible types for comparison")
    if op in ("==", "!="):
        return (left == right) == (op == "==")
    if kl == "bool":
        raise JSONPathError("invalid type for comparison")
    return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op]


@dataclass
class _State:
    allow_missing: bool
    begin_range: int = 0
    in_range: int = 0
    end_range: int = 0
    last_end: int | None = None


@dataclass(frozen=True)
class JSONPath:
    template: str
    segments: tuple[Segment, ...] = field(repr=False)

    def find_results(self, data: Any, allow_missing_keys: bool = True) -> list[list[Any]]:
        """One list of values per text segment and action, as client-go's FindResults."""
        return self._find(data, 0, _State(allow_missing_keys))

    def execute(self, data: Any, allow_missing_keys: bool = True) -> str:
        return "".join(" ".join(text(v) for v in group)
                       for group in self.find_results(data, allow_missing_keys))

    def execute_as_json(self, data: Any, allow_missing_keys: bool = True) -> str:
        """`-o jsonpath-as-json`: each group of results as an indented JSON array."""
        return "".join(go_json(group, indent=4) + "\n" for group in self.find_results(data, allow_missing_keys))

    # A template is a flat sequence; `{range}` and `{end}` are found as it is walked, as
    # client-go walks it: a range runs the segments after it once per value until its end
    # (or to the end of the template), and the walk resumes after that end.
    def _find(self, data: Any, start: int, st: _State) -> list[list[Any]]:
        current = [data]
        full: list[list[Any]] = []
        i = start
        while i < len(self.segments):
            seg = self.segments[i]
            results = [seg.text] if isinstance(seg, Text) else _walk(current, seg.nodes, st)
            if 0 < st.end_range <= st.in_range:
                st.end_range -= 1
                st.last_end = i
                break
            if st.begin_range > 0:
                st.begin_range -= 1
                st.in_range += 1
                if results:
                    for value in results:
                        full.extend(self._find(value, i + 1, st))
                else:
                    self._find(None, i + 1, st)
                st.in_range -= 1
                if st.last_end is not None and st.last_end > i:
                    i = st.last_end
                i += 1
                continue
            full.append(results)
            i += 1
        return full


def _walk(values: list, nodes: Sequence, st: _State) -> list:
    for node in nodes:
        values = _step(values, node, st)
    return values


def _step(values: list, node: Any, st: _State) -> list:
    if isinstance(node, Text):
        return [node.text]
    if isinstance(node, Const):
        return [node.value for _ in values]
    if isinstance(node, Field):
        if not values:
            return []
        found = [v[node.name] for v in values if isinstance(v, dict) and node.name in v]
        if not found and not st.allow_missing:
            raise JSONPathError(f"{node.name} is not found", [])
        return found
    if isinstance(node, Slice):
        return _slice(values, node)
    if isinstance(node, Wildcard):
        return [c for v in values for c in _children(v)]
    if isinstance(node, Recursive):
        out: list = []
        for v in values:
            kids = _children(v)
            if kids:
                out.append(v)
                out.extend(_step(kids, node, st))
        return out
    if isinstance(node, Union):
        return [r for branch in node.branches for r in _walk(values, branch, st)]
    if isinstance(node, Filter):
        return _filter(values, node, st)
    if isinstance(node, Identifier):
        if node.name == "range":
            st.begin_range += 1
            return values
        if node.name == "end":
            if st.in_range <= 0:
                raise JSONPathError("not in range, nothing to end", [])
            st.end_range += 1
            return []
        raise JSONPathError(f"unrecognized identifier {node.name}", values)
    raise JSONPathError(f"unexpected Node {node}")


def _slice(values: list, node: Slice) -> list:
    try:
        return _slice_values(values, node)
    except JSONPathError as e:
        raise JSONPathError(str(e), values) from None


def _slice_values(values: list, node: Slice) -> list:
    out: list = []
    for v in values:
        if v is None:
            continue
        if not isinstance(v, list):
            raise JSONPathError(f"{_go_type(v)} is not array or slice")
        n = len(v)
        start = node.start if node.start is not None else 0
        if start < 0:
            start += n
        end = node.end if node.end is not None else n
        if end < 0 or (end == 0 and node.end_derived):
            end += n
        if end == start:
            return out
        if start >= n or start < 0:
            raise JSONPathError(f"array index out of bounds: index {start}, length {n}")
        if end > n or end < 0:
            raise JSONPathError(f"array index out of bounds: index {end - 1}, length {n}")
        if start > end:
            raise JSONPathError(f"starting index {start} is greater than ending index {end}")
        step = 1
        if node.step is not None:
            if node.step <= 0:
                raise JSONPathError("step must be > 0")
            step = node.step
        out.extend(v[start:end:step])
    return out


def _filter(values: list, node: Filter, st: _State) -> list:
    out: list = []
    for v in values:
        if not isinstance(v, list):
            shown = "<invalid reflect.Value>" if v is None else go_sprint(v)
            raise JSONPathError(f"{shown} is not array or slice and cannot be filtered", values)
        for item in v:
            if node.op == "exists":
                try:
                    found = _walk([item], node.left, st)
                except JSONPathError as e:
                    found = e.partial
                if found:
                    out.append(item)
                continue
            lefts = _walk([item], node.left, st)
            if not lefts:
                continue
            if len(lefts) > 1:
                raise JSONPathError("can only compare one element at a time")
            rights = _walk([item], node.right, st)
            if not rights:
                continue
            if len(rights) > 1:
                raise JSONPathError("can only compare one element at a time")
            if node.op not in ("==", "!=", "<", ">", "<=", ">="):
                raise JSONPathError(f"unrecognized filter operator {node.op}", out)
            if _compare(lefts[0], node.op, rights[0]):
                out.append(item)
    return out


# ------------------------------------------------------------------------------------------
# How Go prints values
# ------------------------------------------------------------------------------------------


def _float_text(f: float, low: int, high: int) -> str:
    """Shortest round-trip digits, in exponent form when the exponent is below `low` or at
    least `high` (Go: %v uses -4 and 6, encoding/json -6 and 21 with e-7 rather than e-07)."""
    sign, digits, exp = Decimal(repr(f)).normalize().as_tuple()
    mantissa = "".join(map(str, digits))
    point = len(mantissa) + exp  # digits before the decimal point
    x = point - 1
    neg = "-" if sign else ""
    if x < low or x >= high:
        frac = mantissa[1:]
        return f"{neg}{mantissa[0]}{'.' + frac if frac else ''}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if point <= 0:
        return f"{neg}0.{'0' * -point}{mantissa}"
    if point >= len(mantissa):
        return neg + mantissa + "0" * (point - len(mantissa))
    return f"{neg}{mantissa[:point]}.{mantissa[point:]}"


def go_float(f: float) -> str:
    """fmt's %v of a float64: 8.95, 1e+06, 1e-05."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    return _float_text(f, -4, 6)


def _json_float(f: float) -> str:
    """encoding/json's float64: 1000000, 1e+21, 1e-7."""
    if math.isnan(f) or math.isinf(f):
        raise JSONPathError(f"json: unsupported value: {go_float(f)}")
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    return re.sub(r"e-0(\d)$", r"e-\1", _float_text(f, -6, 21))


def _json_string(s: str) -> str:
    out = json.dumps(s, ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        out = out.replace(ch, esc)
    return out


def go_json(v: Any, indent: int = 0, level: int = 0) -> str:
    """encoding/json's Marshal (indent 0) or MarshalIndent: map keys sorted, HTML escaped."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _json_float(v)
    if isinstance(v, str):
        return _json_string(v)
    if isinstance(v, (list, tuple)):
        items = [go_json(x, indent, level + 1) for x in v]
        return _wrap("[", "]", items, indent, level)
    if isinstance(v, dict):
        sep = ": " if indent else ":"
        items = [_json_string(str(k)) + sep + go_json(v[k], indent, level + 1) for k in sorted(v)]
        return _wrap("{", "}", items, indent, level)
    raise JSONPathError(f"json: unsupported type: {type(v).__name__}")


def _wrap(open_: str, close: str, items: list[str], indent: int, level: int) -> str:
    if not items:
        return open_ + close
    if not indent:
        return open_ + ",".join(items) + close
    inner, outer = " " * indent * (level + 1), " " * indent * level
    return open_ + "\n" + ",\n".join(inner + i for i in items) + "\n" + outer + close


def text(v: Any) -> str:
    """How a result prints: maps and lists as compact JSON, the rest as Go prints it."""
    if isinstance(v, (dict, list)):
        return go_json(v)
    return go_sprint(v)


def go_sprint(v: Any) -> str:
    """fmt's %v of decoded JSON (what custom-columns prints): map[a:1 b:[x y]], <nil>."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_sprint(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(go_sprint(x) for x in v) + "]"
    return str(v)


# ------------------------------------------------------------------------------------------
# custom-columns
# ------------------------------------------------------------------------------------------

_RELAXED = re.compile(r"^\{\.?([^{}]+)\}$|^\.?([^{}]+)$")


def relaxed(expr: str) -> str:
    """A custom-columns field spec as kubectl takes it: `metadata.name`, `.metadata.name`,
    `{metadata.name}` and `{.metadata.name}` all become `{.metadata.name}`."""
    if not expr:
        return expr
    m = _RELAXED.match(expr)
    if not m:
        raise JSONPathError("unexpected path string, expected a 'name1.name2' or '.name1.name2' or "
                            "'{name1.name2}' or '{.name1.name2}'")
    return "{." + (m.group(1) or m.group(2)) + "}"


@dataclass(frozen=True)
class Column:
    header: str
    path: JSONPath


def custom_columns(spec: str) -> list[Column]:
    """`NAME:.metadata.name,IP:.status.podIP` -> columns; JSONPathError as kubectl words it."""
    if not spec:
        raise JSONPathError("custom-columns format specified but no custom columns given")
    columns = []
    for part in spec.split(","):
        header, sep, expr = part.partition(":")
        if not sep:
            raise JSONPathError(f"unexpected custom-columns spec: {part}, expected <header>:<json-path-expr>")
        columns.append(Column(header, parse(relaxed(expr))))
    return columns


def column_value(column: Column, obj: Any) -> str:
    """One cell: every result, comma-separated; `<none>` when there is none."""
    groups = column.path.find_results(obj, allow_missing_keys=True)
    cells = ["<none>"] if not groups or not groups[0] else []
    cells += [go_sprint(v) for group in groups for v in group]
    return ",".join(cells)
