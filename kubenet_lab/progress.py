"""A status line on the terminal while a command works: `up fsx: pods created [8/16] 1.4s`.

On standard error, and only when it is a terminal (a pipe, a file, a test's capture get nothing)
and the command was not told to be quiet (-q). One line, rewritten in place and cleared at the
end, so what the command then prints (its summary line, kubectl's lines) stands alone. The
changes (up, apply, delete, scale) say where they are by the steps they pass (kernel/steps.py);
`check` counts what it has probed. The formatting functions are pure.
"""
from __future__ import annotations

import os
import sys
from typing import TextIO

# What a change has done once it reaches each of its steps (kernel.steps.STEPS, in order).
STEP_DONE = {
    "locked": "planning",
    "intent-recorded": "planned",
    "stale-left-endpoints": "old pods out of their Services",
    "stale-stopped": "old pods stopped",
    "stale-deleted": "old pods removed",
    "supervisor-launched": "building nodes",
    "nodes-built": "nodes built",
    "pods-created": "pods created",
    "rules-loaded": "rules loaded",
    "objects-saved": "objects saved",
    "plan-saved": "plan saved",
    "supervisor-running": "supervisor running",
    "supervisor-reloaded": "containers started",
    "ready-pods-joined": "new pods in their Services",
    "left-deleted": "removed pods gone",
    "intent-cleared": "change complete",
    "events-recorded": "events recorded",
}


def step_line(verb: str, lab: str, step: str, steps: tuple[str, ...], seconds: float) -> str:
    """`up fsx: pods created [8/16] 1.4s`: the step reached, its place among `steps`."""
    place = f" [{steps.index(step) + 1}/{len(steps)}]" if step in steps else ""
    return f"{verb} {lab}: {STEP_DONE.get(step, step)}{place} {seconds:.1f}s"


def fit(line: str, width: int) -> str:
    """The line cut to the terminal's width (less one column): a line that wraps cannot be
    rewritten in place."""
    if width <= 1 or len(line) < width:
        return line
    return line[:max(0, width - 2)] + "…"


def on_terminal(quiet: bool, stream: TextIO | None = None) -> bool:
    """Whether to show progress: not quiet, and standard error is a terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return not quiet and stream.isatty()
    except (AttributeError, ValueError):
        return False


class Status:
    """The status line. The cursor stays at the line's start, so that anything else written to
    standard error meanwhile (`waiting for lab ...: another command holds its lock`) covers it
    instead of running on after it. Never fails the command: a terminal gone is ignored."""

    def __init__(self, show: bool, stream: TextIO | None = None):
        self.show = show
        self.stream = sys.stderr if stream is None else stream
        self.shown = False

    def update(self, line: str) -> None:
        if not self.show:
            return
        try:
            width = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            width = 80
        self._write(f"\r\033[K{fit(line, width)}\r")
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self._write("\r\033[K")
            self.shown = False

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.show = False

    def __enter__(self) -> "Status":
        return self

    def __exit__(self, *exc) -> None:
        self.clear()
