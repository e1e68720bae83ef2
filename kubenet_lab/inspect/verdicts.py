"""Whether an expectation held, from what its probes saw (pure).

Each request of an expectation ends in an `Outcome` (kernel.probe): reached or not, the bytes
that came back, the error. A REACH expectation holds when every request reached and every
answer is one it allows (the caller's own address, an allowed endpoint's hostname, the DNS
addresses, and with `every` each allowed endpoint at least once); a FAIL one when none reached.
`observed` says in a few words what happened, `hop` where a failure came from when the packet's
path tells (an ICMP error's sender now; the first broken hop once `trace` explains it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ..kernel.probe import Outcome
from .conversations import ADDRESSES, CLIENTIP, HOSTNAME, understand
from .expectations import FAIL, Expectation


@dataclass(frozen=True)
class Result:
    expectation: Expectation
    ok: bool
    observed: str
    hop: str = ""  # where it broke, when known
    seconds: float = 0.0
    answers: tuple[str, ...] = field(default=())  # the values the answers told (hostnames, addresses)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def judge(exp: Expectation, what: str, outcomes: Sequence[Outcome]) -> Result:
    seconds = max((o.seconds for o in outcomes), default=0.0)
    failed = [o for o in outcomes if not o.reached]
    hop = next((o.hop for o in failed if o.hop), "")
    if exp.must == FAIL:
        reached = [o for o in outcomes if o.reached]
        if reached:
            return Result(exp, False, f"reached ({_plural(len(reached), 'answer')}) but must not", seconds=seconds)
        errors = sorted({o.error for o in outcomes})
        text = "; ".join(errors) or "no answer"
        if exp.refused and errors != ["connection refused"]:
            return Result(exp, False, f"{text}, not refused at once", hop, seconds)
        return Result(exp, True, text, hop, seconds)
    if failed:
        errors = sorted({o.error for o in failed})
        n = f"{len(failed)}/{len(outcomes)} requests: " if len(outcomes) > 1 else ""
        return Result(exp, False, n + "; ".join(errors), hop, seconds)
    values: list[str] = []
    for o in outcomes:
        if o.error:
            return Result(exp, False, f"connected, then {o.error}", seconds=seconds)
        try:
            value = understand(what, exp.proto, o.data)
        except (ValueError, IndexError, UnicodeError) as e:
            return Result(exp, False, f"a wrong answer: {e}", seconds=seconds)
        values.append(",".join(value) if isinstance(value, list) else value)
    answers = tuple(values)
    if what == CLIENTIP and exp.source_ip:
        wrong = sorted({v for v in values if v != exp.source_ip})
        if wrong:
            return Result(exp, False, f"the server saw the caller as {', '.join(wrong)}, not {exp.source_ip}",
                          seconds=seconds, answers=answers)
        return Result(exp, True, f"answered, seeing {exp.source_ip}", seconds=seconds, answers=answers)
    if what == HOSTNAME and exp.answers:
        wrong = sorted({v for v in values if v not in exp.answers})
        if wrong:
            return Result(exp, False, f"answered by {', '.join(wrong)}, which must not answer", seconds=seconds,
                          answers=answers)
        if exp.every and (missing := sorted(exp.answers - set(values))):
            return Result(exp, False, f"{', '.join(missing)} never answered in {_plural(len(values), 'request')}",
                          seconds=seconds, answers=answers)
        return Result(exp, True, f"answered by {', '.join(sorted(set(values)))}", seconds=seconds, answers=answers)
    if what == ADDRESSES:
        got = {a for v in values for a in v.split(",") if a}
        if got != set(exp.addresses):
            return Result(exp, False, f"resolved to {', '.join(sorted(got)) or 'nothing'}, not "
                          f"{', '.join(sorted(exp.addresses))}", seconds=seconds, answers=answers)
        return Result(exp, True, f"resolved to {', '.join(sorted(got))}", seconds=seconds, answers=answers)
    return Result(exp, True, "answered" if what != "connected" or exp.proto != "icmp" else "echo reply",
                  seconds=seconds, answers=answers)
