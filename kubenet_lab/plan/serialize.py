"""Plan <-> plain JSON-able data, driven by the dataclasses' type hints.

The plan is saved as readable JSON (addresses as strings, tuples as lists) so two plans can be
diffed with ordinary tools; decoding rebuilds the exact frozen dataclasses.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Mapping

from . import model

# Dataclasses that appear as members of a Union are tagged with their class name.
_TAG = "kind"


def to_data(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        out = {f.name: to_data(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        if type(obj).__name__.startswith("Run"):
            out[_TAG] = type(obj).__name__
        return out
    if isinstance(obj, (IPv4Address, IPv4Network)):
        return str(obj)
    if isinstance(obj, Mapping):
        return {str(k): to_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_data(v) for v in obj]
    return obj


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, vars(model))


def from_data(tp: Any, data: Any) -> Any:
    if data is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        if isinstance(data, dict) and _TAG in data:
            cls = getattr(model, data[_TAG])
            return from_data(cls, {k: v for k, v in data.items() if k != _TAG})
        for member in members:
            try:
                return from_data(member, data)
            except (TypeError, ValueError):
                continue
        raise ValueError(f"cannot decode {data!r} as {tp}")
    if dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        return tp(**{k: from_data(hints[k], v) for k, v in data.items() if k in hints})
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_data(args[0], v) for v in data)
        return tuple(from_data(a, v) for a, v in zip(args, data))
    if origin in (Mapping, dict, typing.Mapping) or tp in (Mapping, dict):
        args = typing.get_args(tp)
        vt = args[1] if len(args) == 2 else Any
        return {k: from_data(vt, v) for k, v in data.items()}
    if tp is IPv4Address:
        return IPv4Address(data)
    if tp is IPv4Network:
        return IPv4Network(data)
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise TypeError(data)
        return data
    if tp is str:
        if not isinstance(data, str):
            raise TypeError(data)
        return data
    if tp is bool:
        if not isinstance(data, bool):
            raise TypeError(data)
        return data
    return data


def plan_to_data(plan: model.Plan) -> dict:
    return to_data(plan)


def plan_from_data(data: dict) -> model.Plan:
    return from_data(model.Plan, data)
