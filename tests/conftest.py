"""Fixtures shared by the unit and integration tests."""
from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from kubenet_lab.fabric import checks

# Set when the integration tests cannot run on this kernel: the one line the run ends with.
_NOT_RUN: list[str] = []


def pytest_collection_modifyitems(config, items):
    """Without the bridge netfilter module every lab fails the same way: rather than a hundred
    errors, the integration tests are left out and the run fails with one line saying why. (Not
    root: they skip themselves, see tests/integration/conftest.py.)"""
    problem = os.geteuid() == 0 and checks.bridge_netfilter_problem()
    if not problem:
        return
    left_out = [i for i in items if "integration" in i.path.parts]
    if left_out:
        items[:] = [i for i in items if "integration" not in i.path.parts]
        config.hook.pytest_deselected(items=left_out)
        _NOT_RUN.append(f"{len(left_out)} integration tests not run: {problem}")


def pytest_terminal_summary(terminalreporter):
    for line in _NOT_RUN:
        terminalreporter.write_line(f"ERROR: {line}", red=True, bold=True)


def pytest_sessionfinish(session):
    if _NOT_RUN and session.exitstatus == 0:
        session.exitstatus = 1


def _throwaway_netns():
    name = f"kubenet-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def scratch_netns():
    """An empty network namespace of the test's own (root only), removed afterwards: a place to
    try the real tools (nft -c, iptables-restore) without touching the host."""
    yield from _throwaway_netns()


@pytest.fixture
def scratch_netns2():
    """A second one, for tests that compare two namespaces."""
    yield from _throwaway_netns()
