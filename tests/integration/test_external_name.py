"""ExternalName Services on a real lab: the cluster DNS answers with the CNAME (and, for a name of
the cluster, the target's address after it, as CoreDNS does), a client pod's HTTP request through
the alias reaches the Service it names, and nothing of it is in any node's rules."""
from __future__ import annotations

import json

import pytest

from .conftest import MANIFESTS, Lab, new_lab_name, torn_down

MANIFEST = MANIFESTS / "external-name.yaml"


@pytest.fixture(scope="module")
def lab(host_before):
    lab = Lab(new_lab_name("xn"))
    with torn_down(lab.name):
        lab("up", str(MANIFEST))
        yield lab


def test_the_alias_resolves_through_the_cluster_dns_and_reaches_the_service_it_names(lab):
    web_ip = json.loads(lab("get", "svc", "web", "-o", "json").stdout)["spec"]["clusterIP"]
    assert lab.exec("client", "dig", "+short", "external-to-service.default.svc.cluster.local").stdout.split() == [
        "web.default.svc.cluster.local.", web_ip]
    assert lab.exec("client", "wget", "-qO-", "-T", "5", "http://external-to-service/hostname").stdout == "web"


def test_a_name_outside_the_lab_is_a_cname_and_no_further(lab):
    assert lab.exec("client", "dig", "+short", "external.default.svc.cluster.local").stdout.split() == [
        "ext.interwebs.test."]
    out = lab.exec("client", "dig", "ext.interwebs.test", check=False).stdout
    assert "status: REFUSED" in out


def test_get_shows_it_as_kubectl_does_and_no_node_has_a_rule_for_it(lab):
    rows = {line.split()[0]: line.split() for line in lab("get", "svc").stdout.splitlines()[1:]}
    assert rows["external"][1:5] == ["ExternalName", "<none>", "ext.interwebs.test", "<none>"]
    for node in ("node1", "node2"):
        assert "default/external" not in lab.exec(f"node/{node}", "iptables-save").stdout


def test_trace_says_what_an_alias_is(lab):
    out = lab("trace", "client", "svc/external", check=False)
    assert out.returncode == 1
    assert out.stderr == ("error: service external is an ExternalName alias of ext.interwebs.test: it has no "
                          "address to trace; trace what that name resolves to\n")
