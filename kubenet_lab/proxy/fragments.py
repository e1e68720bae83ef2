"""One service port's share of a node's ruleset, the unit an incremental sync compares.

Both renderers cut their output the same way: the chains a service port owns (with their rules,
in the order they are written), the sets it owns (nftables affinity sets), and the lines it adds
to chains or maps every service shares (`KUBE-SERVICES`, `service-ips`, ...). A node's full text
is the mode's fixed skeleton plus every fragment; a sync after a change only touches the
fragments that differ, which is what keeps a one-service change cheap on a 5000-service node.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from kubenet_lab.model.objects import PlannedService, PlannedServicePort
from kubenet_lab.proxy import names


@dataclass(frozen=True)
class Fragment:
    chains: tuple[str, ...] = ()  # chains it owns, in declaration order
    rules: tuple[str, ...] = ()  # the lines that fill those chains, in order
    sets: Mapping[str, str] = field(default_factory=dict)  # set it owns -> its declaration
    # shared chain or map -> the lines or elements this service port contributes to it
    shared: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # digest of everything the fragment was rendered from (proxy.sync.render_nodes): an equal
    # digest lets the next render reuse the fragment instead of rendering it again. Not part of
    # equality: two renders giving the same rules are the same fragment to a sync.
    fingerprint: str = field(default="", compare=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"chains": list(self.chains), "rules": list(self.rules)}
        if self.fingerprint:
            out["fp"] = self.fingerprint
        if self.sets:
            out["sets"] = dict(self.sets)
        if self.shared:
            out["shared"] = {k: list(v) for k, v in self.shared.items()}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Fragment":
        return cls(chains=tuple(data["chains"]), rules=tuple(data["rules"]),
                   sets=dict(data.get("sets", {})),
                   shared={k: tuple(v) for k, v in data.get("shared", {}).items()},
                   fingerprint=data.get("fp", ""))


def port_key(svc: PlannedService, port: PlannedServicePort) -> str:
    """`ns/name:port/proto`: unique per service port, stable across renders."""
    return f"{names.port_name(svc.namespace, svc.name, port.name)}/{port.protocol.lower()}"


def make_fragment(chains: list[str], rules: list[str], shared: dict[str, list[str]],
                  sets: dict[str, str] | None = None) -> Fragment:
    """Empty shared entries are left out, so that equal rules always give equal fragments."""
    return Fragment(chains=tuple(chains), rules=tuple(rules), sets=dict(sets or {}),
                    shared={k: tuple(v) for k, v in shared.items() if v})


@dataclass
class Changes:
    """What differs between two cuts of one node's ruleset, ready to be written in either syntax.

    `write` holds the owned chains to (re)fill, with their complete rules: new chains and chains
    whose rules changed; `existing` says which of them the kernel already has. `shared` gives,
    for every shared chain or map a changed fragment touches, its complete old and new lines."""

    write: dict[str, tuple[str, ...]] = field(default_factory=dict)
    existing: set[str] = field(default_factory=set)
    stale_chains: list[str] = field(default_factory=list)
    add_sets: dict[str, str] = field(default_factory=dict)  # name -> declaration
    stale_sets: list[str] = field(default_factory=list)
    shared: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
