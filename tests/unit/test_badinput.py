"""The bad-input corpus (tests/badinput/): every case is refused with exactly the messages its
first comment lines expect, as `up` refuses it (exit status 2, nothing changed).

A case is a file `NAME.yaml` (or a directory `NAME/` of files, for problems across files, whose
first file holds the expectations); `# expect: MESSAGE` lines give every problem the command
prints after `error: `, in order, with `...` standing for any text (generated name suffixes).
`running/` holds the cases a running lab refuses: each is planned against the plan of
`running/base.yaml`, as `up` plans against the lab's previous plan. A new file is a new test.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from kubenet_lab import cli
from kubenet_lab.errors import InputError
from kubenet_lab.manifests import load_model
from kubenet_lab.plan import make_plan

CORPUS = Path(__file__).resolve().parent.parent / "badinput"
RUNNING = "running"
BASE = f"{RUNNING}/base.yaml"


def _first_file(case: Path) -> Path:
    return sorted(p for p in case.iterdir() if p.suffix in (".yaml", ".yml"))[0] if case.is_dir() else case


def expectations(case: Path) -> list[str]:
    """The `# expect:` lines of a case's first comment block."""
    out = []
    for line in _first_file(case).read_text().splitlines():
        if not line.startswith("#"):
            break
        if line.startswith("# expect: "):
            out.append(line.removeprefix("# expect: "))
    return out


def cases(where: Path) -> list[Path]:
    return sorted(p for p in where.iterdir()
                  if (p.is_dir() and p.name != RUNNING) or (p.suffix == ".yaml" and p.name != "base.yaml"))


STANDALONE = cases(CORPUS)
ON_A_RUNNING_LAB = cases(CORPUS / RUNNING)


def matches(expected: list[str], got: list[str]) -> bool:
    patterns = [re.compile(".*".join(re.escape(part) for part in e.split("..."))) for e in expected]
    return len(patterns) == len(got) and all(p.fullmatch(g) for p, g in zip(patterns, got))


def refused(paths: list[str], previous=None) -> list[str]:
    """The problems of loading and planning `paths` as `up` does (app/build.py), with the lab's
    previous plan when it runs."""
    with pytest.raises(InputError) as err:
        make_plan(load_model(paths), "lab", previous)
    return err.value.problems


def name(case: Path) -> str:
    return str(case.relative_to(CORPUS))


def test_the_corpus_covers_the_issue():
    """At least 40 cases, each with its expectation written."""
    assert len(STANDALONE) + len(ON_A_RUNNING_LAB) >= 40
    assert all(expectations(c) for c in STANDALONE + ON_A_RUNNING_LAB)


@pytest.mark.parametrize("case", STANDALONE, ids=name)
def test_bad_input_is_refused_with_its_message(case, monkeypatch):
    monkeypatch.chdir(CORPUS)
    expected = expectations(case)
    got = refused([name(case)])
    assert matches(expected, got), "\n".join(["expected:", *expected, "got:", *got])


@pytest.mark.parametrize("case", ON_A_RUNNING_LAB, ids=name)
def test_running_lab_refuses_the_change_with_its_message(case, monkeypatch):
    monkeypatch.chdir(CORPUS)
    previous = make_plan(load_model([BASE]), "lab")
    expected = expectations(case)
    got = refused([name(case)], previous)
    assert matches(expected, got), "\n".join(["expected:", *expected, "got:", *got])


def test_the_base_of_the_running_cases_is_valid(monkeypatch):
    monkeypatch.chdir(CORPUS)
    assert make_plan(load_model([BASE]), "lab").services


@pytest.mark.parametrize("case", [CORPUS / "yaml-unclosed-flow.yaml", CORPUS / "dup-pod-across-files"], ids=name)
def test_the_command_prints_the_messages_and_exits_2(case, monkeypatch):
    """What the user sees: `up` stops at the manifests (these cases fail to load: before it needs
    root or takes the lab's lock), with `error: ` and each message on stderr, and exit status 2."""
    monkeypatch.chdir(CORPUS)
    result = CliRunner().invoke(cli.main, ["--lab", "badinput-unit", "up", name(case)])
    assert result.exit_code == 2, result.output
    lines = [l.removeprefix("error: ") for l in result.stderr.splitlines()]
    assert matches(expectations(case), lines)
