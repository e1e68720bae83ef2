"""The lab's lock: commands on one lab run one at a time, and a lab removed meanwhile is not
brought back by whoever waited for its lock."""
from __future__ import annotations

import os
import shutil
import threading
import time

from kubenet_lab.fabric import state


def test_a_waiter_never_holds_the_lock_of_a_removed_lab(tmp_path, monkeypatch):
    monkeypatch.setenv(state.ROOT_ENV, str(tmp_path))
    got: list[bool] = []

    def waiter() -> None:
        with state.locked("lab", create=False) as held:
            got.append(held)
            got.append(os.path.exists(state.state_dir("lab")))

    with state.locked("lab") as held:  # like `down`: holds the lock, then removes the lab
        assert held
        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.2)
        assert got == []  # it waits
        shutil.rmtree(state.state_dir("lab"))
    t.join(5)
    assert got == [False, False]  # it found the lab gone, and did not make it again

    with state.locked("lab", create=False) as held:
        assert held is False and not os.path.exists(state.state_dir("lab"))
    with state.locked("lab") as held:  # a command that makes the lab makes its state
        assert held and os.path.exists(os.path.join(state.state_dir("lab"), "lock"))


def test_not_ready_pods_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv(state.ROOT_ENV, str(tmp_path))
    assert state.not_ready("lab") == frozenset()
    state.save_not_ready("lab", frozenset({"default/b", "default/a"}))
    assert state.not_ready("lab") == {"default/a", "default/b"}
