"""How the command reads its own line before handing it to the lab's warm process: the lab and
the verb as commands.main reads them, and which verbs go warm."""
from __future__ import annotations

import pytest

from kubenet_lab import commands
from kubenet_lab.warm import client


@pytest.mark.parametrize("args, expected", [
    (["get", "pods"], ("kubenet", "get")),
    (["--lab", "demo", "apply", "-f", "x.yaml"], ("demo", "apply")),
    (["--lab=demo", "describe", "pod", "a"], ("demo", "describe")),
    (["--lock-timeout", "3", "--lab", "d", "scale"], ("d", "scale")),
    (["--lock-timeout=3", "get"], ("kubenet", "get")),
    (["--version"], ("kubenet", None)),
    (["-h"], ("kubenet", None)),
    (["--lab"], ("kubenet", None)),
    ([], ("kubenet", None)),
])
def test_the_lab_and_the_verb(args, expected, monkeypatch):
    monkeypatch.delenv("KUBENET_LAB", raising=False)
    assert client.lab_and_verb(args) == expected


def test_the_lab_from_the_environment(monkeypatch):
    monkeypatch.setenv("KUBENET_LAB", "env")
    assert client.lab_and_verb(["get", "pods"]) == ("env", "get")
    assert client.lab_and_verb(["--lab", "opt", "get"]) == ("opt", "get")


def test_the_global_options_are_those_of_the_verbs_module():
    options = {opt for param in commands.main.params for opt in param.opts if param.opts[0].startswith("--")}
    valued = {opt for param in commands.main.params if not getattr(param, "is_flag", False)
              and param.name != "version" for opt in param.opts}
    assert set(client.VALUED_OPTIONS) == valued
    assert set(client.VALUED_OPTIONS) <= options


def test_the_warm_verbs_are_verbs_and_leave_out_those_that_take_the_terminal_or_the_lab():
    assert client.VERBS <= set(commands.main.commands)
    assert not client.VERBS & {"exec", "run", "port-forward", "down"}


@pytest.mark.parametrize("argv", [["kubenet-lab", "exec", "a", "--", "sh"], ["kubenet-lab", "down"],
                                  ["kubenet-lab", "get", "pods", "--help"], ["kubenet-lab", "--lab", "../x", "get"]])
def test_not_warm(argv, monkeypatch):
    monkeypatch.setattr(client.os, "geteuid", lambda: 0)
    assert client.wanted(argv) is None


def test_warm_unless_turned_off(monkeypatch):
    monkeypatch.setattr(client.os, "geteuid", lambda: 0)
    monkeypatch.delenv(client.DISABLE_ENV, raising=False)
    assert client.wanted(["kubenet-lab", "--lab", "x", "get", "pods"]) == "x"
    monkeypatch.setenv(client.DISABLE_ENV, "0")
    assert client.wanted(["kubenet-lab", "--lab", "x", "get", "pods"]) is None
    monkeypatch.setattr(client.os, "geteuid", lambda: 1000)
    monkeypatch.delenv(client.DISABLE_ENV)
    assert client.wanted(["kubenet-lab", "--lab", "x", "get", "pods"]) is None
