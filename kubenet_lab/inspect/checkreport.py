"""`check`'s report (pure): a table a person reads, JSON for machines, one summary line."""
from __future__ import annotations

import json
from typing import Sequence

from .verdicts import Result

COLUMNS = ("RESULT", "KIND", "FROM", "TO", "PROTO", "MUST", "OBSERVED", "BROKE AT")


def _row(r: Result) -> tuple[str, ...]:
    e = r.expectation
    return ("ok" if r.ok else "FAILED", e.kind, e.src, e.dst, e.proto, e.must, r.observed, r.hop or "-")


def table(results: Sequence[Result], failed_only: bool = False) -> str:
    """One row per expectation, failed ones last (where the eye ends)."""
    chosen = [r for r in results if not r.ok] if failed_only else sorted(results, key=lambda r: r.ok, reverse=True)
    rows = [COLUMNS] + [_row(r) for r in chosen]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    return "".join("   ".join(c.ljust(w) for c, w in zip(row, widths)) + "   " + row[-1] + "\n" for row in rows)


def summary(results: Sequence[Result], seconds: float, sampled: bool) -> str:
    failed = [r for r in results if not r.ok]
    how = " (pairs sampled; --full for every pair)" if sampled else ""
    if not failed:
        return f"check: all {len(results)} expectations held{how} ({seconds:.2f}s)"
    return f"check: {len(failed)} of {len(results)} expectations FAILED{how} ({seconds:.2f}s)"


def failures(results: Sequence[Result]) -> str:
    """One line per failed expectation: what, from where, why it should hold, what happened."""
    out = []
    for r in results:
        if r.ok:
            continue
        e = r.expectation
        port = f":{e.port}" if e.port and not e.dst.endswith(f":{e.port}") else ""
        where = f"; broke at {r.hop}" if r.hop else ""
        out.append(f"FAILED {e.kind}: {e.src} -> {e.dst}{port} {e.proto} must {e.must} ({e.why}): {r.observed}{where}")
    return "".join(line + "\n" for line in out)


def as_json(lab: str, results: Sequence[Result], seconds: float, sampled: bool) -> str:
    items = []
    for r in results:
        e = r.expectation
        items.append({
            "kind": e.kind, "from": e.src, "fromAddress": e.src_ip or None, "to": e.dst, "address": e.dst_ip,
            "port": e.port, "protocol": e.proto,
            "must": e.must, "why": e.why, "ok": r.ok, "observed": r.observed, "brokeAt": r.hop or None,
            "answers": list(r.answers), "seconds": round(r.seconds, 4),
        })
    failed = sum(1 for r in results if not r.ok)
    return json.dumps({"lab": lab, "ok": failed == 0, "expectations": len(results), "failed": failed,
                       "sampled": sampled, "seconds": round(seconds, 3), "results": items}, indent=2) + "\n"
