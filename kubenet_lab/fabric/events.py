"""The lab's Events on disk: /run/kubenet-lab/<lab>/events.jsonl, one JSON line per event with
the time it happened. Commands (a change's controllers and scheduler) and the supervisor (the
kubelet side) both append, each under a lock on the file itself, so neither waits for the lab's
lock. Kept to the last MAX_LINES, as the API server keeps events for an hour only."""
from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import time
from typing import Iterable

from ..model.objects import Event
from . import state

EVENTS_FILE = "events.jsonl"
MAX_LINES = 5000


def events_path(lab: str) -> str:
    return os.path.join(state.state_dir(lab), EVENTS_FILE)


def record(lab: str, events: Iterable[Event], now: float | None = None) -> None:
    """Append `events`, all at `now` (default: this moment). Nothing when the lab has no state."""
    events = list(events)
    if not events or not os.path.isdir(state.state_dir(lab)):
        return
    when = time.time() if now is None else now
    text = "".join(json.dumps({"time": when, **dataclasses.asdict(e)}, separators=(",", ":")) + "\n" for e in events)
    fd = os.open(events_path(lab), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, text.encode())
        if os.fstat(fd).st_size > MAX_LINES * 400:
            _trim(lab)
    finally:
        os.close(fd)


def _trim(lab: str) -> None:
    path = events_path(lab)
    with open(path) as f:
        lines = f.readlines()[-MAX_LINES // 2:]
    state.write_atomic(path, "".join(lines))


def read(lab: str, since: int = 0, mentioning: str | None = None) -> tuple[list[tuple[float, Event]], int]:
    """The events recorded from byte offset `since` on, each with its time; and the offset to
    read from next time (`get events -w` follows the file this way). With `mentioning`, only
    lines that contain that text are decoded (among them every event about an object of that
    name): `describe` reads one object's events from a big lab's thousands."""
    try:
        with open(events_path(lab), "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < since:  # trimmed meanwhile: start again
                since = 0
            f.seek(since)
            data = f.read()
    except FileNotFoundError:
        return [], 0
    end = data.rfind(b"\n") + 1  # a line being written is read next time
    out = []
    if mentioning is None:
        lines = data[:end].decode(errors="replace").splitlines()
    else:  # looked for in the bytes: the other lines are not even decoded
        needle = mentioning.encode()
        lines = [line.decode(errors="replace") for line in data[:end].split(b"\n") if needle in line]
    for line in lines:
        try:
            obj = json.loads(line)
            when = float(obj.pop("time"))
            out.append((when, Event(**obj)))
        except (ValueError, TypeError, KeyError):
            continue
    return out, since + end
