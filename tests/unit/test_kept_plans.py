"""A long-lived process (the lab's warm process) keeps the plan it read while the file is the
same one: its children find it decoded. Anyone else reads the file every time. No root: the plan
is planted in a temporary state directory, as the lab saves it."""
from __future__ import annotations

import dataclasses
import io
import os
import textwrap

import pytest

from kubenet_lab.fabric import state
from kubenet_lab.manifests import load_model
from kubenet_lab.plan import make_plan

LAB = "unitkept"
MANIFESTS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: nginx, ports: [{containerPort: 80}]}]
"""


@pytest.fixture
def planted(tmp_path, monkeypatch):
    monkeypatch.setenv(state.ROOT_ENV, str(tmp_path))
    monkeypatch.setattr(state, "_keeping", False)
    monkeypatch.setattr(state, "_kept", {})
    plan = make_plan(load_model(["-"], io.StringIO(textwrap.dedent(MANIFESTS).lstrip("\n"))), LAB)
    os.makedirs(state.state_dir(LAB))
    state.save_plan(plan)
    return plan


def test_without_keeping_every_read_decodes_the_file(planted):
    first, second = state.load_plan(LAB), state.load_plan(LAB)
    assert first == planted and second == planted and first is not second


def test_kept_while_the_file_is_the_same_and_read_again_once_it_is_replaced(planted):
    state.keep_plans()
    first = state.load_plan(LAB)
    assert first == planted and state.load_plan(LAB) is first
    assert state.load_plan_data(LAB) is state.load_plan_data(LAB)
    changed = dataclasses.replace(planted, pods=planted.pods[:2])
    state.save_plan(changed)  # a new file, as every change writes it
    assert state.load_plan(LAB) == changed
    pod = planted.pods[0].key
    assert [p.key for p in state.load_plan(LAB, only_pods={pod}).pods] == [pod]
    os.unlink(state.plan_path(LAB))
    assert state.load_plan(LAB) is None
