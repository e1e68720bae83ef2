"""The rendered text itself: kube-proxy's layout, no dangling references, accepted by the tools."""
import os
import re
import shlex
import shutil
import subprocess

import pytest

from kubenet_lab.proxy.iptables import probability, render_iptables
from kubenet_lab.proxy.nftables import render_nftables
from kubenet_lab.kernel.rules import merge_iptables
from tests.unit.test_render_fixtures import ep, kube_proxy_plan, plan, port, service, with_balancing

IPT_TARGETS = {"ACCEPT", "DROP", "REJECT", "RETURN", "DNAT", "MARK", "MASQUERADE"}


def sample_plans():
    big = [service("default", f"s{i}", f"10.96.1.{i}",
                   port(80, "http", [ep(f"10.244.1.{i}"), ep(f"10.244.2.{i}", node="node2")],
                        node_port=30000 + i),
                   type="NodePort", session_affinity="ClientIP" if i % 2 else "None",
                   external_traffic_policy="Local" if i % 3 == 0 else "Cluster",
                   internal_traffic_policy="Local" if i % 5 == 0 else "Cluster")
           for i in range(1, 20)]
    return [kube_proxy_plan(), plan(*big)]


def test_iptables_matches_kube_proxy_for_its_own_test_services():
    text = render_iptables(kube_proxy_plan(), "node1")
    for line in (  # from kube-proxy's TestOverallIPTablesRules expectations
        '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O',
        '-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ',
        "-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80",
        '-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC',
        '-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --rcheck --seconds 10800 --reap -j KUBE-SEP-I77PXRDZVX7PMWMN',
        "-A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80",
        '-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT',
        '-A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT',
        '-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP',
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
        '-A KUBE-NODEPORTS -m comment --comment "ns2/svc2:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT',
        # loadBalancerSourceRanges " 203.0.113.0/25" of svc5
        '-A KUBE-PROXY-FIREWALL -m comment --comment "ns5/svc5:p80 traffic not accepted by KUBE-FW-NUKIZ6OKUXPJNT4C" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j DROP',
        '-A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j KUBE-FW-NUKIZ6OKUXPJNT4C',
        '-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 203.0.113.0/25 -j KUBE-EXT-NUKIZ6OKUXPJNT4C',
        '-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"',
    ):
        assert line in text.splitlines()
    nat = text.split("*nat")[1]
    assert nat.strip().splitlines()[-2].endswith("-j KUBE-SEP-I77PXRDZVX7PMWMN")
    services = [l for l in nat.splitlines() if l.startswith("-A KUBE-SERVICES")]
    assert services[-1].endswith("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")


def test_iptables_has_localhost_nodeports_and_kubelets_guard_as_kube_proxy_writes_them():
    """localhostNodePorts (kube-proxy's default): the NodePorts rule matches 127.0.0.0/8 too (no
    `! -d 127.0.0.0/8`), and kubelet's KUBE-FIREWALL chain, first in INPUT and OUTPUT, drops what
    route_localnet would let in (TestOverallIPTablesRules' filter table, kube-proxy v1.33)."""
    text = render_iptables(kube_proxy_plan(), "node1")
    filt = text.split("*filter")[1].split("COMMIT")[0].strip().splitlines()
    assert ":KUBE-FIREWALL - [0:0]" in filt
    assert ('-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 '
            "! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP") in filt
    jumps = [l for l in filt if l.startswith("-I ")]
    # prepended last, so first in their chains, with no comment
    assert jumps[-2:] == ["-I INPUT 1 -j KUBE-FIREWALL", "-I OUTPUT 1 -j KUBE-FIREWALL"]
    assert "127.0.0.0/8" not in text.split("*nat")[1]


def test_iptables_with_nfacct_counters_writes_kube_proxys_counted_rules():
    """With its nfacct counters made in the node, kube-proxy counts dropped INVALID packets and
    writes each NodePort's localhost jump apart, before the general one, to count it: the lines of
    TestOverallIPTablesRules (whose fake proxier has the counters), in its order. Without them,
    neither (see the test above)."""
    lines = render_iptables(kube_proxy_plan(), "node1", nfacct=True).splitlines()
    assert ("-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts "
            "-j DROP") in lines
    assert [line for line in lines if line.startswith("-A KUBE-NODEPORTS -m comment --comment ns")] == [
        "-A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3001 -m nfacct "
        "--nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-GNZBNJ2PO5MGZ6GT",
        "-A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT",
        "-A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3003 -m nfacct "
        "--nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-X27LE4BHSL4DOUIK",
        "-A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp --dport 3003 -j KUBE-EXT-X27LE4BHSL4DOUIK",
        "-A KUBE-NODEPORTS -m comment --comment ns5/svc5:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3002 -m nfacct "
        "--nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-NUKIZ6OKUXPJNT4C",
        "-A KUBE-NODEPORTS -m comment --comment ns5/svc5:p80 -m tcp -p tcp --dport 3002 -j KUBE-EXT-NUKIZ6OKUXPJNT4C",
    ]
    without = render_iptables(kube_proxy_plan(), "node1", nfacct=False)
    assert "nfacct" not in without and "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP" in without


def test_nftables_matches_kube_proxy_for_its_own_test_services():
    text = render_nftables(kube_proxy_plan(), "node1").splitlines()  # kube-proxy's form by default
    for line in (  # from kube-proxy's TestOverallNFTablesRules expectations
        "add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade",
        "add rule ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80 numgen random mod 2 vmap { 0 : goto endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 , 1 : goto endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 }",
        "add rule ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 update @affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 { ip saddr }",
        "add set ip kube-proxy affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 { type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }",
        'add rule ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80 ip saddr 10.0.0.0/8 goto service-42NFTM6N-ns2/svc2/tcp/p80 comment "short-circuit pod traffic"',
        "add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips",
        "add rule ip kube-proxy masquerading masquerade fully-random",
        # loadBalancerSourceRanges " 203.0.113.0/25" of svc5
        "add chain ip kube-proxy firewall-HVFWP5L3-ns5/svc5/tcp/p80",
        "add rule ip kube-proxy firewall-HVFWP5L3-ns5/svc5/tcp/p80 ip saddr != { 203.0.113.0/25 } drop",
        "add element ip kube-proxy firewall-ips { 5.6.7.8 . tcp . 80 : goto firewall-HVFWP5L3-ns5/svc5/tcp/p80 }",
    ):
        assert line in text
    joined = "\n".join(text)
    assert '172.30.0.46 . tcp . 80 comment "ns6/svc6:p80" : goto reject-chain' in joined
    assert "tcp . 3003 : goto external-4AT6LBPK-ns3/svc3/tcp/p80" in joined


def test_nftables_balancing_rules_writes_a_cascade_instead_of_a_vmap():
    svc4 = "service-LAUZTJTB-ns4/svc4/tcp/p80"
    ep4, ep5 = "endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80", "endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80"
    default = render_nftables(kube_proxy_plan(), "node1")
    cascade = render_nftables(with_balancing(kube_proxy_plan(), "rules"), "node1")
    assert f"add rule ip kube-proxy {svc4} numgen random mod 2 vmap {{ 0 : goto {ep4} , 1 : goto {ep5} }}" in default
    lines = [l for l in cascade.splitlines() if l.startswith(f"add rule ip kube-proxy {svc4} ")]
    assert lines[-2:] == [f"add rule ip kube-proxy {svc4} numgen random mod 2 == 0 goto {ep4}",
                          f"add rule ip kube-proxy {svc4} goto {ep5}"]
    assert "numgen random mod 2 vmap" not in cascade
    assert render_nftables(with_balancing(kube_proxy_plan(), "rules"), "node1", vmap=True) == default


def test_probabilities_are_kube_proxys():
    assert [probability(n) for n in (3, 2)] == ["0.3333333333", "0.5000000000"]


def test_large_clusters_drop_endpoint_comments():
    svcs = [service("default", f"s{i}", f"10.96.{i // 250}.{i % 250 + 1}",
                    port(80, None, [ep(f"10.244.{i // 250}.{i % 250 + 1}")])) for i in range(1001)]
    text = render_iptables(plan(*svcs), "node1")
    assert not [l for l in text.splitlines() if l.startswith("-A KUBE-SEP") and "--comment" in l]


@pytest.mark.parametrize("p", sample_plans())
def test_iptables_references_only_defined_chains(p):
    for node in ("node1", "node2"):
        for table in render_iptables(p, node).split("COMMIT")[:-1]:
            declared = set(re.findall(r"^:(\S+)", table, re.M))
            builtin = {"INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"}
            for line in table.splitlines():
                if line.startswith(("-A", "-I")):
                    words = shlex.split(line)
                    assert words[1] in declared | builtin, line
                    if "-j" not in words:  # kube-proxy's KUBE-FW fall-through: a comment alone
                        assert words[2:4] == ["-m", "comment"] and len(words) == 6, line
                        continue
                    target = words[words.index("-j") + 1]
                    assert target in declared | IPT_TARGETS, line
                    assert "--set" not in words or words[words.index("--name") + 1] in declared


@pytest.mark.parametrize("p", sample_plans())
def test_nftables_references_only_defined_objects(p):
    for vmap in (False, True):
        text = render_nftables(p, "node1", vmap=vmap)
        chains = set(re.findall(r"^add chain ip kube-proxy (\S+)", text, re.M))
        sets = set(re.findall(r"^add (?:set|map) ip kube-proxy (\S+)", text, re.M))
        for chain in re.findall(r"(?:goto|jump) ([^\s,]+)", text):
            assert chain in chains, chain
        for name in re.findall(r"@([\w./-]+)", text):
            assert name in sets, name
        defined_before = set()
        for line in text.splitlines():  # nft wants a chain to exist before a rule names it
            if line.startswith("add chain"):
                defined_before.add(line.split()[4])
            if line.startswith("add rule"):
                for chain in re.findall(r"(?:goto|jump) ([^\s,]+)", line):
                    assert chain in defined_before, line


def test_render_is_deterministic_and_per_node():
    p = sample_plans()[1]
    assert render_iptables(p, "node1") == render_iptables(p, "node1")
    assert render_nftables(p, "node1") != render_nftables(p, "node2")


def test_merge_keeps_foreign_rules_and_replaces_ours():
    saved = "\n".join([
        "*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]", ":KUBE-SVC-OLD - [0:0]", ":KUBE-SERVICES - [0:0]",
        ":LAB-MASQ - [0:0]",
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        "-A POSTROUTING -j LAB-MASQ", "-A LAB-MASQ -s 10.244.0.0/16 -j MASQUERADE",
        "-A KUBE-SVC-OLD -j DROP", "COMMIT", "*mangle", ":PREROUTING ACCEPT [0:0]", "COMMIT", ""])
    rendered = render_iptables(kube_proxy_plan(), "node1")
    merged = merge_iptables(saved, rendered)
    assert "KUBE-SVC-OLD" not in merged and "*mangle" not in merged
    assert "-A LAB-MASQ -s 10.244.0.0/16 -j MASQUERADE" in merged and ":LAB-MASQ - [0:0]" in merged
    assert merged.count("-A PREROUTING") == 1
    assert "-I " not in merged
    post = [l for l in merged.splitlines() if l.startswith("-A POSTROUTING")]
    assert post[0].endswith("-j KUBE-POSTROUTING") and post[1] == "-A POSTROUTING -j LAB-MASQ"
    assert merge_iptables(merged, rendered) == merged
    cleared = merge_iptables(merged, "")
    assert "KUBE-" not in cleared and "-A LAB-MASQ" in cleared


def test_5000_services_render_each_exactly_once():
    """At scale no service is lost or doubled (every chain name distinct). How long it takes is
    bench/bench_services.py's to print, not a test's to assert."""
    svcs = [service("default", f"s{i}", f"10.96.{i // 250}.{i % 250 + 1}",
                    port(80, "http", [ep(f"10.{k}.{i // 250}.{i % 250 + 1}", node=f"node{k % 2 + 1}")
                                      for k in range(3)], node_port=30000 + i % 2700),
                    type="NodePort") for i in range(5000)]
    p = plan(*svcs)
    ipt = render_iptables(p, "node2")
    svc_chains = re.findall(r"^:(KUBE-SVC-\w+) ", ipt, re.M)
    assert len(svc_chains) == len(set(svc_chains)) == 5000
    assert len(re.findall(r"^:KUBE-SEP-\w+ ", ipt, re.M)) == 15000
    nft = render_nftables(p, "node2")
    chains = re.findall(r"^add chain ip kube-proxy (service-\w+-default/s\d+/tcp/http)$", nft, re.M)
    assert len(chains) == len(set(chains)) == 5000
    assert len(re.findall(r"^add chain ip kube-proxy endpoint-", nft, re.M)) == 15000


# --- the real tools, in a throwaway network namespace ---------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a network namespace")


@needs_root
@pytest.mark.skipif(shutil.which("nft") is None, reason="nft not installed")
@pytest.mark.parametrize("vmap", [False, True])
def test_nft_accepts_the_render(scratch_netns, vmap):
    for p in sample_plans():
        text = render_nftables(p, "node1", vmap=vmap)
        proc = subprocess.run(["ip", "netns", "exec", scratch_netns, "nft", "-c", "-f", "-"],
                              input=text, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


@needs_root
@pytest.mark.skipif(shutil.which("iptables-restore") is None, reason="iptables not installed")
def test_iptables_restore_accepts_the_render(scratch_netns):
    for p in sample_plans():
        text = render_iptables(p, "node1")
        for argv in (["iptables-restore", "--noflush", "--test"], ["iptables-restore", "--test"]):
            proc = subprocess.run(["ip", "netns", "exec", scratch_netns, *argv],
                                  input=text if "--noflush" in argv else merge_iptables("", text),
                                  capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
