"""hostPort: the CNI portmap plugin's rules (proxy/portmap.py) as data, checked against the plugin's
own test vectors, traced with kube-proxy's rules of the same node, and synced incrementally against
the strict tool models of test_sync; and the NodePorts scheduling filter."""
from __future__ import annotations

import dataclasses
import io
import os
import shutil
import subprocess
import textwrap
from ipaddress import IPv4Address

import pytest

from kubenet_lab.errors import InputError
from kubenet_lab.manifests import load_model
from kubenet_lab.plan import make_plan
from kubenet_lab.proxy import portmap
from kubenet_lab.proxy.portmap import PortMapping, Sandbox, plan_load, render
from tests.unit.rendered_tracer import for_node
from kubenet_lab.kernel.rules import merge_iptables
from tests.unit.test_sync import IptablesModel, NftModel, Refused

MODES = ("iptables", "nftables")
NODE1, NODE2 = "172.18.0.2", "172.18.0.3"
EXTERNAL = "172.18.0.254"
# containernetworking/plugins plugins/meta/portmap/portmap_iptables_test.go
PLUGIN_ID = ("icee6giejonei6sohng6ahngee7laquohquee9shiGo7fohferakah3Feiyoolu2pei7ciPhoh7shaoX6vai3vuf0ahfaeng8yohb9"
             "ceu0daez5hashee8ooYai5wa3y")


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


def plan_of(text: str, mode: str = "iptables", previous=None):
    model = load_model(["-"], io.StringIO(textwrap.dedent(text).lstrip("\n")))
    model = dataclasses.replace(model, cluster=dataclasses.replace(model.cluster, kube_proxy_mode=mode))
    return make_plan(model, "lab", previous)


def pod(name: str, *ports: str, node: str | None = None, host_network: bool = False, init: str = "",
        labels: str = "") -> str:
    """A Pod manifest; each port `containerPort[:hostPort[:protocol[:hostIP]]]`."""
    def port(spec: str) -> str:
        cp, hp, proto, ip = (spec.split(":") + ["", "", ""])[:4]
        return ("{containerPort: " + cp + (f", hostPort: {hp}" if hp else "")
                + (f", protocol: {proto}" if proto else "") + (f", hostIP: '{ip}'" if ip else "") + "}")
    spec = [f"containers: [{{name: c, image: nginx, ports: [{', '.join(port(p) for p in ports)}]}}]"]
    if node:
        spec.append(f"nodeName: {node}")
    if host_network:
        spec.append("hostNetwork: true")
    if init:
        spec.append(f"initContainers: [{{name: i, image: busybox, ports: [{port(init)}]}}]")
    meta = f"{{name: {name}" + (f", labels: {{{labels}}}" if labels else "") + "}"
    return f"apiVersion: v1\nkind: Pod\nmetadata: {meta}\nspec: {{{', '.join(spec)}}}\n---\n"


def ips(plan) -> dict[str, str]:
    return {p.name: str(p.ip) for p in plan.pods if p.namespace == "default"}


def where(plan) -> dict[str, str]:
    return {p.name: p.node for p in plan.pods if p.namespace == "default"}


# --- the plugin's layout -----------------------------------------------------------------------------


def test_chain_names_are_the_plugins(monkeypatch):
    """The plugin's own vectors: genDnatChain(netName, containerID)."""
    monkeypatch.setattr(portmap, "NETWORK", "testNetName")
    assert portmap.dn_chain(PLUGIN_ID) == "CNI-DN-bfd599665540dd91d5d28"
    monkeypatch.setattr(portmap, "NETWORK", "test")
    assert portmap.dn_chain(PLUGIN_ID) == "CNI-DN-67e92b96e692a494b6b85"


def test_iptables_rules_are_the_plugins_for_its_own_test_mappings(monkeypatch):
    """fillDnatRules for the plugin test's mappings and container 10.0.0.2/24 (without its
    conditionsV4): entry rules per protocol, then per mapping hairpin, localhost and DNAT; the
    IPv6 hostIPs get no rule."""
    monkeypatch.setattr(portmap, "NETWORK", "test")
    maps = [PortMapping(8080, 80, "tcp"), PortMapping(8081, 80, "tcp"), PortMapping(8080, 81, "udp"),
            PortMapping(8082, 82, "udp"), PortMapping(8083, 83, "tcp", "192.168.0.2"),
            PortMapping(8084, 84, "tcp", "0.0.0.0"), PortMapping(8085, 85, "tcp", "2001:db8:a::1"),
            PortMapping(8086, 86, "tcp", "::")]
    frag = portmap._iptables_fragment(Sandbox("ns/p", PLUGIN_ID, IPv4Address("10.0.0.2"), 24, tuple(maps)))
    chain = "CNI-DN-67e92b96e692a494b6b85"
    comment = f'-m comment --comment "dnat name: \\"test\\" id: \\"{PLUGIN_ID}\\""'
    assert frag.chains == (chain,)
    assert frag.shared == {"CNI-HOSTPORT-DNAT": (
        f"-A CNI-HOSTPORT-DNAT {comment} -m multiport -p tcp --destination-ports 8080,8081,8083,8084,8085,8086 "
        f"-j {chain}",
        f"-A CNI-HOSTPORT-DNAT {comment} -m multiport -p udp --destination-ports 8080,8082 -j {chain}")}
    expected = []
    for proto, host, cont, dst in (("tcp", 8080, 80, ""), ("tcp", 8081, 80, ""), ("udp", 8080, 81, ""),
                                   ("udp", 8082, 82, ""), ("tcp", 8083, 83, " -d 192.168.0.2"),
                                   ("tcp", 8084, 84, "")):
        base = f"-A {chain} -p {proto} --dport {host}{dst}"
        expected += [f"{base} -s 10.0.0.2/24 -j CNI-HOSTPORT-SETMARK", f"{base} -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK",
                     f"{base} -j DNAT --to-destination 10.0.0.2:{cont}"]
    assert list(frag.rules) == expected


def test_more_than_15_ports_are_split_as_multiport_needs():
    maps = tuple(PortMapping(8000 + i, 80, "tcp") for i in range(17))
    frag = portmap._iptables_fragment(Sandbox("ns/p", "c1", IPv4Address("10.0.0.2"), 24, maps))
    entries = frag.shared["CNI-HOSTPORT-DNAT"]
    assert [e.split("--destination-ports ")[1].split()[0].count(",") + 1 for e in entries] == [15, 2]


def test_nftables_layout():
    maps = (PortMapping(80, 8080, "tcp"), PortMapping(53, 53, "udp", "172.18.0.2"), PortMapping(81, 81, "tcp", "::"))
    frag = portmap._nftables_fragment(Sandbox("ns/p", "c1", IPv4Address("10.244.0.5"), 24, maps))
    t = "add rule ip cni_hostport"
    assert frag.shared == {
        "hostports": (f'{t} hostports tcp dport 80 dnat to 10.244.0.5:8080 comment "c1"',
                      f'{t} hostports ip daddr 172.18.0.2 udp dport 53 dnat to 10.244.0.5:53 comment "c1"'),
        "masquerading": (f'{t} masquerading ip saddr 10.244.0.5 ip daddr 10.244.0.5 masquerade comment "c1"',
                         f'{t} masquerading ip saddr 127.0.0.1 ip daddr 10.244.0.5 masquerade comment "c1"')}
    text = portmap.RenderedPortmap("nftables", {"c1": frag}).text()
    assert text.startswith("add table ip cni_hostport\ndelete table ip cni_hostport\n"
                           'add table ip cni_hostport { comment "CNI portmap plugin" ; }\n')
    assert ("add chain ip cni_hostport prerouting { type nat hook prerouting priority dstnat ; }\n"
            "add rule ip cni_hostport prerouting fib daddr type local jump hostports_all\n") in text
    assert "add chain ip cni_hostport masquerading { type nat hook postrouting priority srcnat ; }" in text


def test_only_the_pods_regular_containers_host_ports_on_their_node(mode):
    p = plan_of(pod("a", "8080:80", "9000", node="node1", init="7000:7000") + pod("b", "53:53:UDP", node="node2")
                + pod("h", "9100", node="node1", host_network=True) + pod("c", "80", node="node1"), mode)
    one, two = portmap.sandboxes(p, "node1"), portmap.sandboxes(p, "node2")
    assert [(s.pod, s.mappings) for s in one] == [("default/a", (PortMapping(80, 8080, "tcp"),))]
    assert [(s.pod, s.mappings) for s in two] == [("default/b", (PortMapping(53, 53, "udp"),))]
    assert one[0].ip == IPv4Address(ips(p)["a"]) and one[0].prefix == 24
    assert portmap.sandboxes(p, "node1", ended={"default/a"}) == []
    assert render(p, "node1").backend == mode and render(p, "node1").text() != render(p, "node2").text()


def test_container_id_changes_when_the_pod_is_made_anew():
    p1 = plan_of(pod("a", "8080:80", node="node1"))
    p2 = plan_of(pod("a", "8080:80", node="node1"), previous=p1)
    p3 = plan_of(pod("a", "8080:81", node="node1"), previous=p2)
    ids = [portmap.sandboxes(p, "node1")[0].container_id for p in (p1, p2, p3)]
    assert ids[0] == ids[1] != ids[2] and len(ids[0]) == 64


def test_no_host_ports_no_rules_at_all():
    p = plan_of(pod("a", "8080", node="node1"))
    assert render(p, "node1").text() == ""
    assert render(plan_of(pod("a", "8080"), "nftables"), "node1").text() == (
        "add table ip cni_hostport\ndelete table ip cni_hostport\n")


# --- behaviour: the packet tracer over kube-proxy's rules and the plugin's ---------------------------

WEB = pod("web", "8080:80", "8081:81:UDP", node="node1") + pod("near", "80", node="node1") + \
    pod("far", "80", node="node2") + pod("pinned", "9090:9090:TCP:172.18.0.2", node="node1")


def test_host_port_from_outside_reaches_the_pod_unmasqueraded(mode):
    p = plan_of(WEB, mode)
    web = ips(p)["web"]
    t = for_node(p, "node1", mode)
    out = t.trace(EXTERNAL, NODE1, 80, source="external")
    assert out.endpoints == {f"{web}:8080": 1.0} and not any(o.masquerade for o in out.outcomes)
    assert t.trace(EXTERNAL, NODE1, 81, proto="udp", source="external").endpoints == {f"{web}:8081": 1.0}
    assert t.trace(EXTERNAL, NODE1, 81, source="external").untouched  # 81 is UDP only
    assert t.trace(EXTERNAL, NODE1, 8080, source="external").untouched  # the container port is no host port


def test_only_on_its_own_node(mode):
    p = plan_of(WEB, mode)
    t2 = for_node(p, "node2", mode)
    assert t2.trace(EXTERNAL, NODE2, 80, source="external").untouched
    assert t2.trace(ips(p)["far"], NODE1, 80).untouched  # passes node2 to node1 as it is
    out = for_node(p, "node1", mode).trace(ips(p)["far"], NODE1, 80)  # ... and node1 DNATs it
    assert out.endpoints == {f"{ips(p)['web']}:8080": 1.0} and not out.masqueraded


def test_hairpin_is_masqueraded_as_the_plugin_does(mode):
    p = plan_of(WEB, mode)
    web, near = ips(p)["web"], ips(p)["near"]
    t = for_node(p, "node1", mode)
    itself = t.trace(web, NODE1, 80)
    assert itself.endpoints == {f"{web}:8080": 1.0} and itself.masqueraded
    # another pod of the node: the iptables backend marks the pod's whole subnet (the plugin gives
    # the address with its prefix), the nftables backend only the pod itself
    neighbour = t.trace(near, NODE1, 80)
    assert neighbour.endpoints == {f"{web}:8080": 1.0}
    assert neighbour.masqueraded == (mode == "iptables")


def test_from_the_node_itself_and_on_its_bridge_address(mode):
    p = plan_of(WEB, mode)
    t = for_node(p, "node1", mode)
    web = ips(p)["web"]
    assert t.trace(NODE1, NODE1, 80, source="node").endpoints == {f"{web}:8080": 1.0}
    assert t.trace(ips(p)["near"], "10.244.0.1", 80).endpoints == {f"{web}:8080": 1.0}  # any local address


def test_host_ip_restricts_the_destination(mode):
    p = plan_of(WEB, mode)
    t = for_node(p, "node1", mode)
    pinned = ips(p)["pinned"]
    assert t.trace(EXTERNAL, NODE1, 9090, source="external").endpoints == {f"{pinned}:9090": 1.0}
    assert t.trace(ips(p)["near"], "10.244.0.1", 9090).untouched


def test_an_ended_pod_has_no_rules(mode):
    p = plan_of(WEB, mode)
    assert for_node(p, "node1", mode, ended={"default/web"}).trace(EXTERNAL, NODE1, 80, source="external").untouched


def test_a_node_port_is_kube_proxys_first(mode):
    svc = ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {type: NodePort, selector: {app: x}, "
           "ports: [{port: 80, nodePort: 30080}]}\n---\n")
    p = plan_of(svc + pod("x", "80", node="node2", labels="app: x") + pod("y", "80:30080", node="node1"), mode)
    out = for_node(p, "node1", mode).trace(EXTERNAL, NODE1, 30080, source="external")
    assert out.endpoints == {f"{ips(p)['x']}:80": 1.0} and out.masqueraded


# --- loading: full, and incremental as CNI DEL/ADD ------------------------------------------------------------


class PortmapIptables(IptablesModel):
    def full(self, text: str) -> None:
        saved = "".join(f"*{t}\n" + "".join(f":{c} - [0:0]\n" for c in chains) + "".join(
            f"-A {c} {r}\n" for c, rules in chains.items() for r in rules) + "COMMIT\n"
            for t, chains in self.tables.items())
        self.tables = {}
        self.load(merge_iptables(saved, text, portmap.PREFIXES))


def loaded(model) -> object:
    if isinstance(model, NftModel):
        return {c: sorted(r) for c, r in model.chains.items()}
    tables = {t: {c: sorted(r) for c, r in chains.items() if r or c not in model.BUILTIN}
              for t, chains in model.tables.items()}
    return {t: chains for t, chains in tables.items() if chains}


PODS = {"a": pod("a", "8080:80", node="node1"), "b": pod("b", "53:53:UDP", "9000:9000", node="node1"),
        "c": pod("c", "80:8000", node="node1")}
STEPS = [("a",), ("a", "b"), ("a", "b", "c"), ("b", "c"), ("b",), ("c",), (), ("a", "c")]


def test_each_change_writes_only_what_changed_and_ends_as_a_full_load(mode):
    model = PortmapIptables() if mode == "iptables" else NftModel()
    old, previous = None, None
    for names in STEPS:
        p = plan_of("".join(PODS[n] for n in names) or pod("z", "1"), mode, previous)
        new = render(p, "node1")
        load = plan_load(old, new)
        assert load is not None
        assert load.full == (old is None or not old.sandboxes or not new.sandboxes)
        model.full(load.text) if load.full else model.load(load.text)
        ref = PortmapIptables() if mode == "iptables" else NftModel()
        ref.full(new.text())
        assert loaded(model) == loaded(ref), names
        if not load.full and mode == "iptables":  # only the pods that came or went
            declared = {line[1:].split()[0] for line in load.text.splitlines() if line.startswith(":")}
            assert declared == ({c for f in new.sandboxes.values() for c in f.chains}
                                ^ {c for f in old.sandboxes.values() for c in f.chains})
        assert plan_load(new, new) is None
        assert plan_load(new, render(plan_of("".join(PODS[n] for n in names) or pod("z", "1"), mode, p),
                                     "node1")) is None  # the same manifests again: nothing
        old, previous = new, p


def test_a_partial_load_needs_the_skeleton():
    p = plan_of(PODS["a"])
    q = plan_of(PODS["a"] + PODS["b"], previous=p)
    load = plan_load(render(p, "node1"), render(q, "node1"))
    assert not load.full and load.text.splitlines()[1] == portmap.GUARD
    with pytest.raises(Refused):
        PortmapIptables().load(load.text)


def test_the_kube_proxy_merge_keeps_the_plugins_rules_and_the_other_way_round():
    from kubenet_lab.proxy.iptables import render_iptables
    p = plan_of(WEB)
    kube, pm = render_iptables(p, "node1"), render(p, "node1").text()
    both = merge_iptables(merge_iptables("", kube), pm, portmap.PREFIXES)

    def tables(text):
        """The chains' rules; POSTROUTING's two jumps in either order (on a node, whichever program
        prepended its jump last comes first; each masquerades only its own mark)."""
        model = IptablesModel()
        model.load(text)
        model.tables["nat"]["POSTROUTING"].sort()
        return model.tables
    assert tables(merge_iptables(both, kube)) == tables(both)  # kube-proxy's complete load keeps them
    assert "CNI-HOSTPORT-DNAT" in both
    assert tables(merge_iptables(both, "", portmap.PREFIXES)) == tables(merge_iptables("", kube))
    nat = both.split("*nat\n")[1]
    prerouting = [l for l in nat.splitlines() if l.startswith("-A PREROUTING")]
    assert prerouting == ['-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
                          "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT"]


def test_state_round_trip(mode):
    r = render(plan_of(WEB, mode), "node1")
    assert portmap.RenderedPortmap.from_json(r.to_json()) == r
    with pytest.raises(ValueError):
        portmap.RenderedPortmap.from_json('{"format": 0, "backend": "iptables", "sandboxes": {}}')


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a network namespace")


@needs_root
@pytest.mark.skipif(shutil.which("iptables-restore") is None or shutil.which("nft") is None,
                    reason="iptables and nft not installed")
def test_the_tools_accept_the_render_and_the_changes(scratch_netns):
    def run(*argv, text):
        return subprocess.run(["ip", "netns", "exec", scratch_netns, *argv], input=text, capture_output=True, text=True)

    for mode in MODES:
        old = render(plan_of(PODS["a"] + PODS["b"], mode), "node1")
        new = render(plan_of(PODS["b"] + PODS["c"], mode), "node1")
        if mode == "iptables":
            proc = run("iptables-restore", text=merge_iptables("", old.text(), portmap.PREFIXES))
            assert proc.returncode == 0, proc.stderr
            proc = run("iptables-restore", "--noflush", text=plan_load(old, new).text)
            assert proc.returncode == 0, proc.stderr
            saved = run("iptables-save", "-t", "nat", text="").stdout
            assert "CNI-HOSTPORT-DNAT" in saved and portmap.dn_chain(next(iter(old.sandboxes))) not in saved
            proc = run("iptables-restore", text=merge_iptables(saved, "", portmap.PREFIXES))
            assert proc.returncode == 0 and "CNI-" not in run("iptables-save", text="").stdout
        else:
            for text in (old.text(), plan_load(old, new).text, render(plan_of(pod("z", "1"), mode), "node1").text()):
                proc = run("nft", "-f", "-", text=text)
                assert proc.returncode == 0, proc.stderr
            assert "cni_hostport" not in run("nft", "list", "tables", text="").stdout


# --- scheduling: the NodePorts filter ---------------------------------------------------------------------

NOT_FREE = "node(s) didn't have free ports for the requested pod ports"


def test_a_second_pod_with_the_same_host_port_goes_to_the_other_node():
    p = plan_of(pod("a", "80:80") + pod("b", "8080:80") + pod("c", "80:80:UDP") + pod("d", "80:81"))
    assert where(p)["a"] != where(p)["b"]
    assert p.pending == ()


def test_no_node_with_the_port_free_leaves_the_pod_pending():
    p = plan_of(pod("a", "80:80") + pod("b", "80:80") + pod("c", "8080:80"))
    assert {x.name: x.message for x in p.pending} == {"c": (
        f"0/2 nodes are available: 2 {NOT_FREE}. preemption: 0/2 nodes are available: 2 No preemption victims "
        "found for incoming pod.")}


def test_host_ips_conflict_as_the_scheduler_says():
    # two addresses do not conflict; 0.0.0.0 (or none) conflicts with every address
    p = plan_of(pod("a", "80:80:TCP:172.18.0.2", node="node1") + pod("b", "80:80:TCP:10.244.0.1", node="node1"))
    assert where(p) == {"a": "node1", "b": "node1"}
    p = plan_of(pod("a", "80:80:TCP:172.18.0.2", node="node1") + pod("b", "80:80", node="node2")
                + pod("c", "80:80:TCP:0.0.0.0"))
    assert [x.name for x in p.pending] == ["c"]


def test_a_host_network_pods_ports_are_its_nodes():
    p = plan_of(pod("h", "9100", host_network=True, node="node1") + pod("x", "8080:9100") + pod("y", "8080:9100"))
    assert where(p)["x"] == "node2" and [x.name for x in p.pending] == ["y"]


def test_two_pods_with_a_node_name_and_one_host_port_are_refused():
    with pytest.raises(InputError) as e:
        plan_of(pod("a", "80:80", node="node1") + pod("b", "8080:80", node="node1"))
    assert e.value.problems == [f"<stdin>:9: spec.nodeName: pod default/b wants host port 80/TCP on node node1, "
                                f"which pod default/a already takes ({NOT_FREE}); give one of them another "
                                "hostPort or node"]


def test_a_pod_keeps_its_node_unless_its_new_host_port_is_taken_there():
    p1 = plan_of(pod("a", "80:80", node="node1") + pod("c", "80", node="node1"))
    p2 = plan_of(pod("a", "80:80", node="node1") + pod("c", "8080"), previous=p1)
    assert where(p2)["c"] == "node1"
    p3 = plan_of(pod("a", "80:80", node="node1") + pod("c", "8080:80"), previous=p2)
    assert where(p3)["c"] == "node2"


def test_the_api_servers_checks():
    with pytest.raises(InputError) as e:
        plan_of(pod("a", "80:80", "81:80"))
    assert any('hostPort: Duplicate value: "/TCP/80"' in m for m in e.value.problems)
    with pytest.raises(InputError) as e:
        plan_of(pod("h", "80:81", host_network=True))
    assert any("containerPort: Invalid value: 80: must match `hostPort` when `hostNetwork` is true" in m
               for m in e.value.problems)
    plan_of(pod("a", "80:80", "80:80:UDP", "81:81:TCP:172.18.0.2", "82:81:TCP:172.18.0.3"))
    plan_of(pod("h", "80:80", host_network=True))


def test_get_pods_shows_the_host_ports():
    from kubenet_lab.output import pod_object
    p = plan_of(pod("a", "8080:80", "9000", "53:53:UDP:172.18.0.2", node="node1"))
    ports = pod_object(p, p.pod("default/a"), {})["spec"]["containers"][0]["ports"]
    assert ports == [{"containerPort": 8080, "protocol": "TCP", "hostPort": 80},
                     {"containerPort": 9000, "protocol": "TCP"},
                     {"containerPort": 53, "protocol": "UDP", "hostPort": 53, "hostIP": "172.18.0.2"}]


def test_two_daemon_sets_with_one_host_port_are_refused():
    ds = ("apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {{name: {0}}}\n"
          "spec: {{selector: {{matchLabels: {{app: {0}}}}}, "
          "template: {{metadata: {{labels: {{app: {0}}}}}, spec: {{containers: [{{name: c, image: nginx, "
          "ports: [{{containerPort: 80, hostPort: 80}}]}}]}}}}}}\n---\n")
    p = plan_of(ds.format("one") + pod("x", "80:80"))
    assert len([q for q in p.pods if q.name.startswith("one-")]) == 2 and [x.name for x in p.pending] == ["x"]
    with pytest.raises(InputError) as e:
        plan_of(ds.format("one") + ds.format("two"))
    assert len(e.value.problems) == 2
    assert all(m.startswith("<stdin>:9: spec.template.spec.containers: pod default/two-") for m in e.value.problems)
