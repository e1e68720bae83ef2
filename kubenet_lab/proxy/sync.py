"""A node's rules as data, and the least a change needs to write (kube-proxy's partial sync).

`render_node` cuts a node's ruleset into its skeleton and one `Fragment` per service port; the
caller keeps the last applied `RenderedNode` (JSON in the state dir). `plan_sync(old, new)`
compares the two and writes either the complete ruleset (first apply, mode switch, unknown
previous state, or a change too big for a partial load) or only the changed chains, shared-chain
rules, map elements and sets, in the syntax of the mode. Everything here is pure: the kernel is
left to kernel/rules.py.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Callable, Iterable, Mapping, Protocol

from kubenet_lab.model.objects import Plan, PlannedService, PlannedServicePort
from kubenet_lab.proxy import endpoints, iptables, names, nftables, userspace
from kubenet_lab.proxy import fragments as fragments_module
from kubenet_lab.proxy.endpoints import PortView, port_view, proxied_ports
from kubenet_lab.proxy.fragments import Changes, Fragment, port_key


class Renderer(Protocol):
    """What a sync needs of a mode's renderer module (proxy.iptables, proxy.nftables). The two
    take different options (nftables: vmap; iptables: nfacct), hence the loose signatures of the
    first three. `SYNTAX` names the language of its text, the loader kernel.rules runs for it
    ("iptables": iptables-restore, "nftables": nft -f); `node_dependent` says which service
    ports render differently on each node (the others are rendered once for all nodes)."""

    SYNTAX: str
    @property
    def fragment_renderer(self) -> Callable[..., Callable[[PortView], Fragment]]: ...  # (plan, **options)
    @property
    def render_context(self) -> Callable[..., tuple[object, ...]]: ...  # (plan, **options)
    @property
    def base(self) -> Callable[..., dict[str, tuple[str, ...]]]: ...  # (plan, node, **BASE_OPTIONS)
    def assemble(self, sections: Mapping[str, tuple[str, ...]], fragments: Iterable[Fragment]) -> str: ...
    def rule_chain(self, line: str) -> str: ...
    def sync_text(self, ch: Changes) -> str | None: ...
    def node_dependent(self, svc: PlannedService, port: PlannedServicePort) -> bool: ...


MODES: dict[str, Renderer] = {"iptables": iptables, "nftables": nftables, "userspace": userspace}


def syntax(mode: str) -> str:
    """The rule language of `mode`'s text (what kernel.rules loads and clears)."""
    return MODES[mode].SYNTAX


def other_syntaxes(mode: str) -> list[str]:
    """The rule languages other modes write: what a switch to `mode` clears first."""
    return sorted({m.SYNTAX for m in MODES.values()} - {syntax(mode)})
FORMAT = 2  # bump when the cut changes, so that a stored cut of an older version means "unknown"


@dataclass(frozen=True)
class RenderedNode:
    mode: str
    base: Mapping[str, tuple[str, ...]]
    fragments: Mapping[str, Fragment]  # service-port key -> its share, in render order

    def text(self) -> str:
        """The complete ruleset, as `iptables-restore --noflush` or `nft -f` input."""
        return MODES[self.mode].assemble(self.base, self.fragments.values())

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "mode": self.mode,
                           "base": {k: list(v) for k, v in self.base.items()},
                           "fragments": {k: f.to_json() for k, f in self.fragments.items()}},
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "RenderedNode":
        """ValueError for anything this version would not have written."""
        try:
            data = json.loads(text)
            if data["format"] != FORMAT or data["mode"] not in MODES:
                raise ValueError(f"unsupported rules state (format {data['format']!r})")
            return cls(mode=data["mode"], base={k: tuple(v) for k, v in data["base"].items()},
                       fragments={k: Fragment.from_json(f) for k, f in data["fragments"].items()})
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"malformed rules state: {e!r}") from e


def render_nodes(plan: Plan, mode: str, nodes: Iterable[str] | None = None,
                 previous: Mapping[str, RenderedNode] | None = None,
                 **options: bool | None) -> dict[str, RenderedNode]:
    """Several nodes at once. A service port without a Local traffic policy has the same rules
    on every node, so it is rendered once and its fragment shared by all nodes.

    `previous` (node -> its last render, e.g. from the state dir) makes a change cost what
    changed: a fragment whose fingerprint (a digest of the renderer code, the plan-wide inputs,
    the service port and, for Local policies, the node) is unchanged is reused as it is, so the
    result equals a fresh render and only the changed service ports are rendered again."""
    module = MODES[mode]
    # the options the skeleton depends on too (a module's BASE_OPTIONS; iptables: nfacct)
    base_options = {k: v for k, v in options.items() if k in getattr(module, "BASE_OPTIONS", ())}
    render = module.fragment_renderer(plan, **options)
    context = _digest(_CODE, mode, repr(module.render_context(plan, **options)))
    ports = [(svc, port, port_key(svc, port), _port_fingerprint(context, svc, port),
              module.node_dependent(svc, port)) for svc, port in proxied_ports(plan)]
    common: dict[str, Fragment] = {}
    out = {}
    for node in nodes if nodes is not None else [n.name for n in plan.nodes]:
        old = (previous or {}).get(node)
        reusable = old.fragments if old is not None and old.mode == mode else {}
        fragments = {}
        for svc, port, key, fp, local in ports:
            if local:
                fp = _digest(fp, node)
            f = reusable.get(key)
            if f is None or f.fingerprint != fp:
                f = None if local else common.get(key)
                if f is None:
                    f = dataclasses.replace(render(port_view(svc, port, node)), fingerprint=fp)
            if not local:
                f = common.setdefault(key, f)
            fragments[key] = f
        base = module.base(plan, node, **base_options)
        out[node] = RenderedNode(mode, base, fragments)
    return out


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\0".join(parts).encode(), digest_size=12).hexdigest()


def _port_fingerprint(context: str, svc: PlannedService, port: PlannedServicePort) -> str:
    """Every field of the service but its other ports, and the port with its endpoints: more
    than the renderers read, so that a field they come to read cannot be forgotten here.
    (Built from the instances' fields rather than dataclass reprs, addresses as integers: a
    thousand services are fingerprinted on every change, and repr(IPv4Address) is slow.)"""
    own = [_plain(v) for k, v in vars(svc).items() if k != "ports"]
    head = [v for k, v in vars(port).items() if k != "endpoints"]
    eps = [tuple(_plain(v) for v in vars(e).values()) for e in port.endpoints]
    return _digest(context, repr((own, head, eps)))


def _plain(value: object) -> object:
    if type(value) is IPv4Address:
        return int(value)
    if type(value) is tuple:
        return tuple(_plain(v) for v in value)
    return value


def _code_digest() -> str:
    """The renderers' own source: a fragment rendered by other code is never reused."""
    text = ""
    for m in (iptables, nftables, userspace, endpoints, names, fragments_module):
        assert m.__file__ is not None  # imported from their files, never frozen
        text += Path(m.__file__).read_text()
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def render_node(plan: Plan, node: str, mode: str, previous: RenderedNode | None = None,
                **options: bool | None) -> RenderedNode:
    return render_nodes(plan, mode, [node], {node: previous} if previous else None,
                        **options)[node]


_CODE = _code_digest()


@dataclass(frozen=True)
class Sync:
    full: bool  # the text is the complete ruleset, replacing whatever the node holds
    text: str  # empty when nothing changed


def plan_sync(old: RenderedNode | None, new: RenderedNode) -> Sync:
    if old is None or old.mode != new.mode or old.base != new.base:
        return Sync(True, new.text())
    old_fragments = old.fragments
    keys = [k for k, f in new.fragments.items()
            if old_fragments.get(k) is not f and old_fragments.get(k) != f]
    keys += [k for k in old.fragments if k not in new.fragments]
    if not keys:
        return Sync(False, "")
    module = MODES[new.mode]
    text = module.sync_text(changes(old, new, keys, module.rule_chain))
    return Sync(text is None, new.text() if text is None else text)


def changes(old: RenderedNode, new: RenderedNode, keys: list[str],
            rule_chain: Callable[[str], str]) -> Changes:
    """What differs between `old` and `new`, given the fragment keys that differ."""
    before = [old.fragments[k] for k in keys if k in old.fragments]
    after = [new.fragments[k] for k in keys if k in new.fragments]
    old_chains, new_chains = _chains(before, rule_chain), _chains(after, rule_chain)
    old_sets = {n: d for f in before for n, d in f.sets.items()}
    new_sets = {n: d for f in after for n, d in f.sets.items()}
    redeclared = {n for n, d in new_sets.items() if n in old_sets and old_sets[n] != d}
    ch = Changes()
    # A set is redeclared by deleting it, so every chain naming it is refilled too.
    ch.write = {c: rules for c, rules in new_chains.items()
                if old_chains.get(c) != rules or _names(rules) & redeclared}
    ch.existing = {c for c in ch.write if c in old_chains}
    ch.stale_chains = [c for c in old_chains if c not in new_chains]
    ch.add_sets = {n: d for n, d in new_sets.items() if old_sets.get(n) != d}
    ch.stale_sets = [n for n in old_sets if n not in new_sets or n in redeclared]
    touched = dict.fromkeys(key for f in before + after for key in f.shared)
    ch.shared = {key: (_shared(old, key), _shared(new, key)) for key in touched}
    return ch


def _chains(fragments: list[Fragment], rule_chain: Callable[[str], str]) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for f in fragments:
        for chain in f.chains:
            out[chain] = []
        for rule in f.rules:
            out[rule_chain(rule)].append(rule)
    return {c: tuple(rules) for c, rules in out.items()}


def _names(rules: tuple[str, ...]) -> set[str]:
    """The sets the rules name (`@name`)."""
    return {word[1:] for rule in rules for word in rule.split() if word.startswith("@")}


def _shared(node: RenderedNode, key: str) -> list[str]:
    return [line for f in node.fragments.values() for line in f.shared.get(key, ())]
