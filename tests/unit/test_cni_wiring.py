"""The CNI wiring's pure half (dataplane/wiring/cni.py): what the runtime hands each plugin, the
lab's conflist, a user's conflist checked with file:line and path, results and errors read back.

Expectations marked SPEC come from containernetworking/cni SPEC.md (commit 3f51e880, the
"Appendix: Examples" and "Section 5: Result Types / Error"), transcribed as test data: the
request configurations the runtime derives, and the result and error shapes plugins answer with.
"""
from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest

from kubenet_lab.dataplane import wiring
from kubenet_lab.dataplane.wiring import cni
from kubenet_lab.errors import InputError
from kubenet_lab.manifests import load_model
from kubenet_lab.model.objects import ClusterConfig, Model, Node
from kubenet_lab.plan import make_plan

PLUGINS = ("bridge", "host-local", "loopback", "portmap", "tuning", "static", "dhcp")

# SPEC: "Example configuration" (section 1), its comments left out (JSON has none).
SPEC_DBNET = """{
  "cniVersion": "1.1.0",
  "cniVersions": ["0.3.1", "0.4.0", "1.0.0", "1.1.0"],
  "name": "dbnet",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "keyA": ["some more", "plugin specific", "configuration"],

      "ipam": {
        "type": "host-local",
        "subnet": "10.1.0.0/16",
        "gateway": "10.1.0.1",
        "routes": [
            {"dst": "0.0.0.0/0"}
        ]
      },
      "dns": {
        "nameservers": [ "10.1.0.1" ]
      }
    },
    {
      "type": "tuning",
      "capabilities": {
        "mac": true
      },
      "sysctl": {
        "net.core.somaxconn": "500"
      }
    },
    {
        "type": "portmap",
        "capabilities": {"portMappings": true}
    }
  ]
}
"""

# SPEC: "Add example", the bridge plugin's result.
SPEC_BRIDGE_RESULT = {
    "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2}],
    "routes": [{"dst": "0.0.0.0/0"}],
    "interfaces": [{"name": "cni0", "mac": "00:11:22:33:44:55"}, {"name": "veth3243", "mac": "55:44:33:22:11:11"},
                   {"name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue"}],
    "dns": {"nameservers": ["10.1.0.1"]},
}


def spec_conflist() -> cni.Conflist:
    """dbnet as the spec's examples run it (their cniVersion, 1.1.0, is inserted as is)."""
    data = json.loads(SPEC_DBNET)
    return cni.Conflist(data["name"], data["cniVersion"], tuple(data["plugins"]))


def test_the_first_add_gets_the_plugin_config_with_name_and_version_and_no_prev_result():
    # SPEC "Add example" 1): the bridge's request; it declares no capability, so no runtimeConfig
    got = json.loads(cni.plugin_stdin(spec_conflist(), spec_conflist().plugins[0], cni.RuntimeConfig(), None))
    assert got == {"cniVersion": "1.1.0", "name": "dbnet", "type": "bridge", "bridge": "cni0",
                   "keyA": ["some more", "plugin specific", "configuration"],
                   "ipam": {"type": "host-local", "subnet": "10.1.0.0/16", "gateway": "10.1.0.1",
                            "routes": [{"dst": "0.0.0.0/0"}]},
                   "dns": {"nameservers": ["10.1.0.1"]}}


def test_del_gives_portmap_its_capability_argument_and_the_cached_result():
    # SPEC "Delete example" 1): portmap's request, capabilities replaced by runtimeConfig
    runtime = cni.RuntimeConfig(ips=(IPv4Interface("10.1.0.5/16"),),
                                port_mappings=(cni.PortMapping(8080, 80, "tcp"),))
    net = spec_conflist()
    got = json.loads(cni.plugin_stdin(net, net.plugins[2], runtime, SPEC_BRIDGE_RESULT))
    assert got == {"cniVersion": "1.1.0", "name": "dbnet", "type": "portmap",
                   "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
                   "prevResult": SPEC_BRIDGE_RESULT}
    # a capability the runtime does not offer is left out (tuning's mac)
    assert "runtimeConfig" not in json.loads(cni.plugin_stdin(net, net.plugins[1], runtime, None))


def test_the_environment_names_the_attachment():
    env = cni.environment("ADD", "abc123", "/run/netns/lab.pod.default.web", "/usr/lib/cni",
                          "/run/kubenet-lab/lab/cni/tools", args=cni.pod_args("default", "web", "abc123"))
    assert env == {"PATH": "/run/kubenet-lab/lab/cni/tools",
        "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc123", "CNI_NETNS": "/run/netns/lab.pod.default.web",
        "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni",
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abc123"}
    with pytest.raises(AssertionError):
        cni.environment("UP", "abc123", "/run/netns/x", "/usr/lib/cni", "/p")


def test_a_plugin_error_is_reported_with_its_own_msg_and_details():
    # SPEC "Error": the example error
    stdout = json.dumps({"cniVersion": "1.1.0", "code": 7, "msg": "Invalid Configuration",
                         "details": "Network 192.168.0.0/31 too small to allocate from."}).encode()
    assert str(cni.plugin_failure("host-local", "ADD", 1, stdout, b"")) == (
        "CNI plugin host-local ADD failed: Invalid Configuration: Network 192.168.0.0/31 too small to allocate "
        "from. (CNI error 7)")
    # no JSON: what it printed on stderr
    assert str(cni.plugin_failure("bridge", "DEL", 2, b"", b"panic: oops\n")) == \
        "CNI plugin bridge DEL failed: panic: oops"


def test_a_result_gives_the_sandbox_interface_s_address():
    wired = cni.read_result(SPEC_BRIDGE_RESULT)
    assert wired.addresses == (IPv4Interface("10.1.0.5/16"),)
    assert wired.sandbox_interfaces == ("eth0",)
    want = wiring.PodInterface(IPv4Interface("10.1.0.5/16"), IPv4Address("10.1.0.1"), 1500)
    assert cni.mismatch(wired, want) is None
    other = wiring.PodInterface(IPv4Interface("10.1.0.9/16"), IPv4Address("10.1.0.1"), 1500)
    assert "the plugins gave 10.1.0.5/16, the lab planned 10.1.0.9/16" in cni.mismatch(wired, other)
    with pytest.raises(cni.PluginError, match="printed no JSON"):
        cni.parse_result("bridge", b"not json")


def plan(backend: str = "host-gw"):
    model = Model(cluster=ClusterConfig(backend=backend, wiring="cni"), nodes=(Node("node1"), Node("node2")))
    return make_plan(model, "lab", None)


@pytest.mark.parametrize("backend, subnet, gateway, mtu", [
    ("host-gw", "10.244.1.0/24", "10.244.1.1", 1500),
    ("vxlan", "10.244.1.0/24", "10.244.1.1", 1450),  # flannel's MTU for the pods
    ("l2", "10.244.0.0/16", "10.244.1.1", 1450),  # one subnet, the node's own gateway
])
def test_the_lab_s_conflist_is_the_bridge_on_cbr0_with_host_local_on_the_pods_subnet(backend, subnet, gateway, mtu):
    p = plan(backend)
    node = p.node("node2")
    net = cni.with_state_dirs(cni.lab_conflist(wiring.node_interface(p, node), "cbr0", with_portmap=True),
                              "/run/kubenet-lab/lab/cni")
    assert net.to_json() == {"cniVersion": "1.0.0", "name": "kubenet", "disableCheck": False, "plugins": [
        {"type": "bridge", "bridge": "cbr0", "isGateway": True, "isDefaultGateway": True, "hairpinMode": True,
         "mtu": mtu, "capabilities": {"ips": True},
         "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet, "gateway": gateway}]],
                  "dataDir": "/run/kubenet-lab/lab/cni/networks"}},
        {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}]}
    assert cni.uses_portmap(net) and net.has_check


POD = """---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  nodeName: node1
  containers: [{name: web, image: nginx, ports: [{containerPort: 80, hostPort: 8080}]}]
"""


def test_every_pod_gets_the_plan_s_address_through_the_ips_capability(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text(CLUSTER + "  wiring: cni\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node1}\n" + POD)
    p = make_plan(load_model([str(path)]), "lab", None)
    pod = p.pods[0]
    iface = wiring.pod_interface(p, p.node("node1"), pod)
    assert iface.address == IPv4Interface((pod.ip, 24))
    net = cni.lab_conflist(wiring.node_interface(p, p.node("node1")), "cbr0", with_portmap=True)
    runtime = cni.RuntimeConfig(ips=(iface.address,), port_mappings=(cni.PortMapping(8080, 80, "tcp"),))
    bridge = json.loads(cni.plugin_stdin(net, net.plugins[0], runtime, None))
    assert bridge["runtimeConfig"] == {"ips": [str(iface.address)]} and "capabilities" not in bridge
    portmap = json.loads(cni.plugin_stdin(net, net.plugins[1], runtime, SPEC_BRIDGE_RESULT))
    assert portmap["runtimeConfig"] == {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}


def test_state_dirs_go_under_the_lab_s_whatever_the_list_says():
    net = cni.Conflist("n", "1.0.0", ({"type": "bridge", "ipam": {"type": "host-local", "dataDir": "/var/lib/cni/x"}},
                                      {"type": "tuning", "dataDir": "/run/cni/tuning"}))
    got = cni.with_state_dirs(net, "/run/kubenet-lab/l/cni").plugins
    assert got[0]["ipam"]["dataDir"] == "/run/kubenet-lab/l/cni/networks"
    assert got[1]["dataDir"] == "/run/kubenet-lab/l/cni/tuning"
    assert net.plugins[0]["ipam"]["dataDir"] == "/var/lib/cni/x"  # the given list untouched


def test_a_user_list_takes_the_highest_version_the_plugins_speak():
    net = cni.parse_conflist(SPEC_DBNET, "dbnet.conflist", PLUGINS, "/usr/lib/cni")
    assert (net.name, net.cni_version, net.types) == ("dbnet", "1.0.0", ("bridge", "tuning", "portmap"))
    assert net.plugins[0]["keyA"] == ["some more", "plugin specific", "configuration"]  # passed through


def test_a_single_network_configuration_is_a_list_of_one():
    text = '{"cniVersion": "0.4.0", "name": "mynet", "type": "bridge", "ipam": {"type": "host-local"}}'
    net = cni.parse_conflist(text, "10-mynet.conf", PLUGINS, "/usr/lib/cni")
    assert net.plugins == ({"type": "bridge", "ipam": {"type": "host-local"}},) and net.has_check
    old = cni.parse_conflist(text.replace("0.4.0", "0.3.1"), "x.conf", PLUGINS, "/usr/lib/cni")
    assert not old.has_check  # CHECK came with 0.4.0


@pytest.mark.parametrize("edit, where, message", [
    (('"bridge": "cni0",', '"bridge": "cni0",,'), "x.conflist:8", "not valid JSON: Expecting property name"),
    (('"type": "tuning"', '"type": "tunning"'), "x.conflist:24", "plugins[1].type: no plugin 'tunning' in CNI_PATH "
                                                                  "/usr/lib/cni (there: bridge, dhcp, host-local"),
    (('"type": "host-local"', '"type": "dhcp"'), "x.conflist:12", "plugins[0].ipam.type: dhcp needs the CNI dhcp "
                                                                   "daemon"),
    (('"name": "dbnet"', '"name": "-db net"'), "x.conflist:4", "name: invalid network name '-db net'"),
    (('"cniVersions": ["0.3.1", "0.4.0", "1.0.0", "1.1.0"]', '"cniVersions": ["1.1.0"]'), "x.conflist:3",
     "cniVersions: unsupported version 1.1.0: the plugins speak 0.3.0, 0.3.1, 0.4.0, 1.0.0"),
    (('"capabilities": {"portMappings": true}', '"capabilities": {"portMappings": "yes"}'), "x.conflist:34",
     "plugins[2].capabilities: expected a map of capability names to true or false"),
    (('"type": "portmap"', '"type": "../portmap"'), "x.conflist:33", "plugins[2].type: invalid plugin type "
                                                                     "'../portmap': the name of a binary"),
])
def test_a_broken_user_list_names_the_file_line_and_field(edit, where, message):
    text = SPEC_DBNET.replace(*edit)
    assert text != SPEC_DBNET
    with pytest.raises(cni.ConfigError) as e:
        cni.parse_conflist(text, "x.conflist", PLUGINS, "/usr/lib/cni")
    assert str(e.value).startswith(f"{where}: {message}"), str(e.value)


def test_a_list_needs_plugins():
    with pytest.raises(cni.ConfigError, match=r"^x:1: plugins: expected a non-empty list"):
        cni.parse_conflist('{"cniVersion": "1.0.0", "name": "n", "plugins": []}', "x", PLUGINS, "/p")
    with pytest.raises(cni.ConfigError, match=r"^x:1: missing plugins \(a .conflist\) or type"):
        cni.parse_conflist('{"cniVersion": "1.0.0", "name": "n"}', "x", PLUGINS, "/p")
    with pytest.raises(cni.ConfigError, match=r"^x:2: expected a network configuration list"):
        cni.parse_conflist('\n["bridge"]', "x", PLUGINS, "/p")


CLUSTER = "apiVersion: kubenet-lab.dev/v1alpha1\nkind: Cluster\nnetworking:\n"


def test_the_cluster_config_chooses_the_wiring_and_a_conflist_beside_it(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text(CLUSTER)
    assert load_model([str(path)]).cluster.wiring == "netlink"
    (tmp_path / "my.conflist").write_text(SPEC_DBNET)
    path.write_text(CLUSTER + "  wiring: cni\n  cniConfig: my.conflist\n")
    cluster = load_model([str(path)]).cluster
    assert (cluster.wiring, cluster.cni_config) == ("cni", str(tmp_path / "my.conflist"))


@pytest.mark.parametrize("written, message", [
    ("  wiring: netlink\n  cniConfig: my.conflist\n",
     "cluster.yaml:5: networking.cniConfig: a CNI configuration is only used with networking.wiring: cni"),
    ("  wiring: cni\n  cniConfig: missing.conflist\n",
     "cluster.yaml:5: networking.cniConfig: cannot read the CNI configuration"),
    ("  wiring: docker\n", "cluster.yaml:4: networking.wiring:"),
])
def test_a_bad_wiring_or_conflist_path_is_refused_at_its_line(tmp_path, written, message):
    (tmp_path / "my.conflist").write_text(SPEC_DBNET)
    path = tmp_path / "cluster.yaml"
    path.write_text(CLUSTER + written)
    with pytest.raises(InputError) as e:
        load_model([str(path)])
    assert message in str(e.value), str(e.value)


def test_a_pod_s_interface_follows_the_backend():
    p = plan("l2")
    node = p.node("node2")
    iface = wiring.node_interface(p, node)
    assert iface.subnet == IPv4Network("10.244.0.0/16") and iface.gateway == node.gateway and iface.mtu == 1450


def test_cbr0_gets_a_fixed_unicast_locally_administered_mac_per_node():
    p = plan()
    macs = [wiring.bridge_mac(n) for n in p.nodes]
    assert macs == ["16:fb:ac:12:00:02", "16:fb:ac:12:00:03"]  # from 172.18.0.2 and .3
    assert all(int(m[:2], 16) & 0x03 == 0x02 for m in macs)


def test_a_wiring_switch_makes_every_pod_anew_and_says_so(tmp_path):
    from kubenet_lab.inspect.dryrun import changes

    path = tmp_path / "lab.yaml"
    path.write_text(CLUSTER + "  wiring: netlink\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node1}\n" + POD)
    netlink = make_plan(load_model([str(path)]), "lab", None)
    path.write_text(path.read_text().replace("wiring: netlink", "wiring: cni"))
    cni_plan = make_plan(load_model([str(path)]), "lab", netlink)
    assert wiring.pods_rewired(netlink, cni_plan) and wiring.wiring_changed(netlink, cni_plan)
    assert not wiring.pods_rewired(cni_plan, cni_plan)
    assert wiring.switch_summary(netlink, cni_plan) == \
        "networking.wiring changed from netlink to cni: every pod made anew"
    pod = cni_plan.pods[0]
    got = changes(netlink, cni_plan)
    assert f"- {pod.netns}" in got["namespaces"] and f"+ {pod.netns}" in got["namespaces"]
