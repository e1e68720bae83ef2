"""apply_rules / clear_rules / sync_rules against the real tools, in throwaway network namespaces."""
import json
import os
import shutil
import subprocess

import pytest

from kubenet_lab.errors import LabError
from kubenet_lab.proxy.iptables import render_iptables
from kubenet_lab.proxy.nftables import render_nftables
from kubenet_lab.proxy.sync import plan_sync, render_node
from kubenet_lab.kernel.rules import apply_rules, clear_rules, sync_rules
from tests.integration.conftest import host_snapshot
from tests.unit.test_render_fixtures import kube_proxy_plan
from tests.unit.test_sync import BASE, CHANGES, ep, plan as svc_plan, replaced, with_eps

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not (shutil.which("nft") and shutil.which("iptables-restore")),
                       reason="needs nft and iptables"),
]


def _out(*argv: str, netns: str | None = None) -> str:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    proc = subprocess.run([*prefix, *argv], capture_output=True, text=True, check=True)
    return "\n".join(l for l in proc.stdout.splitlines() if not l.startswith("#"))


def _host_rules() -> tuple:
    """The host's firewall rules, without packet counters (see conftest.host_snapshot)."""
    snapshot = host_snapshot()
    return snapshot["iptables"], snapshot["nft"]


def test_apply_and_switch_modes(scratch_netns):
    host_before = _host_rules()
    me = os.readlink("/proc/thread-self/ns/net")
    plan = kube_proxy_plan()
    ipt, nft = render_iptables(plan, "node1"), render_nftables(plan, "node1")
    subprocess.run(["ip", "netns", "exec", scratch_netns, "iptables", "-t", "nat", "-A", "POSTROUTING",
                    "-s", "10.244.0.0/16", "-j", "MASQUERADE"], check=True)

    apply_rules(scratch_netns, "iptables", ipt)
    apply_rules(scratch_netns, "iptables", ipt)  # idempotent: no duplicated jumps
    saved = _out("iptables-save", netns=scratch_netns)
    assert "KUBE-SVC-XPGD46QRK7WJZT7O" in saved
    assert saved.count("-A PREROUTING -m comment --comment \"kubernetes service portals\"") == 1
    assert os.readlink("/proc/thread-self/ns/net") == me

    clear_rules(scratch_netns, "iptables")
    clear_rules(scratch_netns, "iptables")
    apply_rules(scratch_netns, "nftables", nft)
    apply_rules(scratch_netns, "nftables", nft)
    saved = _out("iptables-save", netns=scratch_netns)
    assert "KUBE-" not in saved and "-j MASQUERADE" in saved  # others' rules survive
    assert "service-ULMVA6XW-ns1/svc1/tcp/p80" in _out("nft", "list", "table", "ip", "kube-proxy",
                                                      netns=scratch_netns)

    clear_rules(scratch_netns, "nftables")
    clear_rules(scratch_netns, "nftables")
    assert "kube-proxy" not in _out("nft", "list", "ruleset", netns=scratch_netns)
    apply_rules(scratch_netns, "iptables", ipt)
    assert "KUBE-SEP-SXIVWICOYRO3J4NJ" in _out("iptables-save", netns=scratch_netns)

    assert _host_rules() == host_before
    assert os.readlink("/proc/thread-self/ns/net") == me


def test_stale_service_chains_are_removed(scratch_netns):
    plan = kube_proxy_plan()
    apply_rules(scratch_netns, "iptables", render_iptables(plan, "node1"))
    smaller = plan.__class__(**{**plan.__dict__, "services": plan.services[:1]})
    apply_rules(scratch_netns, "iptables", render_iptables(smaller, "node1"))
    saved = _out("iptables-save", netns=scratch_netns)
    assert "KUBE-SVC-XPGD46QRK7WJZT7O" in saved and "KUBE-SVC-4SW47YFZTEDKD3PK" not in saved


def test_errors_carry_the_tool_message_and_restore_the_namespace(scratch_netns):
    me = os.readlink("/proc/thread-self/ns/net")
    with pytest.raises(LabError, match="kube-proxy|Error|error"):
        apply_rules(scratch_netns, "nftables", "add rule ip kube-proxy nowhere drop\n")
    assert os.readlink("/proc/thread-self/ns/net") == me
    with pytest.raises(LabError, match="does not exist"):
        apply_rules("kubenet-test-does-not-exist", "nftables", "")
    assert os.readlink("/proc/thread-self/ns/net") == me


# --- incremental sync against the real tools -------------------------------------------------

MODES = ("iptables", "nftables")


def _dump(netns: str, mode: str):
    """The loaded rules, without counters, handles or the order the kernel lists sets in."""
    if mode == "iptables":
        chains: dict[str, list[str]] = {}
        for line in _out("iptables-save", netns=netns).splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":"):
                chains.setdefault(f"{table}/{line[1:].split()[0]}", [])
            elif line.startswith("-A "):
                _, chain, rest = line.split(" ", 2)
                chains[f"{table}/{chain}"].append(rest)
        return chains
    out = json.loads(_out("nft", "-j", "list", "table", "ip", "kube-proxy", netns=netns))
    rules, objects = {}, {}
    for item in out["nftables"]:
        kind, body = next(iter(item.items()))
        if kind == "rule":
            rules.setdefault(body["chain"], []).append(json.dumps(body["expr"], sort_keys=True))
        elif kind in ("chain", "set", "map"):
            body = {k: v for k, v in body.items() if k != "handle"}
            body["elem"] = sorted(json.dumps(e, sort_keys=True) for e in body.get("elem", []))
            objects[f"{kind} {body['name']}"] = body
    return rules, objects


def _sync(netns: str, old, new) -> bool:
    sync = plan_sync(old, new)
    return sync_rules(netns, new.mode, None if sync.full else sync.text, new.text)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("change", ["add a service", "change one endpoint", "remove a service",
                                    "affinity timeout", "several at once"])
def test_incremental_sync_equals_a_full_apply(scratch_netns, scratch_netns2, mode, change):
    host_before = _host_rules()
    old = render_node(svc_plan(*BASE), "node1", mode)
    new = render_node(svc_plan(*CHANGES[change]), "node1", mode)
    assert _sync(scratch_netns, None, old) is False
    assert _sync(scratch_netns, old, new) is True  # the partial text was accepted
    assert _sync(scratch_netns2, None, new) is False
    assert _dump(scratch_netns, mode) == _dump(scratch_netns2, mode)
    assert _host_rules() == host_before


@pytest.mark.parametrize("mode", MODES)
def test_partial_sync_on_a_wiped_namespace_falls_back_to_a_full_load(scratch_netns, scratch_netns2, mode):
    old = render_node(svc_plan(*BASE), "node1", mode)
    new = render_node(svc_plan(*CHANGES["add a service at the end"]), "node1", mode)
    _sync(scratch_netns, None, old)
    clear_rules(scratch_netns, mode)
    assert _sync(scratch_netns, old, new) is False
    _sync(scratch_netns2, None, new)
    assert _dump(scratch_netns, mode) == _dump(scratch_netns2, mode)


def _affinity_elements(netns: str, name: str) -> list:
    out = json.loads(_out("nft", "-j", "list", "set", "ip", "kube-proxy", name, netns=netns))
    return [e for item in out["nftables"] if "set" in item for e in item["set"].get("elem", [])]


def test_nft_affinity_entries_survive_an_incremental_sync(scratch_netns):
    """A client pinned to an endpoint stays pinned when another endpoint of the same service
    or another service changes; only a complete reload would forget it."""
    old = render_node(svc_plan(*BASE), "node1", "nftables")
    _sync(scratch_netns, None, old)
    sets = [s for f in old.fragments.values() for s in f.sets]
    assert len(sets) == 3
    for name in sets:
        subprocess.run(["ip", "netns", "exec", scratch_netns, "nft", "add", "element", "ip", "kube-proxy",
                        name, "{ 10.244.1.200 }"], check=True)
    svc = BASE[5]
    grown = with_eps(svc, [*svc.ports[0].endpoints[:2], ep("10.244.1.250")])
    new = render_node(svc_plan(*replaced(5, grown), *CHANGES["add a service at the end"][-1:]),
                      "node1", "nftables")
    assert _sync(scratch_netns, old, new) is True
    kept = [s for s in sets if s in {n for f in new.fragments.values() for n in f.sets}]
    assert len(kept) == 2
    for name in kept:
        assert len(_affinity_elements(scratch_netns, name)) == 1, name
    _sync(scratch_netns, None, new)  # the complete load starts every set empty
    assert all(not _affinity_elements(scratch_netns, name) for name in kept)
