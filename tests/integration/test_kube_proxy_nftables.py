"""The strictest outside judge of the lab's nftables mode: kube-proxy's own expected ruleset.

kube-proxy's TestOverallNFTablesRules (kubernetes pkg/proxy/nftables/proxier_test.go) builds a
small world and asserts the exact transaction its proxier writes. The same world, as ordinary
manifests (manifests/kube-proxy-world/), goes through `up --proxy-mode nftables`, and what node
`test-node` holds (`nft list table ip kube-proxy` in its namespace) is compared with kube-proxy's
expectation (data/kube-proxy-TestOverallNFTablesRules.nft, transcribed with its source and release).

Both sides are compared as the kernel holds them: kube-proxy's transaction is loaded into a
scratch network namespace of this test's own (`unshare --net`, gone when nft exits) and listed
there by the same nft, so nft's own spelling (`meta mark | 0x00004000`, `priority dstnat`, a
one-element anonymous set) is the same on both sides and nothing of the rules is rewritten.
The strictness is kube-proxy's assertNFTablesTransactionEqual's: the objects are put in one
order (sets and maps by name, then chains by name), the elements of a set or map are sorted,
the rules of a chain keep their order. Normalised away, and only these:
- packet counters (`counter packets N bytes M`), a host's running state, not a rule;
- the lab's own Services, `default/kubernetes` and `kube-system/kube-dns`, which a real cluster
  has too and kube-proxy's fake world has not: their chains, affinity sets, and the elements
  that name them, their ClusterIPs or their service-port comments.
"""
from __future__ import annotations

import difflib
import json
import re
import subprocess
from pathlib import Path

import pytest

from .conftest import MANIFESTS, Lab, new_lab_name, torn_down

WORLD = MANIFESTS / "kube-proxy-world"
EXPECTED = Path(__file__).parent / "data" / "kube-proxy-TestOverallNFTablesRules.nft"
TABLE = ("ip", "kube-proxy")
LAB_SERVICES = (("default", "kubernetes"), ("kube-system", "kube-dns"))
_COUNTER = re.compile(r"\s*\bcounter packets \d+ bytes \d+")


@pytest.fixture(scope="module")
def lab(host_before):
    lab = Lab(new_lab_name("kpn"))
    with torn_down(lab.name):
        lab("up", str(WORLD), "--proxy-mode", "nftables")
        yield lab


def loadable(transaction: str) -> str:
    """kube-proxy's test lines (in its test's order, which names chains and sets before some
    are added) as one `nft -f` batch: the table, its sets and maps, chains, rules, elements.
    Only the order of the lines changes; the lines are kube-proxy's."""
    order = {"table": 0, "set": 1, "map": 1, "chain": 2, "rule": 3, "element": 4}
    lines = [l for l in transaction.splitlines() if l.strip() and not l.startswith("#")]
    return "\n".join(sorted(lines, key=lambda l: order[l.split()[1]])) + "\n"


def expected_listing() -> str:
    """kube-proxy's expected ruleset as the kernel lists it, from a namespace of this test's
    own that exists only while nft runs."""
    proc = subprocess.run(["unshare", "--net", "sh", "-c", 'nft -f - && nft list table "$0" "$1"', *TABLE],
                          input=loadable(EXPECTED.read_text()), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _split_elements(body: str) -> list[str]:
    """`a, b comment "x, y" : drop, c` -> the elements, split at commas outside quotes/braces."""
    out, cur, depth, quoted = [], "", 0, False
    for ch in body:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "{}":
            depth += 1 if ch == "{" else -1
        if ch == "," and not quoted and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return [e for e in [*out, cur.strip()] if e]


def blocks(listing: str) -> dict[tuple[str, str], list[str]]:
    """`nft list table` as {(kind, name): lines}: a chain's rules in order, a set's or map's
    declaration lines and then its elements, one a line, sorted. Counters are dropped."""
    out: dict[tuple[str, str], list[str]] = {}
    current: list[str] | None = None
    elements: list[str] = []
    collecting = False
    for raw in listing.splitlines():
        line = _COUNTER.sub("", raw).strip()
        if not line:
            continue
        m = re.match(r"(set|map|chain) (\S+) \{$", line)
        if current is None:
            if m:
                current, elements = out.setdefault((m.group(1), m.group(2)), []), []
            elif line not in ("}",) and not line.startswith("table "):
                out.setdefault(("table", ""), []).append(line)
            continue
        if collecting or line.startswith("elements = {"):
            text = line.removeprefix("elements = {") if not collecting else line
            collecting = not text.endswith("}")
            elements += _split_elements(text.removesuffix("}"))
            continue
        if line == "}":
            current += [f"element {e}" for e in sorted(elements)]
            current = None
            continue
        current.append(line)
    return out


def without_lab_services(bl: dict[tuple[str, str], list[str]], cluster_ips: set[str]) -> dict:
    """The blocks with the lab's own Services taken out (chains, affinity sets, elements)."""
    tags = [f"-{ns}/{name}/" for ns, name in LAB_SERVICES]
    comments = [f'comment "{ns}/{name}' for ns, name in LAB_SERVICES]

    def theirs(text: str) -> bool:
        return any(t in text for t in tags) or any(c in text for c in comments)

    def element_theirs(line: str) -> bool:
        key = line.removeprefix("element ").split(" ", 1)[0]
        return theirs(line) or key in cluster_ips
    return {(kind, name): [l for l in lines if not (l.startswith("element ") and element_theirs(l))]
            for (kind, name), lines in bl.items() if not theirs(name)}


def canonical(bl: dict[tuple[str, str], list[str]]) -> list[str]:
    kinds = {"table": 0, "set": 1, "map": 1, "chain": 2}
    out = []
    for kind, name in sorted(bl, key=lambda k: (kinds[k[0]], k[1])):
        out.append(f"{kind} {name}".strip())
        out += [f"\t{line}" for line in bl[(kind, name)]]
    return out


def lab_cluster_ips(lab: Lab) -> set[str]:
    items = json.loads(lab("get", "svc", "-A", "-o", "json").stdout)["items"]
    return {i["spec"]["clusterIP"] for i in items
            if (i["metadata"]["namespace"], i["metadata"]["name"]) in LAB_SERVICES}


def test_the_loader_keeps_every_expected_line():
    """The batch holds exactly kube-proxy's lines (none lost or changed by the reordering)."""
    text = EXPECTED.read_text()
    expected = sorted(l for l in text.splitlines() if l.strip() and not l.startswith("#"))
    assert sorted(loadable(text).splitlines()) == expected
    assert len(expected) > 100


def test_normalisation_only_removes_the_lab_services():
    """What the comparison normalises leaves kube-proxy's own world untouched, so it cannot hide
    a difference there: the expected listing is the same before and after."""
    bl = blocks(expected_listing())
    assert canonical(without_lab_services(bl, {"172.30.0.1", "172.30.0.10"})) == canonical(bl)
    assert ("chain", "service-ULMVA6XW-ns1/svc1/tcp/p80") in bl
    assert ('element 172.30.0.46 . tcp . 80 comment "ns6/svc6:p80" : goto reject-chain'
            in bl[("map", "no-endpoint-services")])


def listing(lab: Lab) -> str:
    return lab.exec("node/test-node", "nft", "list", "table", *TABLE).stdout


def assert_kube_proxys_ruleset(lab: Lab) -> None:
    ours = canonical(without_lab_services(blocks(listing(lab)), lab_cluster_ips(lab)))
    theirs = canonical(blocks(expected_listing()))
    diff = "\n".join(difflib.unified_diff(theirs, ours, "kube-proxy (TestOverallNFTablesRules)",
                                          "lab (node test-node)", lineterm=""))
    if ours != theirs:
        pytest.fail("test-node's nftables differ from kube-proxy's expectation:\n" + diff, pytrace=False)


def test_test_node_holds_kube_proxys_expected_ruleset(lab):
    assert_kube_proxys_ruleset(lab)


def test_an_incremental_sync_comes_back_to_the_same_ruleset(lab):
    """The lab changes a running node's table in place (only the chains and elements that
    differ); taking svc4's endpoints away and giving them back must end in kube-proxy's ruleset
    again, rule for rule."""
    lab("delete", "endpointslice", "svc4-1", "-n", "ns4")
    gone = listing(lab)
    assert "endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80" not in gone
    assert '172.30.0.44 . tcp . 80 comment "ns4/svc4:p80" : goto reject-chain' in gone
    lab("apply", "-f", str(WORLD / "30-endpointslices.yaml"))
    assert_kube_proxys_ruleset(lab)
