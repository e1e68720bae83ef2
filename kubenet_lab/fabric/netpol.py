"""NetworkPolicy in the kernel: each node's `inet kubenet-netpol` table (policy.nftables)
loaded into its namespace when it differs from the one last loaded there (kept in the state
dir), or when the namespace is new; removed from a node where no policy isolates a pod. A lab
without policies needs no nft and holds no such table."""
from __future__ import annotations

import hashlib
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import EnvironmentProblem
from ..kernel import conntrack, rules
from ..model.objects import Plan
from ..policy import nftables
from ..policy.verdict import End, ends, verdict
from . import state

OWNER = rules.Owner((), nftables.TABLE)
# The renderer's own source: a table rendered by other code is never taken for the current one.
_CODE = hashlib.blake2b(Path(nftables.__file__).read_bytes(), digest_size=12).hexdigest()


def _inputs(plan: Plan) -> str:
    """A digest of what the tables are made of (policies, namespaces' labels, the pods' addresses,
    nodes, labels and named ports, the nodes' namespaces): equal digests, equal tables, so a change
    that touches none of it (a readiness change, a Service) renders nothing."""
    pods = [(p.key, str(p.ip), p.node, sorted(p.labels.items()), p.host_network,
             [(c.name, [(q.name, q.protocol, q.container_port) for q in c.ports])
              for c in p.containers + p.init_containers]) for p in plan.pods]
    text = repr((_CODE, plan.network_policies, plan.namespace_objects, [(n.name, n.netns) for n in plan.nodes], pods))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _path(lab: str, node: str) -> str:
    return os.path.join(state.state_dir(lab), "rules", "netpol", f"{node}.nft")


def _stored(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def apply(plan: Plan, fresh: set[str]) -> list[str]:
    """Every node's table for `plan`; -> the nodes whose table changed. A node made anew
    (`fresh`) has none yet."""
    def sync(name: str) -> bool:
        netns, path = plan.node(name).netns, _path(plan.lab, name)
        text = nftables.render(plan, name)
        old = "" if netns in fresh else _stored(path)
        if old == text:
            return False
        if text:
            if shutil.which("nft") is None:
                raise EnvironmentProblem("nft not found: NetworkPolicy is enforced with nftables; install the "
                                         "nftables package")
            rules.apply_rules(netns, "nftables", text, OWNER)
            if netns not in fresh:
                forget_denied(plan, name)
        elif old is None or old:  # unknown, or a table was loaded: none now
            rules.clear_rules(netns, "nftables", OWNER)
        state.write_atomic(path, text)
        return True

    names = [n.name for n in plan.nodes]
    digest, digest_path = _inputs(plan), os.path.join(state.state_dir(plan.lab), "rules", "netpol", "inputs")
    if not any(plan.node(n).netns in fresh for n in names) and _stored(digest_path) == digest:
        return []  # made of the same as the tables loaded last
    if not plan.network_policies and all(_stored(_path(plan.lab, n)) in ("", None) for n in names):
        return []  # no policy now or before: nothing to load, nothing to remove
    with ThreadPoolExecutor(max_workers=max(1, min(len(names), os.cpu_count() or 1))) as pool:
        done = list(pool.map(sync, names))
    state.write_atomic(digest_path, digest)
    return [n for n, did in zip(names, done) if did]


PROTOCOL_NAMES = {6: "TCP", 17: "UDP", 132: "SCTP"}


def forget_denied(plan: Plan, node: str) -> list[conntrack.Entry]:
    """The connections of `node`'s pods that the policies now deny end: their conntrack entries
    are deleted, so that their next packet meets the rules as a new one (and the table drops a
    TCP packet that is no SYN, new, to or from an isolated pod: no connection is picked up
    mid-stream). Each is judged as the oracle judges it: from its original source to where its
    replies come from (the endpoint, after DNAT), on that port."""
    known = ends(plan)
    local = {p.ip for p in plan.pods if p.node == node and not p.host_network}

    def denied(e: conntrack.Entry) -> bool:
        src, dst = e.orig.src, e.reply.src
        if src not in local and dst not in local:
            return False
        return not verdict(plan, known.get(src, End(src)), known.get(dst, End(dst)), PROTOCOL_NAMES[e.proto],
                           e.reply.sport).allowed

    return conntrack.forget(plan.node(node).netns, denied)
