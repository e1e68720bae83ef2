"""kube-proxy's health servers on the wire: what a node answers on a Service's
healthCheckNodePort and on its own health port (10256), as kube-proxy answers (v1.33,
pkg/proxy/healthcheck: service_health.go's hcHandler, proxy_health.go's healthzHandler and
livezHandler).

A health check port answers any method and path: 200 while the node has a local ready endpoint
of the Service, 503 with none, with the JSON body kube-proxy writes (tab-indented, no final
newline) and its headers (application/json, `X-Content-Type-Options: nosniff`, and the
endpoint count in `X-Load-Balancing-Endpoint-Weight` for balancers that weigh by it). The node's
port answers `/healthz` and `/livez` with kube-proxy's ProxyHealth as json.Marshal writes it
(fields in its struct's order, times as RFC 3339 with nanoseconds, "lastUpdated" the current
time while healthy, as kube-proxy reports it); any other path 404 as Go's ServeMux. The lab's
kube-proxy is always healthy: its rules are loaded by the command that changes them.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

from .base import go_quote
from .http import Request, Response, error

JSON = "application/json"


def service_health_body(namespace: str, name: str, local_endpoints: int, proxy_healthy: bool = True) -> str:
    """hcHandler's body: dedented, trimmed of its first and last newline."""
    return ("{\n"
            "\t\"service\": {\n"
            f"\t\t\"namespace\": {go_quote(namespace)},\n"
            f"\t\t\"name\": {go_quote(name)}\n"
            "\t},\n"
            f"\t\"localEndpoints\": {local_endpoints},\n"
            f"\t\"serviceProxyHealthy\": {'true' if proxy_healthy else 'false'}\n"
            "}")


def service_health(namespace: str, name: str, local_endpoints: int, proxy_healthy: bool = True) -> Response:
    """What a Service's health check port answers."""
    ok = local_endpoints != 0 and proxy_healthy
    return Response(200 if ok else 503, service_health_body(namespace, name, local_endpoints, proxy_healthy),
                    {"Content-Type": JSON, "X-Content-Type-Options": "nosniff",
                     "X-Load-Balancing-Endpoint-Weight": str(local_endpoints)})


def go_time(ns: int) -> str:
    """A time.Time as json.Marshal writes it (RFC 3339, nanoseconds without trailing zeros), in UTC."""
    dt = datetime.fromtimestamp(ns // 1_000_000_000, timezone.utc)
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return f"{dt:%Y-%m-%dT%H:%M:%S}{'.' + frac if frac else ''}Z"


def proxy_health_body(path: str, updated_ns: int, now_ns: int, node_eligible: bool = True) -> str:
    """ProxyHealth for /healthz (with nodeEligible) or /livez, healthy."""
    health: dict = {"lastUpdated": go_time(now_ns), "currentTime": go_time(now_ns)}
    if path == "/healthz":
        health["nodeEligible"] = node_eligible
    health["healthy"] = True
    health["status"] = {"IPv4": {"lastUpdated": go_time(updated_ns), "healthy": True}}
    return json.dumps(health, separators=(",", ":"))


def proxy_health(req: Request, updated_ns: int, now_ns: int | None = None) -> Response:
    """What the node's health port answers `req`; `updated_ns`: when its rules were last synced."""
    if req.path not in ("/healthz", "/livez"):
        return error("404 page not found", 404)
    body = proxy_health_body(req.path, updated_ns, time.time_ns() if now_ns is None else now_ns)
    return Response(200, body, {"Content-Type": JSON, "X-Content-Type-Options": "nosniff"})
