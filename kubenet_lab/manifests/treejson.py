"""A loaded YAML document (LMap/LList with the line of every entry) to JSON-able data and back,
so that the objects a lab holds can be kept on disk and checked again later with the messages
pointing where they were first written."""
from __future__ import annotations

import datetime
from typing import Any

from .fields import LList, LMap


def encode(value: Any) -> Any:
    if isinstance(value, LMap):
        return {"m": [[encode(k), value.lines.get(k, value.line), encode(v)] for k, v in value.items()],
                "l": value.line}
    if isinstance(value, LList):
        return {"a": [encode(v) for v in value], "l": value.line, "ls": list(value.lines)}
    if isinstance(value, dict):  # a plain map made by an edit (scale, label)
        return {"m": [[encode(k), 0, encode(v)] for k, v in value.items()], "l": 0}
    if isinstance(value, list):
        return {"a": [encode(v) for v in value], "l": 0, "ls": [0] * len(value)}
    if isinstance(value, datetime.datetime):
        return {"dt": value.isoformat()}
    if isinstance(value, datetime.date):
        return {"d": value.isoformat()}
    if isinstance(value, bytes):
        return {"b": value.decode("latin-1")}
    return value


def decode(data: Any, line: int = 0) -> Any:
    if isinstance(data, dict):
        if "m" in data:
            out = LMap(data.get("l") or line)
            for key, key_line, value in data["m"]:
                k = decode(key)
                out[k] = decode(value, key_line or out.line)
                out.lines[k] = key_line or out.line
            return out
        if "a" in data:
            out_list = LList(data.get("l") or line)
            lines = data.get("ls") or [0] * len(data["a"])
            for value, item_line in zip(data["a"], lines):
                out_list.append(decode(value, item_line or out_list.line))
                out_list.lines.append(item_line or out_list.line)
            return out_list
        if "dt" in data:
            return datetime.datetime.fromisoformat(data["dt"])
        if "d" in data:
            return datetime.date.fromisoformat(data["d"])
        if "b" in data:
            return data["b"].encode("latin-1")
    return data
