"""The functional core: Model -> Plan (pure; imports nothing of the project but the model).

`make_plan` is imported on first use: a verb that only reads a plan (get, exec) imports a
module of this room (naming, ordering, ...) without the whole planner."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .cluster import make_plan

__all__ = ["make_plan"]


def __getattr__(name: str) -> object:
    if name == "make_plan":
        from .cluster import make_plan

        return make_plan
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
