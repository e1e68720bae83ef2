"""kube-proxy's own judgement of the lab's iptables mode: its test world
(manifests/kube-proxy-world/, the Services and EndpointSlices of TestOverallIPTablesRules) is
brought up in iptables mode, and what node test-node holds (`iptables-save`) must be what
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

import difflib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import MANIFESTS, Lab, new_lab_name, torn_down

WORLD = MANIFESTS / "kube-proxy-world"
EXPECTED = Path(__file__).parent / "data" / "kube-proxy-TestOverallIPTablesRules.rules"
TABLES = ("filter", "nat")
BUILTIN = {"INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"}
LAB_SERVICES = ("default/kubernetes:", "kube-system/kube-dns:")
COMMENT = re.compile(r'--comment (?:"([^"]*)"|(\S+))')

Tables = dict[str, dict[str, list[str]]]  # table -> chain -> its rules, in order


@pytest.fixture(scope="module")
def lab(host_before):
    lab = Lab(new_lab_name("kpi"))
    with torn_down(lab.name):
        lab("up", str(WORLD), "--proxy-mode", "iptables")
        yield lab


def parse_save(text: str) -> Tables:
    """iptables-save output -> its filter and nat tables' own chains (built-in ones left out)."""
    tables: Tables = {}
    chains: dict[str, list[str]] | None = None
    for line in text.splitlines():
        if line.startswith("*"):
            chains = tables.setdefault(line[1:], {}) if line[1:] in TABLES else None
        elif chains is None or not line or line.startswith("#") or line == "COMMIT":
            continue
        elif line.startswith(":"):
            name = line[1:].split()[0]
            if name not in BUILTIN:
                chains[name] = []
        elif line.startswith("-A "):
            chain = line.split()[1]
            if chain not in BUILTIN:
                chains[chain].append(line)
        else:
            raise AssertionError(f"unexpected iptables-save line: {line}")
    return tables


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
    return kube_proxy_order(parse_save(saved)), first == "nfacct"


def comment(rule: str) -> str:
    m = COMMENT.search(rule)
    return (m.group(1) or m.group(2)) if m else ""


def without_lab_services(tables: Tables) -> Tables:
    """The rules of the lab's own Services left out, and the chains only they used."""
    out: Tables = {}
    for table, chains in tables.items():
        dropped = {rule for rules in chains.values() for rule in rules if comment(rule).startswith(LAB_SERVICES)}
        targets = {rule.split(" -j ")[1].split()[0] for rule in dropped if " -j " in rule}
        out[table] = {}
        for chain, rules in chains.items():
            kept = [rule for rule in rules if rule not in dropped]
            if not kept and (chain in targets or rules):
                continue
            out[table][chain] = kept
    return out


def service_name(rule: str) -> str:
    """The service a rule is for, as kube-proxy's test reads it (its comment up to ' ' or ':')."""
    return re.split(r"[ :]", comment(rule), maxsplit=1)[0]


def kube_proxy_order(tables: Tables) -> Tables:
    """kube-proxy's sortIPTablesRules: KUBE-NODEPORTS, KUBE-SERVICES, then the other KUBE-
    chains, then the rest, each group by name; KUBE-NODEPORTS and KUBE-SERVICES rules by service
    name (stable), nat KUBE-SERVICES's "must be the last rule" rule last."""
    def chain_key(name: str) -> tuple[int, str]:
        rank = {"KUBE-NODEPORTS": 0, "KUBE-SERVICES": 1}.get(name, 2 if name.startswith("KUBE-") else 3)
        return rank, name

    out: Tables = {}
    for table in sorted(tables):
        chains = tables[table]
        out[table] = {}
        for name in sorted(chains, key=chain_key):
            rules = list(chains[name])
            if name in ("KUBE-NODEPORTS", "KUBE-SERVICES"):
                rules.sort(key=lambda r: ("must be the last rule" in comment(r), service_name(r)))
            out[table][name] = rules
    return out


def text(tables: Tables) -> list[str]:
    lines = []
    for table, chains in tables.items():
        lines += [f"*{table}", *(f":{name}" for name in chains), *(r for rules in chains.values() for r in rules),
                  "COMMIT"]
    return lines


def test_node_holds_the_rules_kube_proxy_expects(lab):
    saved = lab.exec("node/test-node", "iptables-save").stdout
    saved = saved.replace(" --random-fully", "")
    actual = kube_proxy_order(without_lab_services(parse_save(saved)))
    expected, _ = expected_rules()
    if actual != expected:
        diff = "\n".join(difflib.unified_diff(text(expected), text(actual), "kube-proxy (TestOverallIPTablesRules)",
                                              "node test-node", lineterm=""))
        pytest.fail(f"test-node's rules differ from kube-proxy's:\n{diff}", pytrace=False)


def test_the_world_is_what_the_expectation_was_made_for(lab):
    """The comparison means something only if the world came up as kube-proxy's test builds it."""
    nodes = lab("get", "nodes", "-o", "wide").stdout
    assert re.search(r"^test-node\s.*\s192\.168\.0\.2\s", nodes, re.M), nodes
    svcs = lab("get", "svc", "-A").stdout
    for ns, name, cluster_ip in (("ns1", "svc1", "172.30.0.41"), ("ns2", "svc2", "172.30.0.42"),
                                 ("ns3", "svc3", "172.30.0.43"), ("ns4", "svc4", "172.30.0.44"),
                                 ("ns5", "svc5", "172.30.0.45"), ("ns6", "svc6", "172.30.0.46")):
        assert re.search(rf"^{ns}\s+{name}\s+\S+\s+{re.escape(cluster_ip)}\s", svcs, re.M), svcs
