"""Plan <-> plain JSON-able data, driven by the dataclasses' type hints.

The plan is saved as readable JSON (addresses as strings, tuples as lists) so two plans can be
diffed with ordinary tools; decoding rebuilds the exact frozen dataclasses.
"""
from __future__ import annotations

import collections.abc
import dataclasses
import json
import types
import typing
from functools import cache
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Callable, Iterable, Mapping

from ..model import objects as model

# Dataclasses that appear as members of a Union are tagged with their class name.
_TAG = "kind"


_PLAIN = (str, int, bool, float, type(None))


@cache
def _fields(cls: type) -> tuple[tuple[str, ...], bool]:
    """A dataclass's field names, and whether it is tagged (a member of a Union)."""
    return tuple(f.name for f in dataclasses.fields(cls)), cls.__name__.startswith("Run")


def to_data(obj: Any) -> Any:
    """Plain JSON-able data: dataclasses as maps (a Union member tagged with its class), addresses
    as strings. A frozen dataclass met again (a template's PodSpec shared by every replica) is
    converted once per call."""
    return _convert(obj, {})


def _convert(obj: Any, memo: dict[int, Any]) -> Any:
    kind: type = type(obj)
    if kind in _PLAIN:
        return obj
    names = _dataclass_fields(kind)
    if names is not None:
        key = id(obj)
        if key in memo:
            return memo[key][1]
        out = {name: _convert(getattr(obj, name), memo) for name in names[0]}
        if names[1]:
            out[_TAG] = kind.__name__
        memo[key] = (obj, out)  # the object is kept so that its id is not reused meanwhile
        return out
    if kind in (IPv4Address, IPv4Network):
        return str(obj)
    if kind in (list, tuple):
        return [_convert(v, memo) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): _convert(v, memo) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_convert(v, memo) for v in obj]
    return obj


@cache
def _dataclass_fields(kind: type) -> tuple[tuple[str, ...], bool] | None:
    return _fields(kind) if dataclasses.is_dataclass(kind) else None


@cache
def _hints(cls: type) -> dict[str, Any]:
    """A dataclass's field types: its annotations (text, `from __future__ import annotations`)
    evaluated in the model's namespace. What typing.get_type_hints gives for the model's classes
    (tests/unit/test_fast_reads.py), at an eighth of its cost: every command that reads the plan
    pays it."""
    return {f.name: _annotation(f.type) if isinstance(f.type, str) else f.type for f in dataclasses.fields(cls)}


@cache
def _annotation(text: str) -> Any:
    return eval(text, vars(model))  # noqa: S307 (the model's own annotations)


def from_data(tp: Any, data: Any) -> Any:
    return _decoder(tp)(data)


def _checked(tp: type) -> Callable[[Any], Any]:
    def decode(data: Any) -> Any:
        if not isinstance(data, tp) or (tp is int and isinstance(data, bool)):
            raise TypeError(data)
        return data
    return decode


def _nullable(decode: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda data: None if data is None else decode(data)


@cache
def _decoder(tp: Any) -> Callable[[Any], Any]:
    """A decoding function for type `tp`, built once per type (a plan has thousands of values)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(tp) if a is not type(None)]

        def union(data: Any) -> Any:
            if isinstance(data, dict) and _TAG in data:
                return _decoder(getattr(model, data[_TAG]))({k: v for k, v in data.items() if k != _TAG})
            for member in members:
                try:
                    return _decoder(member)(data)
                except (TypeError, ValueError):
                    continue
            raise ValueError(f"cannot decode {data!r} as {tp}")
        return _nullable(union)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        fields: dict[str, Callable[[Any], Any]] = {}

        def record(data: Any) -> Any:
            if not fields:  # filled on first use: a dataclass may refer to one not decodable yet
                fields.update({k: _decoder(h) for k, h in _hints(tp).items()})
            return tp(**{k: fields[k](v) for k, v in data.items() if k in fields})
        return _nullable(record)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _decoder(args[0])
            return _nullable(lambda data: tuple(item(v) for v in data))
        return _nullable(lambda data: tuple(_decoder(a)(v) for a, v in zip(args, data)))
    if origin in (Mapping, dict, typing.Mapping, collections.abc.Mapping) or tp in (Mapping, dict):
        args = typing.get_args(tp)
        value = _decoder(args[1] if len(args) == 2 else Any)
        return _nullable(lambda data: {k: value(v) for k, v in data.items()})
    if tp in (IPv4Address, IPv4Network):
        return _nullable(tp)
    if tp in (int, str, bool):
        return _nullable(_checked(tp))
    return lambda data: data


def plan_to_data(plan: model.Plan) -> dict[str, Any]:
    data: dict[str, Any] = to_data(plan)
    return data


def plan_text(data: dict[str, Any]) -> str:
    """The plan's data as JSON with each pod on a line of its own (the rest of the plan on the
    first line, `]}` on the last): one JSON document, which a reader that keeps what it decoded
    reads again a pod at a time (split_plan_text), and whose diff names the pods that changed."""
    return _text(data, (json.dumps(p, separators=(",", ":")) for p in data.get("pods", ())))


def plan_text_of(plan: model.Plan, known: Mapping[str, tuple[model.PlannedPod, str]]) -> str:
    """plan_text(plan_to_data(plan)), with the line of each pod equal to the one `known` holds
    under its key (pod key -> (pod, its line), as a kept plan read it) taken as it is: comparing
    two pods costs a tenth of writing one."""
    memo: dict[int, Any] = {}

    def line(pod: model.PlannedPod) -> str:
        same = known.get(pod.key)
        if same is not None and same[0] == pod:
            return same[1]
        return json.dumps(_convert(pod, memo), separators=(",", ":"))

    return _text(_convert(dataclasses.replace(plan, pods=()), memo), (line(pod) for pod in plan.pods))


def _text(data: dict[str, Any], pod_lines: Iterable[str]) -> str:
    """plan_text's layout: `data` but its pods on the first line, then a pod a line."""
    rest = {k: v for k, v in data.items() if k != "pods"}
    head = json.dumps(rest, separators=(",", ":"))[:-1] + ("," if rest else "")
    pods = ",\n".join(pod_lines)
    return f'{head}"pods":[\n{pods}\n]}}'


def split_plan_text(text: str) -> tuple[str, list[str]] | None:
    """(the plan without its pods, as JSON; each pod's JSON) of a plan_text; None for a plan
    written otherwise (decode it whole)."""
    lines = text.split("\n")
    if len(lines) < 3 or not lines[0].endswith('"pods":[') or lines[-1] != "]}":
        return None
    return lines[0] + lines[-1], [line.removesuffix(",") for line in lines[1:-1] if line]


def plan_from_data(data: dict[str, Any]) -> model.Plan:
    plan: model.Plan = from_data(model.Plan, data)
    return plan
