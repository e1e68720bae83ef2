"""The one reconciler of the backends' data (dataplane/backends): a node namespace holds exactly
the routes its backend and the plan give it, over one netlink socket opened inside it.

The backends compute; this applies, idempotently: what is there and wanted stays, what is
wanted and missing is made, what is lab-made and no longer wanted goes (a node that left takes
its routes with it). Routes with a gateway in the main table are all the lab's (a node
namespace has nothing else); connected routes belong to the kernel.
"""
from __future__ import annotations

from typing import Iterable

from kubenet_lab.dataplane.backends.base import Route
from kubenet_lab.errors import LabError
from kubenet_lab.kernel import rtnl


def _index(nl: rtnl.Rtnl, name: str) -> int:
    found = nl.link(name=name)
    if found is None:
        raise LabError(f"no link {name} for the routes through it")
    return found["index"]


def ensure_routes(nl: rtnl.Rtnl, routes: Iterable[Route]) -> None:
    """Routes via a gateway in the main table are exactly `routes` (no default route)."""
    indexes: dict[str, int] = {}
    wanted = {}
    for r in routes:
        if r.dev not in indexes:
            indexes[r.dev] = _index(nl, r.dev)
        wanted[r.dst] = (r.via, indexes[r.dev])
    have = set()
    stale = []
    for route in map(rtnl.route_info, nl.query(rtnl.route_dump())):
        if route.table != rtnl.MAIN_TABLE or route.gateway is None:
            continue  # connected routes belong to the kernel
        if wanted.get(route.dst) == (route.gateway, route.oif):
            have.add(route.dst)
        elif route.dst not in wanted or wanted[route.dst][1] != route.oif:
            stale.append(rtnl.route_del(route.dst, route.gateway))
    nl.batch(stale + [rtnl.route_add(dst, via, oif, replace=True)
                      for dst, (via, oif) in wanted.items() if dst not in have])
