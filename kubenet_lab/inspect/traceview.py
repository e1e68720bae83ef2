"""A trace as a person reads it (one line per decision: the namespace, the interface, the route
or the rule; each endpoint with its probability) and as JSON. Pure."""
from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from .path import Branch, Hop, Result


def _pct(p: float) -> str:
    return f"{p * 100:.1f}%".replace(".0%", "%")


def _rule(text: str, chain: str) -> str:
    name = chain.split("/", 1)[1]
    return text.removeprefix(f"-A {name} ")


_VERDICTS = {"ACCEPT", "DROP", "REJECT", "RETURN", "DNAT", "MASQUERADE", "MARK", "SNAT", "accept", "drop",
             "reject", "return"}


def _shown(rules) -> list:
    """The rules that did something: a verdict, a translation, or a jump into a chain where a
    later rule matched (a jump into a chain that matched nothing and returned is left out)."""
    out = []
    for k, r in enumerate(rules):
        words = r.text.split()
        target = next((words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-j", "-g", "jump", "goto")), None)
        table = r.chain.split("/", 1)[0]
        later = {x.chain for x in rules[k + 1:]}
        marks = "MARK" in target.upper() or "masquerade" in target if target else False
        if target is None or target in _VERDICTS or marks or f"{table}/{target}" in later:
            out.append(r)
    return out


def _hop_lines(n: int, hop: Hop) -> list[str]:
    where = "sent" if hop.iif is None else f"in {hop.iif}"
    lines = [f"{n:>2}  {hop.name:<24} {hop.packet}  ({where})"]
    for nf in hop.netfilter:
        rules = _shown(nf.rules)
        width = max((len(r.chain) for r in rules), default=0)
        for r in rules:
            lines.append(f"      {r.chain:<{width}}  {_rule(r.text, r.chain)}")
        if nf.sticky:
            lines.append("      affinity: the client has a live entry: it sticks to that endpoint")
        if nf.affinity:
            lines.append(f"      affinity: the connection records the client in {', '.join(nf.affinity)}")
        if nf.dnat:
            lines.append(f"      DNAT to {nf.dnat}")
        if nf.verdict == "accept" and hop.role == "node" and (nf.dnat or nf.masquerade):
            lines.append(f"      {'MASQUERADE: ' if nf.masquerade else 'source kept: '}{nf.why}")
    if hop.route is not None:
        lines.append(f"      route  {hop.route}")
    if hop.out:
        lines.append(f"      out    {hop.out}")
    if hop.end:
        lines.append(f"      {hop.end}")
    return lines


def _summary(b: Branch) -> str:
    if b.outcome == "delivered":
        src = f"masqueraded: it sees {b.seen_source}" if b.masqueraded else f"it sees the client's {b.seen_source}"
        return f"reaches {b.endpoint} ({b.reached}), {src}"
    last = b.hops[-1]
    return f"{b.outcome} in {last.name}: {last.end}"


def render_text(result: Result, probe: Any = None) -> str:
    out = [f"trace {result.source} -> {result.destination}: {result.packet}"]
    branches = result.branches
    if not branches:
        return "\n".join(out + ["  nothing: the source sends nothing"]) + "\n"
    eps = result.endpoints()
    if len(branches) > 1:
        out.append(f"{len(branches)} possible paths:")
        for i, b in enumerate(branches, 1):
            out.append(f"  {_pct(b.probability):>6}  path {i}: {_summary(b)}")
    else:
        out.append(f"  {_summary(branches[0])}")
    common = 0
    while all(len(b.hops) > common + 1 and b.hops[common] == branches[0].hops[common] for b in branches):
        common += 1
    if len(branches) > 1 and common:
        out.append("")
        out.append("every path:")
        for n, hop in enumerate(branches[0].hops[:common], 1):
            out += _hop_lines(n, hop)
    for i, b in enumerate(branches, 1):
        out.append("")
        out.append(f"path {i} ({_pct(b.probability)}):" if len(branches) > 1 else "path:")
        start = common if len(branches) > 1 else 0
        for n, hop in enumerate(b.hops[start:], start + 1):
            out += _hop_lines(n, hop)
        if b.answer:
            out.append("    answer: " + " | ".join(b.answer))
    if eps and len(eps) > 1:
        out.append("")
        out.append("endpoints: " + ", ".join(f"{ep} {_pct(p)}" for ep, p in sorted(eps.items())))
    if probe is not None:
        out.append("")
        out.append(f"probe: {probe.sent}: {probe.answered}")
        for name, orig, reply in probe.entries:
            out.append(f"  conntrack {name:<14} original {orig:<44} reply {reply}")
        out.append(f"  {probe.verdict}")
    return "\n".join(out) + "\n"


def to_json(result: Result, probe: Any = None, routes: dict | None = None) -> str:
    doc = asdict(result)
    doc["endpoints"] = result.endpoints()
    if probe is not None:
        doc["probe"] = asdict(probe)
    if routes is not None:
        doc["kernel"] = routes
    return json.dumps(doc, indent=2, default=str) + "\n"
