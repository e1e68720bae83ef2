"""networking.serviceNodePortRange and the NodePort allocator, as kube-apiserver has them
(--service-node-port-range; pkg/registry/core/service/portallocator): dynamic allocation takes
the upper band first and leaves the lower band to requested ports until the upper one is full;
a requested port anywhere in the range is honoured, one outside it refused in the API server's
words. The lab takes the lowest free port of a band where the API server takes a random one, so
that the same manifests get the same ports. Without root."""
from __future__ import annotations

import io
import textwrap

import pytest

from kubenet_lab.errors import InputError
from kubenet_lab.manifests import load_model
from kubenet_lab.model.objects import NODEPORT_RANGE, ClusterConfig, Model, PortRange
from kubenet_lab.plan import make_plan
from kubenet_lab.plan.ipam import Exhausted, NodePorts, node_port_band

LAB = "npr"


def load(text: str):
    return load_model(["-"], io.StringIO(textwrap.dedent(text).lstrip("\n")))


def problems(text: str) -> list[str]:
    with pytest.raises(InputError) as err:
        make_plan(load(text), LAB)
    return err.value.problems


def cluster(ports: str) -> str:
    """A Cluster document whose serviceNodePortRange is on line 4."""
    return f"apiVersion: kubenet-lab.dev/v1alpha1\nkind: Cluster\nnetworking:\n  serviceNodePortRange: {ports}\n"


def node_port_service(name: str, *node_ports: int | None, health_check: int | None = None) -> str:
    ports = "".join(f"  - {{name: p{i}, port: {80 + i}{f', nodePort: {n}' if n else ''}}}\n"
                    for i, n in enumerate(node_ports))
    kind = "LoadBalancer\n  externalTrafficPolicy: Local" if health_check else "NodePort"
    extra = f"  healthCheckNodePort: {health_check}\n" if health_check else ""
    return (f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  type: {kind}\n"
            f"{extra}  ports:\n{ports}")


def node_ports(plan, name: str) -> list[int | None]:
    svc = next(s for s in plan.services if (s.namespace, s.name) == ("default", name))
    return [p.node_port for p in svc.ports]


# --------------------------------------------------------------------------- the band


@pytest.mark.parametrize("size, band", [
    # portallocator's own table (Test_calculateRangeOffset)
    (2768, 86), (10, 0), (16, 0), (128, 16), (2048, 64), (4096, 128), (8192, 128),
    # the edges of min(max(16, size/32), 128): no band up to 16 ports, 16 from 17 ports on
    # (the upper band is then one port), size/32 from 544 ports, 128 from 4096 ports on
    (1, 0), (17, 16), (543, 16), (544, 17), (4095, 127),
])
def test_the_lower_band_is_the_port_allocators_offset(size, band):
    assert node_port_band(size) == band


def test_dynamic_ports_come_from_the_upper_band_lowest_first():
    ports = NodePorts(NODEPORT_RANGE)
    assert ports.band == 86
    assert [ports.allocate() for _ in range(3)] == [30086, 30087, 30088]


def test_the_lower_band_serves_once_the_upper_one_is_full():
    ports = NodePorts(PortRange(30000, 30016))  # 17 ports: a lower band of 16, an upper band of one
    assert ports.allocate() == 30016
    assert [ports.allocate() for _ in range(16)] == list(range(30000, 30016))
    with pytest.raises(Exhausted):
        ports.allocate()


def test_a_range_of_16_ports_or_fewer_is_all_upper_band():
    ports = NodePorts(PortRange(30100, 30110))
    assert ports.band == 0
    assert [ports.allocate() for _ in range(11)] == list(range(30100, 30111))
    with pytest.raises(Exhausted):
        ports.allocate()


def test_requested_ports_anywhere_in_the_range_and_allocation_steps_over_them():
    ports = NodePorts(NODEPORT_RANGE)
    assert all(ports.take(p) for p in (30000, 30085, 30086, 32767))
    assert not ports.take(30086)  # taken
    assert not ports.take(29999) and not ports.take(32768)  # outside
    assert ports.allocate() == 30087
    full = NodePorts(PortRange(30000, 30016))
    assert full.take(30016) and full.take(30000)
    assert full.allocate() == 30001  # the upper band's one port was asked for


# --------------------------------------------------------------------------- planned from manifests


def test_a_configured_range_is_where_node_ports_come_from():
    plan = make_plan(load(cluster("30100-30110") + node_port_service("a", None, None)
                          + node_port_service("b", 30110, None)), LAB)
    assert node_ports(plan, "a") == [30100, 30101]
    assert node_ports(plan, "b") == [30110, 30102]
    assert plan.cluster.node_port_range == PortRange(30100, 30110)


def test_without_a_range_the_default_one_and_its_upper_band():
    plan = make_plan(load(node_port_service("a", None, 30000)), LAB)
    assert load(node_port_service("a", None)).cluster.node_port_range == NODEPORT_RANGE
    assert node_ports(plan, "a") == [30086, 30000]


def test_the_same_manifests_get_the_same_ports_and_a_running_lab_keeps_them():
    text = cluster("30100-30140") + node_port_service("a", None) + node_port_service("b", None, None)
    first = make_plan(load(text), LAB)
    assert node_ports(make_plan(load(text), LAB), "b") == node_ports(first, "b")
    # a new Service listed first gets a free port; the running ones keep theirs
    again = make_plan(load(cluster("30100-30140") + node_port_service("new", None)
                           + node_port_service("a", None) + node_port_service("b", None, None)), LAB, first)
    assert [node_ports(again, n) for n in ("a", "b")] == [node_ports(first, n) for n in ("a", "b")]
    assert node_ports(again, "new")[0] not in {*node_ports(first, "a"), *node_ports(first, "b")}


def test_a_full_range_is_said():
    assert problems(cluster("30100-30101") + node_port_service("a", None, None, None)) == [
        "<stdin>:14: spec.ports[2].nodePort: failed to allocate a nodePort: range is full "
        "(networking.serviceNodePortRange 30100-30101 has no free port)"]


# --------------------------------------------------------------------------- refused, in the API server's words


def test_a_requested_port_outside_the_range_is_refused():
    assert problems(cluster("30100-30110") + node_port_service("a", 30099, 30111, 30105)) == [
        "<stdin>:12: spec.ports[0].nodePort: Invalid value: 30099: provided port is not in the valid range. "
        "The range of valid ports is 30100-30110",
        "<stdin>:13: spec.ports[1].nodePort: Invalid value: 30111: provided port is not in the valid range. "
        "The range of valid ports is 30100-30110",
    ]
    assert problems(node_port_service("a", 32768)) == [
        "<stdin>:8: spec.ports[0].nodePort: Invalid value: 32768: provided port is not in the valid range. "
        "The range of valid ports is 30000-32767"]


def test_a_health_check_node_port_outside_the_range_is_refused():
    assert problems(cluster("30100-30110") + node_port_service("lb", None, health_check=30000)) == [
        "<stdin>:12: spec.healthCheckNodePort: Invalid value: 30000: provided port is not in the valid range. "
        "The range of valid ports is 30100-30110"]


def test_a_node_port_is_a_port_whatever_the_range():
    with pytest.raises(InputError) as err:
        load(node_port_service("a", 70000))
    assert err.value.problems == ["<stdin>:8: spec.ports[0].nodePort: Invalid value: 70000: must be between 1 and "
                                  "65535, inclusive"]


@pytest.mark.parametrize("written, problem", [
    ("32767-30000", "end port cannot be less than start port: 32767-30000"),
    ("30000-70000", "the port range cannot be greater than 65535: 30000-70000"),
    ("0-100", "the port range must start at 1 or above (port 0 is no port): 0-100"),
    ("30000:32767", "expected a port range FIRST-LAST, both included, like 30000-32767, got '30000:32767'"),
    ("high-low", "expected a port range FIRST-LAST, both included, like 30000-32767, got 'high-low'"),
    ('"30000"', None), ("30000+100", None),  # kube-apiserver's other notations: one port, first+count
])
def test_the_range_written(written, problem):
    if problem is None:
        assert load(cluster(written)).cluster.node_port_range in (PortRange(30000, 30000), PortRange(30000, 30100))
        return
    with pytest.raises(InputError) as err:
        load(cluster(written))
    assert err.value.problems == [f"<stdin>:4: networking.serviceNodePortRange: {problem}"]


def test_a_range_over_the_ephemeral_ports_is_warned_about():
    assert load(cluster("30000-32767")).warnings == ()
    assert load(cluster("30000-40000")).warnings == (
        "<stdin>:4: networking.serviceNodePortRange: 30000-40000 overlaps the nodes' ephemeral port range "
        "32768-60999 (the kernel's default net.ipv4.ip_local_port_range), which kube-apiserver's "
        "--service-node-port-range must not: a node's own outgoing connections may take a port that a NodePort "
        "then shadows",)


def test_the_range_may_not_change_on_a_running_lab():
    first = make_plan(load(node_port_service("a", None)), LAB)
    with pytest.raises(InputError) as err:
        make_plan(load(cluster("30100-30110") + node_port_service("a", None)), LAB, first)
    assert err.value.problems == [
        '<stdin>:4: networking.serviceNodePortRange: Invalid value: "30100-30110": may not change on a running lab '
        "(it is 30000-32767: its Services' NodePorts come from it); keep 30000-32767, or remove the lab "
        "(kubenet-lab down) and bring it up anew"]
    assert node_ports(make_plan(load(cluster("30000-32767") + node_port_service("a", None)), LAB, first), "a") == \
        node_ports(first, "a")


def test_the_model_default_is_kube_apiservers():
    assert ClusterConfig().node_port_range == PortRange(30000, 32767) and str(NODEPORT_RANGE) == "30000-32767"
    assert Model().cluster.node_port_range.size == 2768
    assert 30000 in NODEPORT_RANGE and 32767 in NODEPORT_RANGE and 32768 not in NODEPORT_RANGE
