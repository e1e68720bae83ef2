"""hostPort as Kubernetes' default CNI setup makes it: the CNI `portmap` plugin's rules, per node.

A container port's `hostPort` is not kube-proxy's business. kubelet hands a pod's port mappings
(every container port with a hostPort, of its regular containers) to the container runtime, which
passes them to the CNI plugins chained after the pod network as `runtimeConfig.portMappings`; the
`portmap` plugin (containernetworking/plugins, plugins/meta/portmap) then DNATs
<node address>:<hostPort> to <pod IP>:<containerPort> and masquerades a pod reaching itself that
way (its `snat` option, on by default). This module writes what that plugin writes, in its layout,
from the plan alone; kernel/rules.py loads it into the node, next to kube-proxy's rules.

- iptables backend, nat table: PREROUTING and OUTPUT jump (appended) to `CNI-HOSTPORT-DNAT` for
  local destinations (`-m addrtype --dst-type LOCAL`); there one rule per pod and protocol
  (`-m multiport`, at most 15 ports a rule) sends the pod's host ports to its own chain
  `CNI-DN-<sha512 of network name + container ID>`, which for each mapping marks hairpin traffic
  (from the pod's address with its prefix, as the plugin passes it: iptables widens it to the
  node's pod subnet) and 127.0.0.1 for masquerade (`CNI-HOSTPORT-SETMARK`, mark 0x2000), then
  DNATs. `CNI-HOSTPORT-MASQ`, prepended to POSTROUTING, masquerades what carries the mark.
- nftables backend, table `ip cni_hostport`: `prerouting` and `output` (nat, priority dstnat, -100)
  jump to `hostports_all` for local destinations, which jumps to `hostip_hostports` (kept empty,
  as by the plugin today) and `hostports`: one `dnat` rule per mapping, commented with the
  container ID; `masquerading` (postrouting, srcnat) masquerades the pod reaching itself and
  127.0.0.1.

The backend follows the node's kube-proxy mode: iptables next to iptables (one `iptables-save`
shows all of a node's NAT), the nftables backend next to kube-proxy's nftables table, so that a
node in nftables mode needs no iptables tools at all (the plugin itself uses iptables unless only
nftables is usable, or is told `backend: nftables`).

A hostIP restricts the destination (`-d` / `ip daddr`); 0.0.0.0 or none means every address of
the node. A mapping whose hostIP is IPv6 gets no rule, as the plugin skips the other family.
hostNetwork pods have no CNI and no rules: their ports are the node's own.

Each pod with host ports is one `Fragment` (proxy/fragments.py) keyed by its sandbox's container
ID, derived from the pod's uid, so it changes exactly when the pod is made anew. `plan_load`
compares two renders of a node and writes what a CNI DEL and ADD would change: in iptables the
pods' own chains and their rules in CNI-HOSTPORT-DNAT (one `iptables-restore --noflush`), in
nftables the two chains holding the pods' rules; the whole ruleset (or its removal) when the
skeleton comes or goes, the backend changes or the previous state is unknown.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address
from typing import Iterable, Mapping

from kubenet_lab.model.objects import Plan, PlannedPod
from kubenet_lab.proxy.fragments import Fragment, make_fragment

NETWORK = "kubenet"  # the CNI network's name, hashed into the chain names (kubelet's kubenet used cbr0 too)
MARK = "0x2000"  # the plugin's default markMasqBit 13 (kube-proxy's masquerade mark is 0x4000)
# kube-proxy mode -> portmap backend
BACKENDS = {"iptables": "iptables", "nftables": "nftables", "userspace": "iptables"}
FORMAT = 1

# iptables backend
DNAT_CHAIN, SETMARK_CHAIN, MASQ_CHAIN = "CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ"
PREFIXES = ("CNI-HOSTPORT-", "CNI-DN-")  # the chains the plugin owns in the nat table
MULTIPORT_MAX = 15
SETMARK_RULE = (f'-A {SETMARK_CHAIN} -m comment --comment "CNI portfwd masquerade mark" '
                f"-j MARK --set-xmark {MARK}/{MARK}")
GUARD = "-C" + SETMARK_RULE[2:]  # fails unless the skeleton is loaded

# nftables backend
TABLE = "ip cni_hostport"
_HEADER = f'add table {TABLE} {{ comment "CNI portmap plugin" ; }}'
HOSTPORTS, MASQUERADING = "hostports", "masquerading"


@dataclass(frozen=True)
class PortMapping:
    """One entry of the CNI runtimeConfig.portMappings kubelet asks for."""

    host_port: int
    container_port: int
    protocol: str  # lower case, as the runtime passes it
    host_ip: str = ""


@dataclass(frozen=True)
class Sandbox:
    """What one pod's CNI ADD gives the plugin: its container ID, its address (with the prefix of
    its subnet, as the bridge plugin's result has it) and its port mappings."""

    pod: str  # "ns/name"
    container_id: str
    ip: IPv4Address
    prefix: int
    mappings: tuple[PortMapping, ...]


def backend(mode: str) -> str:
    return BACKENDS[mode]


def container_id(pod: PlannedPod) -> str:
    """The pod sandbox's ID (64 hex digits, as containerd's): new whenever the pod is made anew."""
    return hashlib.sha256(f"{pod.key}\0{pod.uid}".encode()).hexdigest()


def dn_chain(cid: str) -> str:
    """The plugin's per-container chain: utils.MustFormatChainNameWithPrefix(name, id, "DN-")."""
    return ("CNI-DN-" + hashlib.sha512((NETWORK + cid).encode()).hexdigest())[:28]


def mappings(pod: PlannedPod) -> tuple[PortMapping, ...]:
    """kubelet's port mappings of a pod: its regular containers' ports with a hostPort."""
    return tuple(PortMapping(p.host_port, p.container_port, p.protocol.lower(), p.host_ip or "")
                 for c in pod.containers for p in c.ports if p.host_port)


def sandboxes(plan: Plan, node: str, ended: Iterable[str] = ()) -> list[Sandbox]:
    """The pods of `node` whose sandbox the plugin has mapped ports for. `ended`: pods without a
    sandbox (ended, whose sandbox kubelet has removed, or not created yet)."""
    gone = set(ended)
    prefix = plan.node(node).pod_cidr.prefixlen
    return [Sandbox(p.key, container_id(p), p.ip, prefix, m) for p in plan.pods
            if p.node == node and not p.host_network and p.key not in gone and (m := mappings(p))]


# --- the two backends ---------------------------------------------------------------------------


def _family_ok(m: PortMapping) -> bool:
    return not m.host_ip or ip_address(m.host_ip).version == 4


def _restricted(m: PortMapping) -> bool:
    return bool(m.host_ip) and not ip_address(m.host_ip).is_unspecified


def _iptables_fragment(s: Sandbox) -> Fragment:
    chain = dn_chain(s.container_id)
    comment = f'-m comment --comment "dnat name: \\"{NETWORK}\\" id: \\"{s.container_id}\\""'
    entries = []
    for proto in sorted({m.protocol for m in s.mappings}):
        ports = [m.host_port for m in s.mappings if m.protocol == proto]
        for i in range(0, len(ports), MULTIPORT_MAX):
            listed = ",".join(str(p) for p in ports[i:i + MULTIPORT_MAX])
            entries.append(f"-A {DNAT_CHAIN} {comment} -m multiport -p {proto} --destination-ports {listed} "
                           f"-j {chain}")
    rules = []
    for m in s.mappings:
        if not _family_ok(m):
            continue
        base = f"-A {chain} -p {m.protocol} --dport {m.host_port}" + (f" -d {m.host_ip}" if _restricted(m) else "")
        rules += [f"{base} -s {s.ip}/{s.prefix} -j {SETMARK_CHAIN}",  # hairpin
                  f"{base} -s 127.0.0.1 -j {SETMARK_CHAIN}",  # localhost
                  f"{base} -j DNAT --to-destination {s.ip}:{m.container_port}"]
    return make_fragment([chain], rules, {DNAT_CHAIN: entries})


def _nftables_fragment(s: Sandbox) -> Fragment:
    comment = f'comment "{s.container_id}"'
    dnat = [f"add rule {TABLE} {HOSTPORTS} " + (f"ip daddr {m.host_ip} " if _restricted(m) else "")
            + f"{m.protocol} dport {m.host_port} dnat to {s.ip}:{m.container_port} {comment}"
            for m in s.mappings if _family_ok(m)]
    masq = [f"add rule {TABLE} {MASQUERADING} ip saddr {src} ip daddr {s.ip} masquerade {comment}"
            for src in (s.ip, "127.0.0.1")]
    return make_fragment([], [], {HOSTPORTS: dnat, MASQUERADING: masq})


_FRAGMENT = {"iptables": _iptables_fragment, "nftables": _nftables_fragment}


def _iptables_skeleton() -> tuple[list[str], list[str]]:
    """(declarations, rules) the plugin sets up once on a node."""
    decls = [f":{c} - [0:0]" for c in (SETMARK_CHAIN, MASQ_CHAIN, DNAT_CHAIN)]
    rules = [f'-I POSTROUTING 1 -m comment --comment "CNI portfwd requiring masquerade" -j {MASQ_CHAIN}',
             f"-A PREROUTING -m addrtype --dst-type LOCAL -j {DNAT_CHAIN}",
             f"-A OUTPUT -m addrtype --dst-type LOCAL -j {DNAT_CHAIN}",
             SETMARK_RULE,
             f"-A {MASQ_CHAIN} -m mark --mark {MARK}/{MARK} -j MASQUERADE"]
    return decls, rules


def _nftables_skeleton() -> list[str]:
    chain = f"add chain {TABLE}"
    return [f"{chain} {HOSTPORTS}", f"{chain} hostip_hostports", f"{chain} hostports_all",
            f"add rule {TABLE} hostports_all jump hostip_hostports",
            f"add rule {TABLE} hostports_all jump {HOSTPORTS}",
            f"{chain} prerouting {{ type nat hook prerouting priority dstnat ; }}",
            f"add rule {TABLE} prerouting fib daddr type local jump hostports_all",
            # -100 is dstnat: nft 1.0.6 knows that name in prerouting only
            f"{chain} output {{ type nat hook output priority -100 ; }}",
            f"add rule {TABLE} output fib daddr type local jump hostports_all",
            f"{chain} {MASQUERADING} {{ type nat hook postrouting priority srcnat ; }}"]


# --- a node's render, and what a change writes -------------------------------------------------------


@dataclass(frozen=True)
class RenderedPortmap:
    backend: str  # "iptables" or "nftables"
    sandboxes: Mapping[str, Fragment]  # container ID -> that pod's rules, in plan order

    def text(self) -> str:
        """The complete ruleset: `iptables-restore` input to merge with the node's tables
        (kernel.rules.merge_iptables, owning PREFIXES), or an `nft -f` transaction replacing the
        table; without any pod, what removes it all."""
        frags = list(self.sandboxes.values())
        if self.backend == "iptables":
            if not frags:
                return ""
            decls, rules = _iptables_skeleton()
            return "\n".join(["*nat", *decls, *(f":{c} - [0:0]" for f in frags for c in f.chains), *rules,
                              *_shared(frags, DNAT_CHAIN), *(r for f in frags for r in f.rules), "COMMIT", ""])
        lines = [f"add table {TABLE}", f"delete table {TABLE}"]
        if frags:
            lines += [_HEADER, *_nftables_skeleton(), *_shared(frags, HOSTPORTS), *_shared(frags, MASQUERADING)]
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "backend": self.backend,
                           "sandboxes": {k: f.to_json() for k, f in self.sandboxes.items()}}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "RenderedPortmap":
        """ValueError for anything this version would not have written."""
        try:
            data = json.loads(text)
            if data["format"] != FORMAT or data["backend"] not in _FRAGMENT:
                raise ValueError(f"unsupported portmap state (format {data['format']!r})")
            return cls(data["backend"], {k: Fragment.from_json(f) for k, f in data["sandboxes"].items()})
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"malformed portmap state: {e!r}") from e


def _shared(frags: list[Fragment], key: str) -> list[str]:
    return [line for f in frags for line in f.shared.get(key, ())]


def render(plan: Plan, node: str, ended: Iterable[str] = ()) -> RenderedPortmap:
    kind = backend(plan.cluster.kube_proxy_mode)
    return RenderedPortmap(kind, {s.container_id: _FRAGMENT[kind](s) for s in sandboxes(plan, node, ended)})


def added_udp_ports(plan: Plan, node: str, old: RenderedPortmap, ended: Iterable[str] = ()) -> set[int]:
    """The UDP host ports of the pods whose sandbox the plugin adds since `old`: it deletes the
    node's conntrack entries to those ports after adding the rules (kernel.conntrack)."""
    return {m.host_port for s in sandboxes(plan, node, ended) if s.container_id not in old.sandboxes
            for m in s.mappings if m.protocol == "udp"}


@dataclass(frozen=True)
class Load:
    full: bool  # the text is the complete ruleset (RenderedPortmap.text), else a change to what is loaded
    text: str


def plan_load(old: RenderedPortmap | None, new: RenderedPortmap) -> Load | None:
    """What to write to turn `old` (None: unknown) into `new`; None when nothing changed."""
    if old is not None and old.backend == new.backend and old.sandboxes == new.sandboxes:
        return None
    if old is None or old.backend != new.backend or not old.sandboxes or not new.sandboxes:
        return Load(True, new.text())
    gone = [f for k, f in old.sandboxes.items() if new.sandboxes.get(k) != f]
    come = [f for k, f in new.sandboxes.items() if old.sandboxes.get(k) != f]
    if new.backend == "nftables":
        frags = list(new.sandboxes.values())
        return Load(False, "\n".join([f"add chain {TABLE} {HOSTPORTS}",  # fails without the table
                                      f"flush chain {TABLE} {HOSTPORTS}", f"flush chain {TABLE} {MASQUERADING}",
                                      *_shared(frags, HOSTPORTS), *_shared(frags, MASQUERADING)]) + "\n")
    # iptables: a CNI DEL of each pod gone or changed (its entry rules, then its chain), an ADD
    # of each new one; a chain that stays is declared (flushed) and refilled.
    kept = {c for f in new.sandboxes.values() for c in f.chains}
    written = list(dict.fromkeys(c for f in come for c in f.chains))
    stale = list(dict.fromkeys(c for f in gone for c in f.chains if c not in kept))
    lines = ["*nat", GUARD, *(f":{c} - [0:0]" for c in written + stale),
             *("-D" + line[2:] for line in _shared(gone, DNAT_CHAIN)),
             *_shared(come, DNAT_CHAIN), *(r for f in come for r in f.rules),
             *(f"-X {c}" for c in stale), "COMMIT", ""]
    return Load(False, "\n".join(lines))
