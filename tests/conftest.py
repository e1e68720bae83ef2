"""Fixtures shared by the unit and integration tests."""
from __future__ import annotations

import subprocess
import uuid

import pytest


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
