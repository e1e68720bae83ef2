"""`describe` as text: kubectl's describer layout (Go's tabwriter, its field names and order,
its probe and event wording) from kubectl-style objects, and the network view from captured
kernel output (ip -json, iptables-save -c, nft list). No root, no lab."""
from __future__ import annotations

import textwrap

import pytest

from kubenet_lab.inspect import describe as d
from kubenet_lab.inspect import netview as nv
from kubenet_lab.model.objects import PlannedContainer, Probe, RunNothing


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    import time
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# ------------------------------------------------------------------------------------------
# Go's tabwriter
# ------------------------------------------------------------------------------------------


def test_tabwriter_aligns_a_block_of_lines_with_cells_and_leaves_the_last_cell_alone():
    text = "Name:\tx\nNamespace:\tdefault\nIPs:\n  IP:\t10.0.0.1\n"
    assert d.tabwriter(text) == "Name:       x\nNamespace:  default\nIPs:\n  IP:  10.0.0.1\n"


def test_tabwriter_nested_columns_as_go_does():
    # column 1 exists only on the middle lines: it is a block of its own inside column 0's
    text = "a:\tb\nport:\thttp\t80/TCP\nnodeport:\thttp\t30080/TCP\nx:\ty\n"
    assert d.tabwriter(text) == ("a:         b\n"
                                 "port:      http  80/TCP\n"
                                 "nodeport:  http  30080/TCP\n"
                                 "x:         y\n")


def test_tabwriter_keeps_trailing_blanks_of_a_cell():
    assert d.tabwriter("  Type\tStatus\n  Ready \tTrue \n") == "  Type    Status\n  Ready   True \n"


# ------------------------------------------------------------------------------------------
# kubectl's pod layout
# ------------------------------------------------------------------------------------------

POD = {
    "metadata": {"name": "nginx", "namespace": "default", "labels": {"run": "nginx", "new-label": "awesome"},
                 "creationTimestamp": "2022-02-04T01:43:50Z"},
    "spec": {"nodeName": "k8s-m02", "containers": [{"name": "nginx", "image": "nginx", "ports": []}]},
    "status": {"phase": "Running", "podIP": "10.244.1.6", "podIPs": [{"ip": "10.244.1.6"}],
               "hostIP": "192.168.177.28", "startTime": "2022-02-04T01:43:50Z", "qosClass": "BestEffort",
               "conditions": [{"type": t, "status": "True"} for t in
                              ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
               "containerStatuses": [{"name": "nginx", "ready": True, "restartCount": 0,
                                      "state": {"running": {"startedAt": "2022-02-04T01:43:56Z"}}}]},
}

# kubectl 1.31's `describe pod` of such a pod, its volumes and Container/Image ID aside (the lab
# has none): the alignment is the tabwriter's, block by block, trailing blanks included.
KUBECTL_POD = """\
Name:             nginx
Namespace:        default
Priority:         0
Service Account:  default
Node:             k8s-m02/192.168.177.28
Start Time:       Fri, 04 Feb 2022 01:43:50 +0000
Labels:           new-label=awesome
                  run=nginx
Annotations:      <none>
Status:           Running
IP:               10.244.1.6
IPs:
  IP:  10.244.1.6
Containers:
  nginx:
    Image:          nginx
    Port:           <none>
    Host Port:      <none>
    State:          Running
      Started:      Fri, 04 Feb 2022 01:43:56 +0000
    Ready:          True
    Restart Count:  0
    Environment:    <none>
    Mounts:         <none>
Conditions:
  Type              Status
  Initialized       True 
  Ready             True 
  ContainersReady   True 
  PodScheduled      True 
Volumes:            <none>
QoS Class:          BestEffort
Node-Selectors:     <none>
Tolerations:        <none>
Events:             <none>
"""


def test_pod_is_laid_out_as_kubectl_lays_it_out():
    assert d.describe_pod(POD, {}, []) == KUBECTL_POD


def test_pod_controller_probes_env_and_events():
    pod = {**POD, "metadata": {**POD["metadata"], "ownerReferences": [
        {"kind": "ReplicaSet", "name": "web-1", "controller": True}]}}
    probe = Probe("httpGet", port=8080, path="/healthz")
    c = PlannedContainer("nginx", "nginx", RunNothing(), readiness_probe=probe,
                         liveness_probe=Probe("tcpSocket", port=80, initial_delay=5),
                         env=(("MODE", "demo"), ("POD_IP", "10.244.1.6")))
    events = [d.EventRow("Normal", "Scheduled", "2m", "default-scheduler", "Successfully assigned default/nginx"),
              d.EventRow("Warning", "Unhealthy", d.event_age(3, "2m", "5s"), "kubelet",
                         "Readiness probe failed: HTTP probe failed with statuscode: 503")]
    out = d.describe_pod(pod, {"nginx": c}, events, "Network:\n  x\n")
    # aligned with the IPs lines above it, as the tabwriter has it
    assert "\nControlled By:    ReplicaSet/web-1\n".replace("    ", "  ") in out
    assert "    Liveness:       tcp-socket :80 delay=5s timeout=1s period=10s #success=1 #failure=3\n" in out
    assert ("    Readiness:      http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3\n"
            in out)
    assert "    Environment:\n      MODE:    demo\n      POD_IP:  10.244.1.6\n" in out
    assert out.endswith(textwrap.dedent("""\
        Events:
          Type     Reason     Age              From               Message
          ----     ------     ----             ----               -------
          Normal   Scheduled  2m               default-scheduler  Successfully assigned default/nginx
          Warning  Unhealthy  5s (x3 over 2m)  kubelet            Readiness probe failed: HTTP probe failed with statuscode: 503
        Network:
          x
        """))  # noqa: E501 - kubectl's event line as it prints it


def test_probe_wording_of_each_handler():
    assert d.describe_probe(Probe("exec", command=("cat", "/tmp/ok"), period=5)) == \
        "exec [cat /tmp/ok] delay=0s timeout=1s period=5s #success=1 #failure=3"
    assert d.describe_probe(Probe("httpGet", port="http", path="/", scheme="HTTPS", host="10.0.0.1")) == \
        "http-get https://10.0.0.1:http/ delay=0s timeout=1s period=10s #success=1 #failure=3"


def test_service_ports_endpoints_and_no_endpoints():
    svc = {"metadata": {"name": "web", "namespace": "default"},
           "spec": {"type": "NodePort", "selector": {"app": "web"}, "clusterIP": "10.96.0.2",
                    "clusterIPs": ["10.96.0.2"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                    "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080,
                               "protocol": "TCP"}],
                    "sessionAffinity": "None", "externalTrafficPolicy": "Cluster",
                    "internalTrafficPolicy": "Cluster"}, "status": {}}
    eps = {"subsets": [{"addresses": [{"ip": f"10.244.0.{i}"} for i in range(2, 7)],
                        "ports": [{"name": "http", "port": 8080}]}]}
    out = d.describe_service(svc, eps, [])
    assert out == textwrap.dedent("""\
        Name:                     web
        Namespace:                default
        Labels:                   <none>
        Annotations:              <none>
        Selector:                 app=web
        Type:                     NodePort
        IP Family Policy:         SingleStack
        IP Families:              IPv4
        IP:                       10.96.0.2
        IPs:                      10.96.0.2
        Port:                     http  80/TCP
        TargetPort:               http/TCP
        NodePort:                 http  30080/TCP
        Endpoints:                10.244.0.2:8080,10.244.0.3:8080,10.244.0.4:8080 + 2 more...
        Session Affinity:         None
        External Traffic Policy:  Cluster
        Internal Traffic Policy:  Cluster
        Events:                   <none>
        """)
    assert "Endpoints:                <none>\n" in d.describe_service(svc, {"subsets": []}, [])


def test_deployment_replicasets_and_strategy():
    dep = {"metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
           "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "c", "image": "nginx",
                                                          "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}},
           "status": {"replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}}
    out = d.describe_deployment(dep, [("web-a", 1, 1)], [("web-b", 2, 3)], {}, [], ("RollingUpdate", "25%", "25%"))
    assert "Replicas:               3 desired | 2 updated | 3 total | 2 available | 1 unavailable\n" in out
    assert "RollingUpdateStrategy:  25% max unavailable, 25% max surge\n" in out
    # in the block that starts at the template's Volumes line, as kubectl's tabwriter has it
    assert "OldReplicaSets:    web-a (1/1 replicas created)\nNewReplicaSet:     web-b (2/3 replicas created)\n" in out
    assert "  Containers:\n   c:\n    Image:         nginx\n    Port:          80/TCP\n" in out


def test_node_taints_and_pods():
    node = {"metadata": {"name": "node1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"taints": [{"key": "b", "effect": "NoSchedule"},
                                {"key": "a", "value": "1", "effect": "NoExecute"}],
                     "podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
            "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}}
    out = d.describe_node(node, [("default", "client", "5m")], [])
    assert "Roles:              control-plane\n" in out
    assert "Taints:             a=1:NoExecute\n                    b:NoSchedule\n" in out
    assert "Non-terminated Pods:          (1 in total)\n  Namespace                   Name    Age\n" in out


# ------------------------------------------------------------------------------------------
# The network view, from captured kernel output
# ------------------------------------------------------------------------------------------

POD_LINKS = [
    {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP", "LOWER_UP"], "mtu": 65536, "operstate": "UNKNOWN",
     "link_type": "loopback", "address": "00:00:00:00:00:00",
     "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
    {"ifindex": 2, "link_index": 4, "ifname": "eth0", "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
     "mtu": 1500, "operstate": "UP", "link_type": "ether", "address": "de:c8:01:00:0f:72",
     "linkinfo": {"info_kind": "veth"},
     "addr_info": [{"family": "inet", "local": "10.244.0.2", "prefixlen": 24},
                   {"family": "inet6", "local": "fe80::1", "prefixlen": 64}]},
]
POD_ROUTES = [{"dst": "default", "gateway": "10.244.0.1", "dev": "eth0", "flags": []},
              {"dst": "10.244.0.0/24", "dev": "eth0", "protocol": "kernel", "scope": "link",
               "prefsrc": "10.244.0.2", "flags": []}]
NODE_LINKS = [
    {"ifindex": 2, "ifname": "cbr0", "flags": ["UP"], "mtu": 1500, "operstate": "UP",
     "linkinfo": {"info_kind": "bridge"},
     "addr_info": [{"family": "inet", "local": "10.244.0.1", "prefixlen": 24}]},
    {"ifindex": 4, "ifname": "vethcafe8b05", "master": "cbr0", "flags": ["UP"], "mtu": 1500, "operstate": "UP",
     "linkinfo": {"info_kind": "veth", "info_slave_kind": "bridge",
                  "info_slave_data": {"state": "forwarding", "hairpin": True, "learning": True}}},
]


def test_pod_network_shows_interfaces_routes_and_the_node_side():
    out = nv.pod_network(nv.Namespace("lab.pod.default.client", POD_LINKS, POD_ROUTES),
                         nv.Namespace("lab.node.node1", NODE_LINKS), "vethcafe8b05", "node1")
    assert out == textwrap.dedent("""\
        Network:
          Network Namespace:  lab.pod.default.client
          Interfaces:
            lo    UP  loopback  127.0.0.1/8    00:00:00:00:00:00  mtu 65536
            eth0  UP  veth      10.244.0.2/24  de:c8:01:00:0f:72  mtu 1500
          Routes:
            default via 10.244.0.1 dev eth0
            10.244.0.0/24 dev eth0 proto kernel scope link src 10.244.0.2
          Node Side:
            Veth Peer:    vethcafe8b05 in lab.node.node1 (node node1), UP
            Bridge:       cbr0
            Bridge Port:  state forwarding, hairpin on, learning on
        """)


def test_pod_network_says_what_is_missing():
    out = nv.pod_network(nv.Namespace("lab.pod.x", error="network namespace lab.pod.x does not exist"),
                         None, "veth1", "node1")
    assert "Error:              network namespace lab.pod.x does not exist\n" in out
    out = nv.pod_network(nv.Namespace("p", POD_LINKS, POD_ROUTES), nv.Namespace("n", []), "veth9", "node1")
    assert "veth9:  not found in n\n" in out


IPTABLES = """\
*filter
:INPUT ACCEPT [0:0]
[0:0] -A KUBE-SERVICES -d 10.96.0.9/32 -p tcp -m comment --comment "default/webx:http has no endpoints" -j REJECT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:KUBE-SVC-AAA - [0:0]
:KUBE-SEP-BBB - [0:0]
[2:120] -A KUBE-SEP-BBB -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.244.0.3:8080
[2:120] -A KUBE-SERVICES -d 10.96.0.2/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-AAA
[2:120] -A KUBE-SVC-AAA -m comment --comment "default/web:http -> 10.244.0.3:8080" -j KUBE-SEP-BBB
[0:0] -A KUBE-SERVICES -d 10.96.0.3/32 -p tcp -m comment --comment "default/web-public:http cluster IP" -j KUBE-SVC-CCC
[0:0] -A KUBE-EXT-AAA -m comment --comment "masquerade traffic for default/web:http external destinations" -j KUBE-MARK-MASQ
COMMIT
"""  # noqa: E501 - the rules as iptables-save prints them


def test_service_rules_are_the_ones_naming_it_in_the_order_a_packet_meets_them():
    found = nv.iptables_rules_for(IPTABLES, "default", "web")
    assert [line.split(" -A ")[1].split()[0] for _, line in found] == [
        "KUBE-SEP-BBB", "KUBE-SERVICES", "KUBE-SVC-AAA", "KUBE-EXT-AAA"]  # not web-public, not webx
    out = nv.service_network([nv.NodeRules("node1", "iptables", IPTABLES)], "default", "web")
    lines = out.splitlines()
    assert lines[1] == "  node1:  4 rules (iptables-save -c: [packets:bytes]), 2 connections entered"
    assert [l.split(" -A ")[1].split()[0] for l in lines[2:]] == [
        "KUBE-SERVICES", "KUBE-EXT-AAA", "KUBE-SVC-AAA", "KUBE-SEP-BBB"]
    assert nv.iptables_rules_for(IPTABLES, "default", "webx")[0][0] == "filter"


NFT = """\
table ip kube-proxy {
\tmap service-ips {
\t\ttype ipv4_addr . inet_proto . inet_service : verdict
\t\telements = { 10.96.0.10 . tcp . 53 : goto service-N-kube-system/kube-dns/tcp/dns-tcp,
\t\t\t     10.96.0.2 . tcp . 80 : goto service-S-default/web/tcp/http,
\t\t\t     10.96.0.3 . tcp . 80 : goto service-M-default/web-public/tcp/http }
\t}
\tchain service-S-default/web/tcp/http {
\t\tip daddr 10.96.0.2 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
\t\tnumgen random mod 1 vmap { 0 : goto endpoint-E-default/web/tcp/http__10.244.0.3/8080 }
\t}
\tchain service-M-default/web-public/tcp/http {
\t\tjump mark-for-masquerade
\t}
}
"""


def test_nftables_service_view_has_its_map_elements_and_chains():
    out = nv.service_network([nv.NodeRules("node2", "nftables", NFT)], "default", "web")
    assert out == textwrap.dedent("""\
        Rules:
          node2:  1 chains, 1 map elements (nft list table ip kube-proxy)
            map service-ips: 10.96.0.2 . tcp . 80 : goto service-S-default/web/tcp/http
            chain service-S-default/web/tcp/http {
              ip daddr 10.96.0.2 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
              numgen random mod 1 vmap { 0 : goto endpoint-E-default/web/tcp/http__10.244.0.3/8080 }
            }
        """)


def test_node_network_and_rule_counts():
    ns = nv.Namespace("lab.node.node1", NODE_LINKS, [{"dst": "10.244.1.0/24", "gateway": "172.18.0.3", "dev": "eth0"}],
                      [{"dst": "172.18.0.3", "dev": "eth0", "lladdr": "32:d7:91:da:92:ef", "state": ["REACHABLE"]}])
    out = nv.node_network(ns, nv.NodeRules("node1", "iptables", IPTABLES))
    assert "  Bridge:             cbr0 10.244.0.1/24, 1 ports\n" in out
    assert "    vethcafe8b05  UP  state forwarding  hairpin on\n" in out
    assert "    10.244.1.0/24 via 172.18.0.3 dev eth0\n" in out
    assert "    172.18.0.3 dev eth0 lladdr 32:d7:91:da:92:ef REACHABLE\n" in out
    assert ("Rules:  iptables: filter 1 rules in 1 chains; nat 5 rules in 3 chains; "
            "1 KUBE-SVC and 1 KUBE-SEP chains") in out
    assert nv.rule_counts(nv.NodeRules("n", "nftables", NFT)) == \
        "nftables: table ip kube-proxy: 2 chains, 3 rules, 1 maps"


TEMPLATE = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}


def test_statefulset_daemonset_and_job_have_kubectls_own_layouts():
    sts = d.describe_statefulset({"metadata": {"name": "web", "namespace": "default"},
                                  "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "x"}},
                                           "template": TEMPLATE}, "status": {"replicas": 2}},
                                 (2, 0, 0, 0), {}, [])
    assert "Replicas:           2 desired | 2 total\nUpdate Strategy:    RollingUpdate\n" in sts
    assert sts.endswith("  Tolerations:     <none>\nVolume Claims:     <none>\nEvents:            <none>\n")
    ds = d.describe_daemonset({"metadata": {"name": "agent", "namespace": "kube-system"},
                               "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": TEMPLATE},
                               "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2,
                                          "numberAvailable": 1}}, (1, 1, 0, 0), {}, [])
    assert "Namespace:" not in ds  # kubectl's DaemonSet describer prints none
    assert ("Desired Number of Nodes Scheduled: 2\nCurrent Number of Nodes Scheduled: 2\n"
            "Number of Nodes Scheduled with Up-to-date Pods: 0\nNumber of Nodes Scheduled with Available Pods: 1\n"
            "Number of Nodes Misscheduled: 0\nPods Status:  1 Running / 1 Waiting / 0 Succeeded / 0 Failed\n") in ds
    job = d.describe_job({"metadata": {"name": "pi", "namespace": "default"},
                          "spec": {"parallelism": 1, "completions": None, "suspend": False, "template": TEMPLATE},
                          "status": {"active": 1, "ready": 1, "startTime": "2026-01-01T00:00:00Z"}}, {}, [])
    assert ("Parallelism:    1\nCompletions:    <unset>\nSuspend:        false\n"
            "Start Time:     Thu, 01 Jan 2026 00:00:00 +0000\n"
            "Pods Statuses:  1 Active (1 Ready) / 0 Succeeded / 0 Failed\n") in job


def test_endpoints_subsets_as_kubectl_lists_them():
    ep = {"metadata": {"name": "web", "namespace": "default"},
          "subsets": [{"addresses": [{"ip": "10.244.0.3"}, {"ip": "10.244.1.3"}],
                       "notReadyAddresses": [{"ip": "10.244.0.9"}],
                       "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"port": 81, "protocol": "UDP"}]}]}
    assert d.describe_endpoints(ep, []) == textwrap.dedent("""\
        Name:         web
        Namespace:    default
        Labels:       <none>
        Annotations:  <none>
        Subsets:
          Addresses:          10.244.0.3,10.244.1.3
          NotReadyAddresses:  10.244.0.9
          Ports:
            Name     Port  Protocol
            ----     ----  --------
            http     8080  TCP
            <unset>  81    UDP

        Events:  <none>
        """)
