"""What the interactive verbs import: `exec`, `get` and `logs` must start fast (bench/bench_cli.py
measures it), so the CLI module and the query path import none of the heavy rooms. Each case runs
a fresh interpreter and lists the modules it loaded; no timing."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest


def loaded(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


# Rooms and libraries no read-only verb needs to import: the planner, the manifests' parser and
# schema, rules rendering, the kernel's netlink, the runtime and servers, the daemon, asyncio.
HEAVY = ("kubenet_lab.plan.cluster", "kubenet_lab.manifests.load", "kubenet_lab.manifests.schema",
         "kubenet_lab.proxy", "kubenet_lab.fabric.netlink", "kubenet_lab.kernel.rtnl", "kubenet_lab.runtime",
         "kubenet_lab.servers", "kubenet_lab.supervisor.daemon", "kubenet_lab.inspect", "kubenet_lab.app.build",
         "pyroute2", "asyncio", "yaml")


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_the_entry_point_imports_nothing_of_the_lab():
    mods = loaded("import kubenet_lab.cli")
    ours = sorted(m for m in mods if m.startswith("kubenet_lab"))
    assert ours == ["kubenet_lab", "kubenet_lab.cli"]
    assert "click" not in mods


def test_the_verbs_module_imports_click_and_nothing_of_the_lab():
    mods = loaded("import kubenet_lab.commands")
    assert "click" in mods
    ours = sorted(m for m in mods if m.startswith("kubenet_lab"))
    assert ours == ["kubenet_lab", "kubenet_lab.commands", "kubenet_lab.errors"]


def test_the_entry_point_still_names_the_verbs():
    from kubenet_lab import cli, commands

    assert cli.main is commands.main


@pytest.mark.parametrize("code", [
    "from kubenet_lab.app import query",
    "from kubenet_lab import output",
    "from kubenet_lab import output; output.output_format('wide')",
    # `get nodes` asks whether each node's namespace is there: a stat, no netlink
    "from kubenet_lab import output; output.node_up(type('Node', (), {'netns': 'nowhere'})())",
    "from kubenet_lab.supervisor import client",
])
def test_the_query_path_imports_nothing_heavy(code):
    assert heavy(loaded(code)) == []


def test_formats_import_their_libraries_when_asked():
    assert "yaml" in loaded("from kubenet_lab import output; output.dump({'a': 1}, 'yaml')")
    assert "kubenet_lab.jsonpath" in loaded("from kubenet_lab import output; output.output_format('jsonpath={.a}')")
    assert "kubenet_lab.jsonpath" not in loaded("from kubenet_lab import output; output.output_format('json')")


def test_the_planner_is_still_there_by_its_old_names():
    mods = loaded("from kubenet_lab.plan import make_plan\nfrom kubenet_lab.manifests import load_model")
    assert {"kubenet_lab.plan.cluster", "kubenet_lab.manifests.load"} <= mods


def test_finding_the_warm_process_imports_the_standard_library_and_two_small_modules():
    mods = loaded("from kubenet_lab.warm import client\nclient.socket_path('x')")
    ours = sorted(m for m in mods if m.startswith("kubenet_lab"))
    assert ours == ["kubenet_lab", "kubenet_lab.fabric", "kubenet_lab.fabric.statedir", "kubenet_lab.warm",
                    "kubenet_lab.warm.client"]
    assert "dataclasses" not in mods  # fabric.state's (and the model's) first import, 4-7 ms
