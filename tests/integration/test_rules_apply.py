"""apply_rules / clear_rules against the real tools, in a throwaway network namespace."""
import os
import shutil
import subprocess
import uuid

import pytest

from kubenet_lab.errors import LabError
from kubenet_lab.render.iptables import render_iptables
from kubenet_lab.render.nftables import render_nftables
from kubenet_lab.system.rules import apply_rules, clear_rules, in_netns
from tests.unit.test_render_fixtures import kube_proxy_plan

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


def _host_rules() -> tuple[str, str]:
    return _out("iptables-save"), _out("nft", "list", "ruleset")


@pytest.fixture
def netns():
    name = f"kubenet-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_apply_and_switch_modes(netns):
    host_before = _host_rules()
    me = os.readlink("/proc/thread-self/ns/net")
    plan = kube_proxy_plan()
    ipt, nft = render_iptables(plan, "node1"), render_nftables(plan, "node1")
    subprocess.run(["ip", "netns", "exec", netns, "iptables", "-t", "nat", "-A", "POSTROUTING",
                    "-s", "10.244.0.0/16", "-j", "MASQUERADE"], check=True)

    apply_rules(netns, "iptables", ipt)
    apply_rules(netns, "iptables", ipt)  # idempotent: no duplicated jumps
    saved = _out("iptables-save", netns=netns)
    assert "KUBE-SVC-XPGD46QRK7WJZT7O" in saved
    assert saved.count("-A PREROUTING -m comment --comment \"kubernetes service portals\"") == 1
    assert os.readlink("/proc/thread-self/ns/net") == me

    clear_rules(netns, "iptables")
    clear_rules(netns, "iptables")
    apply_rules(netns, "nftables", nft)
    apply_rules(netns, "nftables", nft)
    saved = _out("iptables-save", netns=netns)
    assert "KUBE-" not in saved and "-j MASQUERADE" in saved  # others' rules survive
    assert "service-ULMVA6XW-ns1/svc1/tcp/p80" in _out("nft", "list", "table", "ip", "kube-proxy",
                                                      netns=netns)

    clear_rules(netns, "nftables")
    clear_rules(netns, "nftables")
    assert "kube-proxy" not in _out("nft", "list", "ruleset", netns=netns)
    apply_rules(netns, "iptables", ipt)
    assert "KUBE-SEP-SXIVWICOYRO3J4NJ" in _out("iptables-save", netns=netns)

    assert _host_rules() == host_before
    assert os.readlink("/proc/thread-self/ns/net") == me


def test_stale_service_chains_are_removed(netns):
    plan = kube_proxy_plan()
    apply_rules(netns, "iptables", render_iptables(plan, "node1"))
    smaller = plan.__class__(**{**plan.__dict__, "services": plan.services[:1]})
    apply_rules(netns, "iptables", render_iptables(smaller, "node1"))
    saved = _out("iptables-save", netns=netns)
    assert "KUBE-SVC-XPGD46QRK7WJZT7O" in saved and "KUBE-SVC-4SW47YFZTEDKD3PK" not in saved


def test_errors_carry_the_tool_message_and_restore_the_namespace(netns):
    me = os.readlink("/proc/thread-self/ns/net")
    with pytest.raises(LabError, match="kube-proxy|Error|error"):
        apply_rules(netns, "nftables", "add rule ip kube-proxy nowhere drop\n")
    assert os.readlink("/proc/thread-self/ns/net") == me
    with pytest.raises(LabError):
        with in_netns("kubenet-test-does-not-exist"):
            pass
