"""The named steps of a change at which the kernel and the lab's state on disk may disagree.

A change (up, apply, delete, scale) passes through each in turn and calls `step(name)` there.
The crash tests stop a command at every one of them: when the environment variable
KUBENET_LAB_TEST_STOP_AT names the step, the process SIGKILLs itself on the spot, as a crash or
`kill -9` would stop it. Nothing else reads the variable; unset, `step` costs one lookup.
The CLI's progress line follows the steps too (`listening`).
"""
from __future__ import annotations

import contextlib
import os
import signal
from typing import Callable, Iterator

STOP_AT_ENV = "KUBENET_LAB_TEST_STOP_AT"

# In the order a change passes them.
STEPS = (
    "locked",                  # the lab's lock taken, nothing read yet
    "intent-recorded",         # the namespaces about to be made (or remade) are written down
    "stale-left-endpoints",    # pods to be made anew in place have left every node's rules
    "stale-stopped",           # the supervisor has stopped them (an interim plan saved)
    "stale-deleted",           # their namespaces deleted
    "supervisor-launched",     # a supervisor started (when none ran), not waited for
    "nodes-built",             # underlay, nodes and the outside namespaces in place
    "pods-created",            # the new pods' namespaces made and wired
    "rules-loaded",            # every node's rules and the balancer's loaded (when pods go as new
                               # ones come, their one load is at ready-pods-joined instead)
    "objects-saved",           # the objects the lab is to hold written
    "plan-saved",              # the plan written
    "supervisor-running",      # the supervisor answers
    "supervisor-reloaded",     # it runs the plan's containers (and stopped the pods that go, unless they
                               # go as new ones come: then those run on until the next step)
    "ready-pods-joined",       # the pods made anew that run are in every node's rules (and the pods
                               # that go as they come are out, and stopped)
    "left-deleted",            # the namespaces of the pods that went deleted
    "intent-cleared",          # the intent journal removed: the change is complete
    "events-recorded",         # the change's events appended
)


_listeners: list[Callable[[str], None]] = []


@contextlib.contextmanager
def listening(listener: Callable[[str], None]) -> Iterator[None]:
    """Within the block, `listener(name)` is called at every step passed (a progress line)."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


def step(name: str) -> None:
    """Mark reaching step `name` (one of STEPS): stop dead here when the tests ask for it."""
    for listener in _listeners:
        listener(name)
    if os.environ.get(STOP_AT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
