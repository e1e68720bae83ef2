"""networking.wiring: cni with the real reference plugins (containernetworking-plugins), beside
the lab's own netlink wiring: the same lab built both ways gives the pods the same addresses,
interfaces and routes, and the same reachability (pod to pod on a node and across nodes, a
Service, DNS, a host port); `check` runs the plugins' CHECK; a broken user conflist is refused
with its file:line (or the plugin's own message) and changes nothing; `down` leaves nothing, and
nothing is ever written under the host's /var/lib/cni."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from kubenet_lab.plan import naming

from .conftest import (MANIFESTS, Lab, host_snapshot, kl, lab_namespaces, lab_processes, new_lab_name, torn_down,
                       wait_for)

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/lib/cni/bridge"),
                                reason="needs containernetworking-plugins (./setup.sh installs it)")

CLUSTER = "apiVersion: kubenet-lab.dev/v1alpha1\nkind: Cluster\nnetworking:\n  wiring: {wiring}\n"
STATE_ROOT = Path(os.environ.get("KUBENET_LAB_STATE_ROOT", "/run/kubenet-lab"))
HOST_CNI = ("/var/lib/cni", "/run/cni")
NODE2_IP = "172.18.0.3"
PODS = ("client", "near", "s1", "s2", "hp")

# A user's list for both nodes: host-local told the plan's address picks the range holding it,
# and that range's gateway is the node's cbr0 address. No portmap: the lab's hostPort rules stay.
USER_CONFLIST = {
    "cniVersion": "1.0.0", "name": "mynet",
    "plugins": [{
        "type": "bridge", "bridge": "cbr0", "isGateway": True, "isDefaultGateway": True, "hairpinMode": True,
        "capabilities": {"ips": True},
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24", "gateway": "10.244.0.1"},
                                                   {"subnet": "10.244.1.0/24", "gateway": "10.244.1.1"}]]}}],
}


def host_cni_files() -> dict[str, list[str]]:
    return {d: sorted(str(p) for p in Path(d).rglob("*")) if os.path.exists(d) else None for d in HOST_CNI}


@pytest.fixture(scope="module")
def cni_before():
    return host_cni_files()


@pytest.fixture(scope="module")
def labs(tmp_path_factory, host_before, cni_before):
    """The same lab with each wiring, side by side."""
    made = {}
    try:
        for wiring in ("netlink", "cni"):
            made[wiring] = Lab(new_lab_name("w"))
        with torn_down(made["netlink"].name), torn_down(made["cni"].name):
            for wiring, lab in made.items():
                cluster = tmp_path_factory.mktemp(wiring) / "cluster.yaml"
                cluster.write_text(CLUSTER.format(wiring=wiring))
                lab.cluster = cluster
                lab("up", str(cluster), str(MANIFESTS / "cni-wiring.yaml"))
            yield made
    finally:
        assert host_cni_files() == cni_before


def pod_ns(lab: Lab, name: str) -> str:
    return f"{lab.name}.pod.default.{name}"


def ipj(netns: str, *args: str):
    return json.loads(subprocess.run(["ip", "-n", netns, "-j", *args], capture_output=True, text=True,
                                     check=True).stdout or "[]")


def pod_view(lab: Lab, pod: str) -> dict:
    """What the pod sees of its network: eth0's addresses and MTU, `lo` up, its routes (without
    the route's origin protocol: the lab's are `boot`, a plugin's unspecified)."""
    ns = pod_ns(lab, pod)
    (eth0,) = ipj(ns, "addr", "show", "dev", "eth0")
    (lo,) = ipj(ns, "addr", "show", "dev", "lo")
    routes = sorted((r["dst"], r.get("gateway"), r["dev"], r.get("scope"), r.get("prefsrc"))
                    for r in ipj(ns, "route", "show"))
    return {"eth0": sorted((a["local"], a["prefixlen"]) for a in eth0["addr_info"] if a["family"] == "inet"),
            "mtu": eth0["mtu"], "lo_up": "UP" in lo["flags"], "routes": routes}


def wget(lab: Lab, target: str, url: str) -> str:
    return lab.exec(target, "wget", "-qO-", "-T", "10", url).stdout.strip()


def test_both_wirings_give_every_pod_the_same_address_interface_and_routes(labs):
    netlink, cni = labs["netlink"], labs["cni"]
    ips = {w: {name: pod["status"]["podIP"] for name, pod in lab.pods().items()} for w, lab in labs.items()}
    assert ips["netlink"] == ips["cni"]
    assert set(PODS) <= set(ips["cni"])
    for pod in PODS:
        assert pod_view(netlink, pod) == pod_view(cni, pod), pod
    view = pod_view(cni, "s1")
    assert view["eth0"] == [(ips["cni"]["s1"], 24)] and ("default", "10.244.1.1", "eth0", None, None) in view["routes"]


def test_cni_wiring_is_the_plugins_work_with_its_state_under_the_lab_s(labs):
    lab = labs["cni"]
    state = STATE_ROOT / lab.name / "cni"
    leases = sorted(p.name for p in (state / "networks" / "kubenet").iterdir() if p.name[0].isdigit())
    assert leases == sorted(pod["status"]["podIP"] for pod in lab.pods().values()
                            if not pod["spec"].get("hostNetwork"))
    results = [json.loads(p.read_text()) for p in (state / "results").iterdir()]
    assert sorted(r["pod"] for r in results if r["pod"].startswith("default/")) == sorted(f"default/{p}" for p in PODS)
    hp = next(r for r in results if r["pod"] == "default/hp")
    sandbox = [i for i in hp["result"]["interfaces"] if i.get("sandbox")]
    assert [i["name"] for i in sandbox] == ["eth0"] and sandbox[0]["sandbox"] == f"/run/netns/{pod_ns(lab, 'hp')}"
    # the node's end of the veth: made by the bridge plugin, renamed to the plan's name, marked as the lab's
    host = [i["name"] for i in hp["result"]["interfaces"] if not i.get("sandbox") and i["name"] != "cbr0"]
    node2 = naming.node_netns(lab.name, "node2")
    (veth,) = ipj(node2, "-d", "link", "show", host[0])
    assert veth["master"] == "cbr0" and veth["ifalias"] == naming.mark(lab.name)
    assert veth["linkinfo"]["info_slave_data"]["hairpin"] is True


def test_pods_reach_each_other_a_service_and_dns_the_same_way_under_both_wirings(labs):
    for lab in labs.values():
        ips = {name: pod["status"]["podIP"] for name, pod in lab.pods().items()}
        assert wget(lab, "client", f"http://{ips['near']}:8080/hostname") == "near"  # same node
        assert wget(lab, "client", f"http://{ips['s1']}:8080/hostname") == "s1"  # across nodes
        assert wget(lab, "client", f"http://{ips['s2']}:8080/clientip").startswith(ips["client"] + ":")  # no NAT
        assert wget(lab, "client", "http://srv/hostname") in ("s1", "s2")  # a Service, by its DNS name
        cluster_ip = lab("get", "svc", "srv", "-o", "jsonpath={.spec.clusterIP}").stdout
        assert lab.exec("client", "dig", "+short", "srv.default.svc.cluster.local").stdout.split() == [cluster_ip]
        assert wget(lab, "client", f"http://{NODE2_IP}:8088/hostname") == "hp"  # hostPort on node2


def test_with_the_lab_s_conflist_host_ports_are_the_portmap_plugin_s_alone(labs):
    lab = labs["cni"]
    node2 = naming.node_netns(lab.name, "node2")
    nat = subprocess.run(["ip", "netns", "exec", node2, "iptables-save", "-t", "nat"], capture_output=True,
                         text=True, check=True).stdout
    mapped = [line for line in nat.splitlines() if line.startswith("-A CNI-DN-") and "-j DNAT" in line]
    assert mapped and all("--to-destination " + lab.ip("hp") + ":8080" in line for line in mapped)
    # the lab's own render of node2's hostPort rules is empty: never both
    stored = json.loads((STATE_ROOT / lab.name / "rules" / "portmap" / "node2.json").read_text())
    assert stored["sandboxes"] == {}


def test_check_runs_the_plugins_check_which_finds_a_pod_changed(labs):
    lab = labs["cni"]
    report = json.loads(lab("check", "-o", "json").stdout)
    checked = {r["from"]: r for r in report["results"] if r["kind"] == "cni"}
    assert report["ok"] and set(checked) >= {f"pod/default/{p}" for p in PODS}
    assert all(r["observed"] == "CHECK passed" for r in checked.values())
    assert not any(r["kind"] == "cni" for r in json.loads(labs["netlink"]("check", "-o", "json").stdout)["results"])
    # the pod's default route taken away: the bridge plugin's CHECK says so, in its own words
    ns = pod_ns(lab, "near")
    subprocess.run(["ip", "-n", ns, "route", "del", "default"], check=True)
    try:
        failed = json.loads(lab("check", "-o", "json", check=False).stdout)
        (near,) = [r for r in failed["results"] if r["kind"] == "cni" and r["from"] == "pod/default/near"]
        assert not near["ok"] and "CNI plugin bridge CHECK failed" in near["observed"]
        assert "0.0.0.0/0" in near["observed"] or "route" in near["observed"].lower(), near["observed"]
    finally:
        subprocess.run(["ip", "-n", ns, "route", "add", "default", "via", "10.244.0.1", "dev", "eth0"], check=True)
    assert json.loads(lab("check", "-o", "json").stdout)["ok"]


def lab_state(lab: Lab) -> tuple:
    pods = {name: (p["metadata"]["uid"], p["status"]["podIP"]) for name, p in lab.pods().items()}
    results = sorted(p.name for p in (STATE_ROOT / lab.name / "cni" / "results").iterdir())
    return pods, sorted(lab_namespaces(lab.name)), results


@pytest.mark.parametrize("text, expected", [
    (json.dumps({**USER_CONFLIST, "plugins": [*USER_CONFLIST["plugins"], {"type": "nosuch"}]}, indent=2),
     "user.conflist:31: plugins[1].type: no plugin 'nosuch' in CNI_PATH"),  # its "type": "nosuch" line
    ('{\n  "cniVersion": "1.0.0",\n  "name": "mynet"\n  "plugins": []\n}\n',
     "user.conflist:4: not valid JSON: Expecting ',' delimiter"),
], ids=["no-such-plugin", "bad-json"])
def test_a_broken_user_conflist_is_refused_and_changes_nothing(labs, tmp_path, text, expected):
    lab = labs["cni"]
    before = lab_state(lab)
    (tmp_path / "user.conflist").write_text(text)
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(CLUSTER.format(wiring="cni") + "  cniConfig: user.conflist\n")
    proc = lab("up", str(cluster), str(MANIFESTS / "cni-wiring.yaml"), check=False)
    assert proc.returncode != 0
    assert f"networking.cniConfig: {tmp_path}/{expected}" in proc.stderr, proc.stderr
    assert lab_state(lab) == before


def _no_range_for_node2(conflist: dict) -> None:
    conflist["plugins"][0]["ipam"]["ranges"][0].pop()


@pytest.mark.parametrize("edit, extra, expected", [
    # node2's pods' addresses lie in no range: host-local refuses them at ADD, in its words
    (_no_range_for_node2, "",
     "with CNI: CNI plugin bridge ADD failed: failed to allocate all requested IPs: 10.244.1."),
    # vxlan's pods need MTU 1450, which this list does not give
    (lambda conflist: None, "  backend: vxlan\n",
     "user.conflist: the pod's eth0 has MTU 1500, the backend's is 1450 (give the bridge plugin \"mtu\": 1450)"),
], ids=["host-local-refuses", "mtu"])
def test_a_failed_add_is_reported_and_a_new_lab_leaves_nothing(tmp_path, cni_before, edit, extra, expected):
    conflist = json.loads(json.dumps(USER_CONFLIST))
    edit(conflist)
    (tmp_path / "user.conflist").write_text(json.dumps(conflist))
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(CLUSTER.format(wiring="cni") + "  cniConfig: user.conflist\n" + extra)
    name = new_lab_name("w")
    with torn_down(name):
        proc = kl(name, "up", str(cluster), str(MANIFESTS / "cni-wiring.yaml"), check=False)
        assert proc.returncode != 0
        assert expected in proc.stderr, proc.stderr
        assert lab_namespaces(name) == [] and not (STATE_ROOT / name).exists()
    assert host_cni_files() == cni_before


def test_a_user_conflist_wires_the_pods_and_leaves_host_ports_to_the_lab(tmp_path, host_before, cni_before):
    (tmp_path / "user.conflist").write_text(json.dumps(USER_CONFLIST))
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(CLUSTER.format(wiring="cni") + "  cniConfig: user.conflist\n")
    lab = Lab(new_lab_name("w"))
    with torn_down(lab.name):
        lab("up", str(cluster), str(MANIFESTS / "cni-wiring.yaml"))
        results = [json.loads(p.read_text()) for p in (STATE_ROOT / lab.name / "cni" / "results").iterdir()]
        assert {r["networkName"] for r in results} == {"mynet"}
        assert (STATE_ROOT / lab.name / "cni" / "networks" / "mynet").is_dir()
        assert wget(lab, "client", f"http://{NODE2_IP}:8088/hostname") == "hp"  # the lab's hostPort rules
        stored = json.loads((STATE_ROOT / lab.name / "rules" / "portmap" / "node2.json").read_text())
        assert list(stored["sandboxes"]) != []
        assert json.loads(lab("check", "-o", "json").stdout)["ok"]
        # back to the lab's own wiring on the running lab: every pod made anew, the plugins' DEL run
        cluster.write_text(CLUSTER.format(wiring="netlink"))
        out = lab("up", str(cluster), str(MANIFESTS / "cni-wiring.yaml"))
        assert "networking.wiring changed from cni" in out.stdout + out.stderr
        assert list((STATE_ROOT / lab.name / "cni" / "results").iterdir()) == []
        assert [p for p in (STATE_ROOT / lab.name / "cni" / "networks" / "mynet").iterdir()
                if p.name[0].isdigit()] == []  # every lease released
        assert wget(lab, "client", "http://srv/hostname") in ("s1", "s2")
    assert lab_namespaces(lab.name) == [] and lab_processes(lab.name) == []
    assert not (STATE_ROOT / lab.name).exists()
    assert host_snapshot() == host_before
    assert host_cni_files() == cni_before


def test_a_pod_whose_namespace_vanished_gets_its_del_before_pods_are_wired_again(labs):
    # the namespace removed behind the lab's back (as a failed `up` undone removes the ones it
    # made): no DEL ran, so host-local still holds the address until the runtime's sweep
    lab = labs["cni"]
    state = STATE_ROOT / lab.name / "cni"
    subprocess.run(["ip", "netns", "delete", pod_ns(lab, "near")], check=True)
    lab("up", str(lab.cluster), str(MANIFESTS / "cni-wiring.yaml"))
    pods = wait_for(lambda: (p := lab.pods()) and p["near"]["status"].get("podIP") and p, "near wired anew")
    cached = [json.loads(p.read_text()) for p in (state / "results").iterdir()]
    assert sorted(c["pod"] for c in cached) == sorted(f"{p['metadata']['namespace']}/{name}"
                                                      for name, p in pods.items())
    assert all(os.path.lexists(c["netns"]) for c in cached)  # the vanished one's entry went with its DEL
    leases = {p.name for p in (state / "networks" / "kubenet").iterdir() if p.name[0].isdigit()}
    assert leases == {p["status"]["podIP"] for p in pods.values()}  # one lease per live pod, none leaked
    lab("delete", "pod", "near")  # (its containers stayed in the vanished namespace: none of the wiring's business)


def test_down_leaves_nothing_the_plugins_made_with_the_state_lost(tmp_path, host_before, cni_before):
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(CLUSTER.format(wiring="cni"))
    lab = Lab(new_lab_name("w"))
    with torn_down(lab.name):
        lab("up", str(cluster), str(MANIFESTS / "cni-wiring.yaml"))
        node2 = naming.node_netns(lab.name, "node2")
        assert "CNI-HOSTPORT-DNAT" in subprocess.run(["ip", "netns", "exec", node2, "iptables-save", "-t", "nat"],
                                                     capture_output=True, text=True, check=True).stdout
        subprocess.run(["rm", "-rf", str(STATE_ROOT / lab.name)], check=True)  # the runtime's cache and leases too
        kl(lab.name, "down")
        assert lab_namespaces(lab.name) == []
    assert lab_processes(lab.name) == [] and not (STATE_ROOT / lab.name).exists()
    assert host_snapshot() == host_before
    assert host_cni_files() == cni_before


def test_down_leaves_nothing(labs, host_before, cni_before):
    for lab in labs.values():
        kl(lab.name, "down")
        assert lab_namespaces(lab.name) == [] and lab_processes(lab.name) == []
        assert not (STATE_ROOT / lab.name).exists()
    assert host_snapshot() == host_before
    assert host_cni_files() == cni_before
