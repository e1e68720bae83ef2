"""How nodes reach each other's pods: one small module per backend behind one interface
(base.py), chosen by the Cluster config's networking.backend."""
from __future__ import annotations

from types import ModuleType

from ...model.objects import Plan, PlannedNode
from . import hostgw
from .base import NodeNetwork, Route

BACKENDS: dict[str, ModuleType] = {m.NAME: m for m in (hostgw,)}


def node_network(plan: Plan, node: PlannedNode) -> NodeNetwork:
    """What `node`'s namespace holds for the pod network under the plan's backend."""
    return BACKENDS["host-gw"].node_network(plan.cluster, plan.nodes, node)


def node_routes(plan: Plan, node: PlannedNode) -> tuple[Route, ...]:
    """Every route the node holds: the backend's, then those via the underlay's router."""
    return node_network(plan, node).routes + tuple(Route(dst, via) for dst, via in node.routes)
