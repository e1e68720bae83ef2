"""What kube-proxy's health servers on a node know (pure): the Services it answers health checks
for, on which port, and how many local endpoints each has.

kube-proxy opens a service health server (pkg/proxy/healthcheck/service_health.go) for every
Service with a healthCheckNodePort: the API server gives one to a LoadBalancer with
externalTrafficPolicy Local (ServicePortMap.HealthCheckNodePorts). It counts a Service's local
endpoints as EndpointsMap.LocalReadyEndpoints does: the ready endpoints whose nodeName is this
node, counted once per address over all the Service's ports (10.0.0.1:80 and 10.0.0.1:443 are one
endpoint), terminating ones not at all, so a node whose only endpoints are terminating fails the
check. The node's own health server answers on 10256 (`--healthz-bind-address`'s default port).
"""
from __future__ import annotations

from dataclasses import dataclass

from kubenet_lab.model.objects import Plan, PlannedService

NODE_HEALTHZ_PORT = 10256


@dataclass(frozen=True)
class ServiceHealth:
    """One Service's health check on one node."""

    namespace: str
    name: str
    port: int  # healthCheckNodePort
    local_endpoints: int


def has_health_check(svc: PlannedService) -> bool:
    """Whether kube-proxy serves a health check for `svc` (a NodePort to listen on, as the API
    server allocates it only for a LoadBalancer with externalTrafficPolicy Local)."""
    return (svc.type == "LoadBalancer" and svc.external_traffic_policy == "Local"
            and bool(svc.health_check_node_port))


def local_ready_endpoints(svc: PlannedService, node: str) -> int:
    """The number of distinct ready endpoint addresses of `svc` on node `node`."""
    return len({ep.ip for port in svc.ports for ep in port.endpoints if ep.ready and ep.node == node})


def service_health(plan: Plan, node: str) -> tuple[ServiceHealth, ...]:
    """The health checks node `node` answers, in the plan's Service order. `plan` as the rules
    see it (endpoints of pods not ready marked so: plan.services.with_readiness)."""
    return tuple(ServiceHealth(svc.namespace, svc.name, int(svc.health_check_node_port or 0),
                               local_ready_endpoints(svc, node))
                 for svc in plan.services if has_health_check(svc))
