"""A long-lived process (the lab's warm process) keeps the plan it read while the file is the
same one: its children find it decoded. Anyone else reads the file every time. No root: the plan
is planted in a temporary state directory, as the lab saves it."""
from __future__ import annotations

import dataclasses
import io
import json
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


def test_the_plan_is_written_a_pod_a_line_and_read_again_a_pod_at_a_time(planted):
    with open(state.plan_path(LAB)) as f:
        lines = f.read().split("\n")
    assert len(lines) == len(planted.pods) + 2 and lines[-1] == "]}"
    assert [json.loads(line.removesuffix(","))["name"] for line in lines[1:-1]] == [p.name for p in planted.pods]
    state.keep_plans()
    first = state.load_plan(LAB)
    # one pod changes: the others, and the rest of the plan, are the objects decoded before
    changed = dataclasses.replace(planted, pods=(dataclasses.replace(planted.pods[0], labels={"new": "x"}),
                                                 *planted.pods[1:]))
    state.save_plan(changed)
    second = state.load_plan(LAB)
    assert second == changed
    assert second.pods[0] is not first.pods[0]
    assert all(a is b for a, b in zip(second.pods[1:], first.pods[1:]))
    assert second.services is first.services


def test_a_plan_written_whole_by_an_earlier_kubenet_lab_is_read(planted):
    from kubenet_lab.plan.serialize import plan_to_data

    state.write_atomic(state.plan_path(LAB), json.dumps(plan_to_data(planted)))
    assert state.load_plan(LAB) == planted
    state.keep_plans()
    assert state.load_plan(LAB) == planted and state.load_plan(LAB) is state.load_plan(LAB)


def test_a_keeping_process_writes_the_same_text_reusing_the_lines_of_unchanged_pods(planted, monkeypatch):
    from kubenet_lab.plan import serialize

    state.keep_plans()
    kept = state.load_plan(LAB)
    first, *rest = kept.pods
    changed = dataclasses.replace(kept, pods=(dataclasses.replace(first, ip=first.ip + 100), *rest))
    converted = []
    convert = serialize._convert
    monkeypatch.setattr(serialize, "_convert", lambda obj, memo: (converted.append(obj), convert(obj, memo))[1])
    state.save_plan(changed)
    pods = [o for o in converted if type(o).__name__ == "PlannedPod"]
    assert [p.key for p in pods] == [first.key]  # only the changed pod was written anew
    with open(state.plan_path(LAB)) as f:
        written = f.read()
    assert written == serialize.plan_text(serialize.plan_to_data(changed))  # byte for byte what a cold save writes
    assert state.load_plan(LAB) == changed
