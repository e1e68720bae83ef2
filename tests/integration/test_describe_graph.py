"""describe and graph on a real lab, in both kube-proxy modes: what describe shows of the network
is what the kernel holds (checked here with `ip` and the rule tools on their own), its counters
move with real traffic, and the graph's svg and html pages render in a real headless browser
showing every pod."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from .conftest import Lab, new_lab_name, torn_down

MODES = ("iptables", "nftables")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="module", params=MODES)
def lab(request, host_before):
    lab = Lab(new_lab_name("dg"))
    with torn_down(lab.name):
        lab("up", "--proxy-mode", request.param)  # the example lab
        lab.mode = request.param
        yield lab


def ip_json(netns: str, *args: str) -> list:
    return json.loads(subprocess.run(["ip", "-n", netns, "-json", *args], capture_output=True, text=True,
                                     check=True).stdout)


def test_describe_pod_is_kubectls_layout_and_the_kernels_network(lab):
    pod = lab.pods()["client"]
    out = lab("describe", "pod", "client").stdout
    assert out.startswith("Name:             client\nNamespace:        default\nPriority:         0\n")
    assert f"Node:             node1/{pod['status']['hostIP']}\n" in out
    assert f"IP:               {pod['status']['podIP']}\nIPs:\n  IP:  {pod['status']['podIP']}\n" in out
    assert re.search(r"\n    State:          Running\n      Started:      \w{3}, \d\d \w{3} \d{4} ", out)
    assert "\nEvents:\n  Type    Reason     Age" in out
    assert re.search(r"\n  Normal  Scheduled  \S+ +default-scheduler  Successfully assigned default/client to node1\n",
                     out)
    # the network part, against the kernel read here on its own
    netns, node_netns = f"{lab.name}.pod.default.client", f"{lab.name}.node.node1"
    eth0 = next(l for l in ip_json(netns, "-details", "addr") if l["ifname"] == "eth0")
    assert f"eth0  UP  veth      {pod['status']['podIP']}/24  {eth0['address']}" in out
    peer = next(l for l in ip_json(node_netns, "-details", "link") if l["ifindex"] == eth0["link_index"])
    assert peer["master"] == "cbr0" and peer["linkinfo"]["info_slave_data"]["hairpin"] is True
    assert f"Veth Peer:    {peer['ifname']} in {node_netns} (node node1), UP\n" in out
    assert "Bridge Port:  state forwarding, hairpin on, learning on\n" in out
    gateway = next(r for r in ip_json(netns, "route") if r["dst"] == "default")["gateway"]
    assert f"    default via {gateway} dev eth0\n" in out


def test_describe_service_shows_its_rules_and_counters_that_move(lab):
    cluster_ip = json.loads(lab("get", "svc", "web", "-o", "json").stdout)["spec"]["clusterIP"]
    lab.exec("client", "sh", "-ec", f"for i in 1 2 3 4 5; do curl -sf -m 10 http://{cluster_ip}/hostname; done")
    out = lab("describe", "svc", "web").stdout
    assert "Selector:                 app=web\nType:                     NodePort\n" in out
    web = sorted(p["status"]["podIP"] for n, p in lab.pods().items() if n.startswith("web-"))
    assert f"Endpoints:                {','.join(f'{ip}:8080' for ip in web)}\n" in out
    node1 = out.split("\n  node1:")[1].split("\n  node2:")[0]
    if lab.mode == "iptables":
        entered = int(re.match(r"\s+\d+ rules \(iptables-save -c: \[packets:bytes\]\), (\d+) connections entered",
                               node1).group(1))
        assert entered >= 5  # the client's five connections, each counted once in KUBE-SERVICES
        for ip in web:
            assert f"-j DNAT --to-destination {ip}:8080" in node1
        saved = subprocess.run(["ip", "netns", "exec", f"{lab.name}.node.node1", "iptables-save", "-c", "-t", "nat"],
                               capture_output=True, text=True, check=True).stdout
        rule = next(l for l in saved.splitlines() if '"default/web:http cluster IP"' in l and "KUBE-SERVICES" in l)
        assert rule in node1  # the same line, the same counter
    else:
        assert "map service-ips: " in node1 and " . tcp . 80 : goto service-" in node1
        for ip in web:
            assert f"dnat to {ip}:8080" in node1
    assert "default/web-public" not in out  # only this Service's rules


def test_describe_node_deployment_and_not_found(lab):
    out = lab("describe", "node", "node1").stdout
    on_node1 = sorted(n for n, p in lab.pods().items() if p["spec"]["nodeName"] == "node1")
    assert f"Non-terminated Pods:          ({len(on_node1)} in total)\n" in out
    bridge = next(l for l in ip_json(f"{lab.name}.node.node1", "addr") if l["ifname"] == "cbr0")
    gw = next(a for a in bridge["addr_info"] if a["family"] == "inet")
    assert f"Bridge:             cbr0 {gw['local']}/{gw['prefixlen']}, {len(on_node1)} ports\n" in out
    assert re.search(r"\n  Rules:\s+" + ("iptables: filter " if lab.mode == "iptables"
                                          else "nftables: table ip kube-proxy: "), out)
    dep = lab("describe", "deploy", "web").stdout
    assert "Replicas:               3 desired | 3 updated | 3 total | 3 available | 0 unavailable\n" in dep
    assert re.search(r"\nNewReplicaSet:\s+web-\w+ \(3/3 replicas created\)\n", dep)
    missing = lab("describe", "pod", "nope", check=False)
    assert missing.returncode == 1 and missing.stderr == 'Error from server (NotFound): pods "nope" not found\n'
    # as kubectl: a name that is no pod's describes the pods whose names start with it; several
    # names, one after another; a missing one among them is an error after the others
    web = sorted(n for n in lab.pods() if n.startswith("web-"))
    assert re.findall(r"^Name:\s+(\S+)$", lab("describe", "pods", "web").stdout, re.M) == web
    both = lab("describe", "pod", "client", "nope", web[0], check=False)
    assert re.findall(r"^Name:\s+(\S+)$", both.stdout, re.M) == ["client", web[0]]
    assert both.returncode == 1 and 'pods "nope" not found' in both.stderr


def test_graph_dot_and_mermaid_name_every_pod(lab):
    pods = lab.pods()
    dot = lab("graph").stdout
    mermaid = lab("graph", "-o", "mermaid").stdout
    for name, p in pods.items():
        assert name in dot and p["status"]["podIP"] in dot
        assert name in mermaid and p["status"]["podIP"] in mermaid


def _browser() -> str:
    found = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if found is None:
        pytest.skip(f"no headless browser here (looked for {', '.join(BROWSERS)}; setup.sh installs Debian's "
                    "chromium)")
    return found


@pytest.mark.parametrize("fmt", ["svg", "html"])
def test_graph_renders_in_a_real_browser_showing_every_pod(lab, fmt, tmp_path):
    if shutil.which("dot") is None:
        pytest.skip("Graphviz is not installed (setup.sh installs it)")
    browser = _browser()
    page = tmp_path / f"lab.{fmt}"
    page.write_text(lab("graph", "-o", fmt).stdout)
    argv = [browser, "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(argv + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # the DOM the browser built: the svg's text elements, for every pod its name and address
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", dom.stdout)
    for name, p in lab.pods().items():
        shown = name if p["metadata"]["namespace"] == "default" else f"{p['metadata']['namespace']}/{name}"
        assert shown in texts, f"{shown} not drawn"
        assert p["status"]["podIP"] in texts
    shot = tmp_path / "shot.png"
    done = subprocess.run(argv + [f"--screenshot={shot}", "--window-size=1400,1600", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
