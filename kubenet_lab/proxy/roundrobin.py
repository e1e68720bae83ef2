"""The userspace proxy's choice of a backend: kube-proxy's old LoadBalancerRR (pkg/proxy/userspace/
roundrobin.go, removed in Kubernetes 1.26), as plain data and no I/O.

Per service port: its endpoints ("ip:port") in the order they were last shuffled, an index into
them, and, with sessionAffinity ClientIP, which endpoint each client address last got and when.
The rules are those of the Go type:
- endpoints that change (as a set) are shuffled once and the index starts again at 0; the same
  set again changes nothing (the order and index are kept), so requests go strictly round robin,
  in a repeating order, until the endpoints change;
- with ClientIP affinity a client that was given an endpoint less than the timeout ago gets it
  again (its time is renewed); else it gets the next one in turn, which it is then bound to; the
  bindings to an endpoint that left go with it; `reset` (a retry after a failed connect) skips
  the binding;
- a service port without endpoints, or unknown, is an error (`NoEndpoints`, `NoService`).
The caller passes the time (`now`, in seconds) and may pass the shuffle, so that the chooser is
tested alone, as kube-proxy's roundrobin_test.go tests it.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Iterable, MutableSequence

DEFAULT_AFFINITY_TIMEOUT = 10800  # v1.DefaultClientIPServiceAffinitySeconds


class NoService(LookupError):
    """The service port is not known (ErrMissingServiceEntry)."""


class NoEndpoints(LookupError):
    """The service port has no endpoint (ErrMissingEndpoints)."""


@dataclass
class _Binding:
    endpoint: str
    last_used: float


@dataclass
class _State:
    endpoints: list[str] = field(default_factory=list)
    index: int = 0
    affinity: str = "None"  # "None" or "ClientIP"
    timeout: int = DEFAULT_AFFINITY_TIMEOUT
    bindings: dict[str, _Binding] = field(default_factory=dict)  # client IP -> its endpoint


class RoundRobin:
    def __init__(self, shuffle: Callable[[MutableSequence[str]], None] = random.shuffle):
        self._shuffle = shuffle
        self._services: dict[str, _State] = {}

    def set_service(self, key: str, affinity: str = "None", timeout: int = 0) -> None:
        """Declare `key` (NewService): its session affinity and timeout (0: the default)."""
        state = self._services.setdefault(key, _State())
        state.affinity = affinity or "None"
        state.timeout = timeout or DEFAULT_AFFINITY_TIMEOUT

    def set_endpoints(self, key: str, endpoints: Iterable[str]) -> bool:
        """The endpoints of `key` now; True when they changed (then shuffled, index 0)."""
        new = list(endpoints)
        state = self._services.setdefault(key, _State())
        if sorted(new) == sorted(state.endpoints):
            return False
        kept = set(new)
        state.bindings = {ip: b for ip, b in state.bindings.items() if b.endpoint in kept}
        self._shuffle(new)
        state.endpoints, state.index = new, 0
        return True

    def delete_service(self, key: str) -> None:
        self._services.pop(key, None)

    def services(self) -> list[str]:
        return list(self._services)

    def endpoints(self, key: str) -> list[str]:
        """The endpoints of `key` in the order they are handed out."""
        state = self._services.get(key)
        return list(state.endpoints) if state else []

    def next(self, key: str, client_ip: str | None, now: float, reset: bool = False) -> str:
        """The endpoint for a new connection (or UDP client) of `client_ip` to `key`."""
        state = self._services.get(key)
        if state is None:
            raise NoService(key)
        if not state.endpoints:
            raise NoEndpoints(key)
        sticky = client_ip if state.affinity == "ClientIP" else None
        if sticky is not None and not reset:
            bound = state.bindings.get(sticky)
            if bound is not None and int(now - bound.last_used) < state.timeout:
                bound.last_used = now
                return bound.endpoint
        endpoint = state.endpoints[state.index]
        state.index = (state.index + 1) % len(state.endpoints)
        if sticky is not None:
            state.bindings[sticky] = _Binding(endpoint, now)
        return endpoint

    def forget_stale(self, key: str, now: float) -> None:
        """Drop the bindings older than the timeout (CleanupStaleStickySessions)."""
        state = self._services.get(key)
        if state is not None:
            state.bindings = {ip: b for ip, b in state.bindings.items() if int(now - b.last_used) < state.timeout}
