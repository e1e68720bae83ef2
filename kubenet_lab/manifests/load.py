"""Reading manifests: paths -> texts -> YAML documents with the line of every field -> `Model`.

Only safe YAML loading: a `SafeLoader` whose maps and lists remember where each entry was
written, so that every message can say `file:line: field.path: what is wrong`.
"""
from __future__ import annotations

import os
import sys
from dataclasses import replace
from typing import Any, Iterable, Iterator, TextIO

import yaml

from ..errors import InputError
from ..model.objects import Model
from .build import Builder
from .fields import At, LList, LMap, Sink

STDIN = "<stdin>"
_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"


_STR = "tag:yaml.org,2002:str"


class _Loader(_BASE):  # type: ignore[misc, valid-type]
    """The safe loader; documents are composed (in C when available) and then built by `_Build`."""


class _Build:
    """Nodes -> LMap/LList/scalars. Maps and lists are built here, with the line of each entry;
    scalars other than strings go through the safe constructor (ints, booleans, nulls, dates)."""

    def __init__(self, loader: _Loader):
        self.loader = loader
        self.done: dict[int, Any] = {}
        self.open: set[int] = set()

    def __call__(self, node: yaml.Node) -> Any:
        key = id(node)
        if key in self.done:
            return self.done[key]
        if key in self.open:
            raise yaml.constructor.ConstructorError(None, None, "a recursive alias cannot be loaded",
                                                    node.start_mark)
        self.open.add(key)
        if isinstance(node, yaml.MappingNode):
            value: Any = self._map(node)
        elif isinstance(node, yaml.SequenceNode):
            value = LList(node.start_mark.line + 1)
            for child in node.value:
                value.append(self(child))
                value.lines.append(child.start_mark.line + 1)
        elif node.tag == _STR:
            value = node.value
        else:
            value = self.loader.construct_object(node, deep=True)
        self.open.discard(key)
        self.done[key] = value
        return value

    def _map(self, node: yaml.MappingNode) -> LMap:
        own = sum(1 for key, _ in node.value if key.tag != _MERGE)
        self.loader.flatten_mapping(node)  # `<<: *anchor` entries first; the map's own keys may override them
        merged = len(node.value) - own
        out = LMap(node.start_mark.line + 1)
        own_lines: dict[Any, int] = {}
        for index, (key_node, value_node) in enumerate(node.value):
            key = self(key_node)
            if isinstance(key, (dict, list)):
                raise yaml.constructor.ConstructorError(
                    None, None, "a map key must be a plain value, not a map or a list", key_node.start_mark)
            line = key_node.start_mark.line + 1
            if index >= merged:
                if key in own_lines:
                    out.repeated.append((key, line, own_lines[key]))
                own_lines[key] = line
            out[key] = self(value_node)
            out.lines[key] = line
        return out


def read_documents(text: str, file: str, sink: Sink) -> Iterator[tuple[Any, At]]:
    """Every document of one YAML stream with the place it starts; a syntax error ends the
    stream with a problem (the documents before it still count)."""
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            yield _Build(loader)(node), At(sink, file, node.start_mark.line + 1)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        detail = e.problem or e.context or "invalid YAML"
        if e.context and e.problem and e.context_mark is not None:
            detail += f" ({e.context} at line {e.context_mark.line + 1})"
        sink.problem(file, mark.line + 1 if mark else None, f"invalid YAML: {detail}")
    except yaml.YAMLError as e:
        sink.problem(file, None, f"invalid YAML: {e}")
    finally:
        loader.dispose()


def _read(path: str, sink: Sink) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError:
        sink.problem(path, None, "not a UTF-8 text file")
    except OSError as e:
        sink.problem(path, None, f"cannot read: {e.strerror}")
    return None


def read_sources(paths: list[str], stdin: TextIO | None, sink: Sink) -> Iterator[tuple[str, str]]:
    """(name as the user gave it, text) for each file, directory entry and `-`, in order."""
    for path in paths:
        if path == "-":
            sink.register(STDIN)
            yield STDIN, (stdin or sys.stdin).read()
            continue
        if os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if n.endswith((".yaml", ".yml"))
                           and os.path.isfile(os.path.join(path, n)))
            if not names:
                sink.problem(path, None, "no *.yaml or *.yml files in this directory")
            files = [os.path.join(path, n) for n in names]
        else:
            files = [path]
        for file in files:
            sink.register(file)
            text = _read(file, sink)
            if text is not None:
                yield file, text


def read_docs(paths: list[str], stdin: TextIO | None, sink: Sink) -> list[tuple[Any, At]]:
    """Every document of every path, in order, with its place (read problems go to `sink`)."""
    return [doc for file, text in read_sources(paths, stdin, sink) for doc in read_documents(text, file, sink)]


def model_of(docs: Iterable[tuple[Any, At]], sink: Sink) -> Model:
    """The validated model of `docs`; raises InputError listing every problem (those already in
    `sink` too) at once."""
    builder = Builder(sink)
    for data, at in docs:
        builder.document(data, at)
    model = builder.model()
    if sink.problems:
        raise InputError(sink.problems)
    return replace(model, warnings=tuple(sink.warnings))


def load_model(paths: list[str], stdin: TextIO | None = None) -> Model:
    """Every object of every path, validated; raises InputError listing all problems at once."""
    sink = Sink()
    return model_of(read_docs(paths, stdin, sink), sink)
