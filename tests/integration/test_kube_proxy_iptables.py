"""kube-proxy's own judgement of the lab's iptables mode: its test world
(manifests/kube-proxy-world/, the Services and EndpointSlices of TestOverallIPTablesRules) is
brought up in iptables mode (at once, or reached by `apply` from part of it, which loads only what
changed), and what node test-node holds (`iptables-save`) must be what
kube-proxy's TestOverallIPTablesRules expects it to write (data/kube-proxy-TestOverallIPTablesRules.rules,
transcribed from kubernetes pkg/proxy/iptables/proxier_test.go, v1.33-v1.36).

Both sides are compared in iptables-save's own syntax: the expectation (kube-proxy's
iptables-restore input) is loaded into a network namespace of its own (`unshare --net`, gone when
the command ends) and saved again, so that `-d 172.30.0.41` and `-d 172.30.0.41/32`, or the order
of a rule's options, never count. Compared are the filter and nat tables' chains kube-proxy
writes in its restore (every non-built-in chain: the built-in chains' jumps are kube-proxy's
EnsureRule calls, not part of the expectation), rule for rule and in order within each chain.
Chains and the rules of KUBE-NODEPORTS and KUBE-SERVICES are ordered as kube-proxy's own test
orders its output (its sortIPTablesRules: kube-proxy writes Services in map order).

Normalised, and nothing else:
- counters (`[packets:bytes]`): the host's traffic, not rules;
- `--random-fully` on the MASQUERADE rule: kube-proxy writes it where iptables and the kernel
  support it (they do here), its fake iptables in the test does not;
- nfacct: kube-proxy adds `-m nfacct --nfacct-name <counter>` matches, and its localhost NodePort
  rules (`-d 127.0.0.0/8`), only when it could make its nfacct counters in the node; on a kernel
  that cannot (found by trying, in the scratch namespace), the expectation is taken in
  kube-proxy's form without them. Where it can (this machine), nothing is normalised;
- the lab's own Services (default/kubernetes, kube-system/kube-dns), which kube-proxy's test
  world does not have: their rules, and the chains only they use, are left out.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.kube_proxy_rules import EXPECTED, Tables, diff, kube_proxy_order, parse, without_lab_services

from .conftest import MANIFESTS, Lab, new_lab_name, torn_down

WORLD = MANIFESTS / "kube-proxy-world"


@pytest.fixture(scope="module", params=["up", "apply"])
def lab(request, host_before, tmp_path_factory):
    """The world brought up at once, or reached by `apply` from a lab holding only part of it
    (svc1 and svc6: the rest comes as a change, written as kube-proxy's partial sync writes it)."""
    lab = Lab(new_lab_name("kpi"))
    with torn_down(lab.name):
        if request.param == "up":
            lab("up", str(WORLD), "--proxy-mode", "iptables")
        else:
            part = tmp_path_factory.mktemp("kube-proxy-world-part")
            for path in sorted(WORLD.glob("*.yaml")):
                docs = [d for d in yaml.safe_load_all(path.read_text())
                        if d["kind"] not in ("Service", "EndpointSlice")
                        or d["metadata"]["name"] in ("svc1", "svc1-1", "svc6")]
                (part / path.name).write_text(yaml.safe_dump_all(docs))
            lab("up", str(part), "--proxy-mode", "iptables")
            lab("apply", "-f", str(WORLD))
        yield lab


# Run in a network namespace of its own (unshare --net: it ends with the command): kube-proxy's
# nfacct counters made there if this kernel can (printed: whether it could), then the rules on
# stdin loaded (without their nfacct matches and counted rules when it could not) and saved.
IN_SCRATCH = r"""
import re, subprocess, sys
from kubenet_lab.kernel import nfacct
from kubenet_lab.proxy.iptables import NFACCT_COUNTERS
rules = sys.stdin.read()
try:
    nfacct.ensure_here(NFACCT_COUNTERS)
    counters = True
except OSError:
    counters = False
    # kube-proxy without its counters: no nfacct match, and no localhost NodePort rules (it
    # writes them apart only to count them; its NodePort rules match 127.0.0.1 all the same)
    rules = "\n".join(re.sub(r" -m nfacct --nfacct-name \S+", "", line) for line in rules.splitlines()
                      if not (line.startswith("-A KUBE-NODEPORTS ") and " -d 127.0.0.0/8 " in line)) + "\n"
subprocess.run(["iptables-restore"], input=rules, text=True, check=True)
print("nfacct" if counters else "no nfacct")
for table in ("filter", "nat"):
    sys.stdout.write(subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True,
                                    check=True).stdout)
"""


def expected_rules() -> tuple[Tables, bool]:
    """kube-proxy's expected rules as iptables-save writes them, in kube-proxy's test order, and
    whether this kernel has nfacct (when not, in kube-proxy's form without its counters)."""
    done = subprocess.run(["unshare", "--net", sys.executable, "-c", IN_SCRATCH], input=EXPECTED.read_text(),
                          capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, f"the expectation does not load: {done.stderr}"
    first, _, saved = done.stdout.partition("\n")
    return kube_proxy_order(parse(saved)), first == "nfacct"


def test_node_holds_the_rules_kube_proxy_expects(lab):
    saved = lab.exec("node/test-node", "iptables-save").stdout
    saved = saved.replace(" --random-fully", "")
    actual = kube_proxy_order(without_lab_services(parse(saved)))
    expected, counted = expected_rules()
    if differences := diff(expected, actual, "node test-node"):
        counters = "expected" if counted else "left out: this kernel cannot make them"
        pytest.fail(f"test-node's rules differ from kube-proxy's (nfacct counters {counters}):\n{differences}",
                    pytrace=False)


def test_the_world_is_what_the_expectation_was_made_for(lab):
    """The comparison means something only if the world came up as kube-proxy's test builds it."""
    nodes = lab("get", "nodes", "-o", "wide").stdout
    assert re.search(r"^test-node\s.*\s192\.168\.0\.2\s", nodes, re.M), nodes
    svcs = lab("get", "svc", "-A").stdout
    for ns, name, cluster_ip in (("ns1", "svc1", "172.30.0.41"), ("ns2", "svc2", "172.30.0.42"),
                                 ("ns3", "svc3", "172.30.0.43"), ("ns4", "svc4", "172.30.0.44"),
                                 ("ns5", "svc5", "172.30.0.45"), ("ns6", "svc6", "172.30.0.46")):
        assert re.search(rf"^{ns}\s+{name}\s+\S+\s+{re.escape(cluster_ip)}\s", svcs, re.M), svcs
