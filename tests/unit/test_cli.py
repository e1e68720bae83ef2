"""The command line without root: help, version, exit codes and the messages people act on."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from kubenet_lab import KUBERNETES_VERSION, __version__
from kubenet_lab.cli import main
from kubenet_lab.errors import EnvironmentProblem
from kubenet_lab.fabric import checks

VERBS = ["up", "down", "exec", "get", "logs", "port-forward"]


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBENET_LAB_STATE_ROOT", str(tmp_path / "state"))
    runner = CliRunner()
    return lambda *args, **kw: runner.invoke(main, list(args), catch_exceptions=False, **kw)


def test_version(run):
    out = run("--version")
    assert out.exit_code == 0 and __version__ in out.output
    assert out.output == f"kubenet-lab, version {__version__} (Kubernetes v{KUBERNETES_VERSION})\n"


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help_with_examples(run, verb):
    out = run(verb, "--help")
    assert out.exit_code == 0
    assert "Examples:" in out.output and f"kubenet-lab {verb}" in out.output


def test_bad_manifests_exit_2_with_file_line_and_path(run, tmp_path):
    bad = tmp_path / "web.yaml"
    bad.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: three\n")
    out = run("--lab", "unit", "up", str(bad))
    assert out.exit_code == 2
    assert f"error: {bad}:6: spec.replicas: expected an integer, got 'three'" in out.output


def test_bad_lab_name_exits_2(run):
    out = run("--lab", "Not_A.Name", "get", "pods")
    assert out.exit_code == 2 and "--lab" in out.output


def test_get_on_a_lab_that_is_not_up_says_how_to_start_it(run):
    out = run("--lab", "nothere", "get", "pods")
    assert out.exit_code == 1 and "kubenet-lab --lab nothere up" in out.output


def test_ipvs_is_refused_clearly(run):
    out = run("--lab", "unit", "up", "--proxy-mode", "ipvs")
    assert out.exit_code == 2 and "no IPVS" in out.output


def test_not_root_says_to_use_sudo(monkeypatch):
    monkeypatch.setattr(checks.os, "geteuid", lambda: 1000)
    with pytest.raises(EnvironmentProblem, match=r"needs root.*sudo kubenet-lab up"):
        checks.require_root("up")


def test_a_missing_tool_names_the_package_to_install(monkeypatch):
    monkeypatch.setattr(checks.shutil, "which", lambda tool: None)
    with pytest.raises(EnvironmentProblem, match=r"nft.*apt-get install .*nftables.* tini"):
        checks.require_tools(*checks.tools_for_mode("nftables"))


def test_a_missing_bridge_netfilter_module_is_named_before_anything_is_made(run, monkeypatch):
    """`up` says which module to load, before it makes any namespace or state."""
    monkeypatch.setattr(checks.os, "geteuid", lambda: 0)
    monkeypatch.setattr(checks, "BRIDGE_NF_SYSCTL", "/proc/sys/net/bridge/not-there")
    monkeypatch.setattr(checks, "require_tools", lambda *tools: None)
    out = run("--lab", "unit", "up")
    assert out.exit_code == 1
    assert "br_netfilter is not loaded" in out.output and "sudo modprobe br_netfilter" in out.output


def test_down_all_removes_every_lab_found_by_marks_processes_or_state(run, monkeypatch):
    from kubenet_lab.app import build
    monkeypatch.setattr(checks.os, "geteuid", lambda: 0)
    monkeypatch.setattr(build.netlink, "discover_all", lambda: {"a": ["a.underlay"], "b": ["b.underlay"]})
    monkeypatch.setattr(build.supervisor, "find_supervisors", lambda lab: {"c": 42} if lab is None else {})
    monkeypatch.setattr(build.state, "known_labs", lambda: ["d", "a"])
    removed = []
    monkeypatch.setattr(build, "down", lambda lab: removed.append(lab) or [f"{lab}.underlay"])
    out = run("down", "--all")
    assert out.exit_code == 0 and removed == ["a", "b", "c", "d"]
    assert "lab a removed (1 namespace)" in out.output
