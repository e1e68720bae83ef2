"""kube-proxy's TestOverallIPTablesRules expectation as data
(tests/integration/data/kube-proxy-TestOverallIPTablesRules.rules), and the comparison its test
makes: iptables-restore/iptables-save text cut into tables and chains, ordered as its
sortIPTablesRules orders them (kube-proxy writes Services in map order), compared chain for
chain and rule for rule, in order within each chain. Used on the lab's live rules
(tests/integration/test_kube_proxy_iptables.py) and on the renderer's text
(tests/unit/test_kube_proxy_rules.py)."""
from __future__ import annotations

import difflib
import re
from pathlib import Path

EXPECTED = Path(__file__).parent / "integration" / "data" / "kube-proxy-TestOverallIPTablesRules.rules"
TABLES = ("filter", "nat")
BUILTIN = {"INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"}
# The lab's own Services, which kube-proxy's test world does not have.
LAB_SERVICES = ("default/kubernetes:", "kube-system/kube-dns:")
COMMENT = re.compile(r'--comment (?:"([^"]*)"|(\S+))')

Tables = dict[str, dict[str, list[str]]]  # table -> chain -> its rules, in order


def parse(text: str) -> Tables:
    """iptables-save output, or iptables-restore input -> its filter and nat tables' own chains
    (the built-in ones and the jumps into them from elsewhere, `-I`, left out: kube-proxy's
    EnsureRule calls, not part of its restore)."""
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
        elif line.startswith(("-A ", "-I ")) and line.split()[1] in BUILTIN:
            continue
        elif line.startswith("-A "):
            chains[line.split()[1]].append(line)
        else:
            raise AssertionError(f"unexpected iptables line: {line}")
    return tables


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
    """kube-proxy's sortIPTablesRules: tables by name; KUBE-NODEPORTS, KUBE-SERVICES, then the
    other KUBE- chains, then the rest, each group by name; KUBE-NODEPORTS and KUBE-SERVICES
    rules by service name (stable: a service's own rules keep their order), nat KUBE-SERVICES's
    "must be the last rule" rule last. Every other chain keeps its order."""
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


def lines(tables: Tables) -> list[str]:
    out = []
    for table, chains in tables.items():
        out += [f"*{table}", *(f":{name}" for name in chains), *(r for rules in chains.values() for r in rules),
                "COMMIT"]
    return out


def diff(expected: Tables, actual: Tables, where: str) -> str:
    """A unified diff, kube-proxy's expectation first; empty when they are equal."""
    if expected == actual:
        return ""
    return "\n".join(difflib.unified_diff(lines(expected), lines(actual), "kube-proxy (TestOverallIPTablesRules)",
                                          where, lineterm=""))
