"""The named steps of a change: each one the code passes is listed (so the crash tests stop a
command at it), and each one listed is passed somewhere."""
from __future__ import annotations

import re
from pathlib import Path

from kubenet_lab.kernel import steps

PACKAGE = Path(steps.__file__).resolve().parents[1]
CALL = re.compile(r"""\bstep\(\s*["']([^"']+)["']\s*\)""")


def called() -> list[str]:
    return [m.group(1) for path in sorted(PACKAGE.rglob("*.py")) if path.name != "steps.py"
            for m in CALL.finditer(path.read_text())]


def test_every_step_passed_is_listed_once_and_every_step_listed_is_passed():
    names = called()
    assert sorted(set(names)) == sorted(steps.STEPS)
    assert len(set(steps.STEPS)) == len(steps.STEPS)
    assert len(names) == len(set(names)), "a step is named at two places: the tests could not tell them apart"


def test_a_step_not_asked_for_does_nothing(monkeypatch):
    monkeypatch.setenv(steps.STOP_AT_ENV, "some-other-step")
    for name in steps.STEPS:
        steps.step(name)  # still alive
