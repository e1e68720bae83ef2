"""The read verbs that must start fast (bench/bench_cli.py) read less of the lab's state: `get pods`
(table, -o wide, -o name, -l, --show-labels) and `logs` read the plan's JSON without decoding it
nor importing the model (app.query.pod_lines, query.logs), `describe pod` decodes only the pods it
describes and only the events that mention them. What they print must be what the whole decoded
plan says. A plan is planted in a temporary state directory, as the lab saves it; no root."""
from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from kubenet_lab import output
from kubenet_lab.app import query
from kubenet_lab.cli import main
from kubenet_lab.errors import LabError
from kubenet_lab.fabric import state
from kubenet_lab.manifests import load_model
from kubenet_lab.plan import make_plan

LAB = "unitlines"

# Built-in servers and real processes (RunExec), an init container and a sidecar, another
# namespace, a gated pod and one no node takes.
MANIFESTS = """
apiVersion: v1
kind: Node
metadata: {name: node1}
---
apiVersion: v1
kind: Node
metadata: {name: node2}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web, tier: front}}
spec:
  containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: tools}
spec:
  restartPolicy: OnFailure
  initContainers:
  - {name: setup, image: busybox, command: [sh, -c, "true"]}
  - {name: proxy, image: nginx, restartPolicy: Always}
  containers:
  - {name: shell, image: busybox, command: [sleep, infinity]}
  - {name: server, image: nginx}
---
apiVersion: v1
kind: Pod
metadata: {name: cart, namespace: shop, labels: {app: cart}}
spec:
  containers: [{name: cart, image: nginx}]
---
apiVersion: v1
kind: Pod
metadata: {name: gated, labels: {app: web}}
spec:
  schedulingGates: [{name: example.com/foo}]
  containers: [{name: a, image: nginx}, {name: b, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: nowhere}
spec:
  nodeSelector: {disk: ssd}
  containers: [{name: a, image: nginx}]
"""


@pytest.fixture
def plan(tmp_path, monkeypatch):
    monkeypatch.setenv(state.ROOT_ENV, str(tmp_path))
    monkeypatch.setattr(query, "pod_status", lambda lab, pods=None: {})  # no supervisor
    planned = make_plan(load_model(["-"], io.StringIO(textwrap.dedent(MANIFESTS).lstrip("\n"))), LAB)
    assert {p.name for p in planned.pending} == {"gated", "nowhere"}
    state.save_plan(planned)
    return planned


def test_the_lines_read_from_json_are_those_of_the_decoded_plan(plan):
    lines, status, created = query.pod_lines(LAB)
    decoded = query.running_plan(LAB)
    assert lines == [output.pod_line(p) for p in decoded.pods + decoded.pending]
    assert status == {}
    tools, = [line for line in lines if line.name == "tools"]
    assert tools.containers == (("shell", True), ("server", False))
    assert tools.init_containers == (("setup", True, False), ("proxy", False, True))
    assert tools.restart_policy == "OnFailure"
    assert {line.name: line.reason for line in lines if line.pending} == {"gated": "SchedulingGated",
                                                                         "nowhere": "Unschedulable"}
    for p in decoded.pending:
        assert created(f"Pod/{p.key}") == output.created_at(decoded, f"Pod/{p.key}")
    for wide in (False, True):
        for all_ns in (False, True):
            assert output.pod_line_rows(lines, {}, wide, all_ns, created) == \
                output.pod_rows(decoded, list(decoded.pods + decoded.pending), {}, wide, all_ns)


def test_a_pod_the_supervisor_has_not_created_is_not_listed_and_its_state_is_the_supervisors(plan, monkeypatch):
    status = {"default/web": {"created": False},
              "default/tools": {"initialized": True,
                                "initContainers": {"setup": {"state": "terminated", "exitCode": 0, "restarts": 0},
                                                   "proxy": {"state": "running", "ready": True, "restarts": 0}},
                                "containers": {"shell": {"state": "running", "ready": True, "restarts": 2},
                                               "server": {"state": "running", "ready": False, "restarts": 0}}}}
    monkeypatch.setattr(query, "pod_status", lambda lab, pods=None: status)
    lines, got, _ = query.pod_lines(LAB)
    assert "web" not in [line.name for line in lines]
    decoded = query.existing(query.running_plan(LAB), status)
    for p in decoded.pods:
        line, = [line for line in lines if line.key == p.key]
        assert output.pod_state(line, got) == output.pod_state(p, got)
        assert output.container_states(line, got) == output.container_states(p, got)
        assert output.init_container_states(line, got) == output.init_container_states(p, got)


@pytest.mark.parametrize("args, name, namespace, all_ns, selector", [
    ((), None, "default", False, None), (("-o", "wide"), None, "default", False, None),
    (("-A",), None, "default", True, None), (("-A", "-o", "wide"), None, "default", True, None),
    (("-o", "name"), None, "default", False, None),
    (("-l", "app=web", "--show-labels"), None, "default", False, "app=web"),
    (("-n", "shop"), None, "shop", False, None), (("tools",), "tools", "default", False, None),
    (("-n", "none"), None, "none", False, None)])
def test_get_pods_prints_what_the_decoded_plan_prints(plan, args, name, namespace, all_ns, selector):
    """The table, as the decoded plan's pods make it (cli._select, output.pod_rows, output.table)."""
    from kubenet_lab import cli

    out = CliRunner().invoke(main, ["--lab", LAB, "get", "pods", *args])
    assert out.exit_code == 0, out.output
    labels = output.parse_selector(selector) if selector else None
    pods = cli._select(plan, "pods", name, namespace, all_ns, labels)
    if "name" in args:
        assert out.output == "".join(f"pod/{p.name}\n" for p in pods)
    elif not pods:
        assert out.output == f"No resources found in {namespace} namespace.\n"
    else:
        headers, rows = output.pod_rows(plan, pods, {}, "wide" in args, all_ns)
        if "--show-labels" in args:
            headers = [*headers, "LABELS"]
            rows = [[*row, output.format_labels(p.labels)] for row, p in zip(rows, pods)]
        assert out.output == output.table(headers, rows)


def test_get_pods_of_a_lab_that_is_not_up_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv(state.ROOT_ENV, str(tmp_path))
    out = CliRunner().invoke(main, ["--lab", LAB, "get", "pods"])
    assert out.exit_code == 1 and f"lab {LAB!r} is not up" in out.output
    (tmp_path / LAB).mkdir()
    (tmp_path / LAB / state.PLAN_FILE).write_text('{"pods": [{"name": "x"}]}')
    with pytest.raises(LabError, match="is unreadable"):
        query.pod_lines(LAB)
    with pytest.raises(LabError, match="is unreadable"):
        query.logs(LAB, "x", "default", None)


def test_logs_names_the_containers_from_the_json(plan, monkeypatch):
    monkeypatch.setattr(query, "_container_log", lambda lab, ns, pod, c: f"{ns}/{pod}/{c}")
    assert query.logs(LAB, "web", "default", None) == "default/web/web"
    assert query.logs(LAB, "tools", "default", "setup") == "default/tools/setup"
    with pytest.raises(LabError, match=r"a container name must be specified for pod tools, choose one of: "
                                       r"\[shell server\] or one of the init containers: \[setup proxy\]"):
        query.logs(LAB, "tools", "default", None)
    with pytest.raises(LabError, match="container nope is not valid for pod tools"):
        query.logs(LAB, "tools", "default", "nope")
    with pytest.raises(LabError, match='pods "gated" not found'):  # a pending pod has no logs
        query.logs(LAB, "gated", "default", None)


def test_get_pods_and_logs_do_not_import_the_model():
    code = ("import sys; from kubenet_lab import output; from kubenet_lab.app import query; "
            "print('kubenet_lab.model.objects' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("args, namespace", [
    (("pod", "web"), "default"), (("pods",), "default"), (("pod", "t"), "default"), (("pod", "gated"), "default"),
    (("pod", "web", "nope", "tools"), "default"), (("pods", "cart"), "shop"), (("pod", "nope"), "default"),
    (("pods",), "none")])
def test_describe_pod_decodes_only_what_it_describes_and_says_what_the_whole_plan_says(plan, monkeypatch, args,
                                                                                        namespace):
    from kubenet_lab.app import describe as describer
    from kubenet_lab.fabric import events
    from kubenet_lab.model.objects import Event

    events.record(LAB, [Event(p.namespace, "Pod", p.name, "Scheduled", f"assigned {p.key}", source="default-scheduler")
                        for p in plan.pods + plan.pending] * 2, 1.0)
    asked, statuses = [], []
    running_plan = query.running_plan

    def spy(lab, only_pods=None, data=None):
        asked.append(only_pods)
        return running_plan(lab, only_pods, data)
    monkeypatch.setattr(query, "running_plan", spy)
    monkeypatch.setattr(query, "pod_status", lambda lab, pods=None: statuses.append(pods) or {})
    fast = describer.describe(LAB, args, namespace)
    monkeypatch.setattr(query, "running_plan", lambda lab, only_pods=None, data=None: running_plan(lab))
    whole = describer.describe(LAB, args, namespace)
    assert (fast.text, fast.errors, fast.none_found) == (whole.text, whole.errors, whole.none_found)
    decoded = {k for k in asked[0] if k in {p.key for p in plan.pods}}
    described = {f"{namespace}/{line.split()[-1]}" for line in fast.text.splitlines() if line.startswith("Name:")}
    assert decoded == described - {p.key for p in plan.pending}
    names = args[1:]  # the supervisor is asked about the pods whose names start with one given (all without)
    assert statuses[0] == {p.key for p in plan.pods + plan.pending if p.namespace == namespace
                           and (not names or any(p.name.startswith(n) for n in names))}


def test_events_mentioning_a_name_are_at_least_those_about_it(tmp_path, monkeypatch):
    from kubenet_lab.fabric import events
    from kubenet_lab.model.objects import Event

    monkeypatch.setenv(state.ROOT_ENV, str(tmp_path))
    (tmp_path / LAB).mkdir()
    said = [Event("default", "Pod", "web", "Started", "Started container web", source="kubelet"),
            Event("default", "Pod", "web-1", "Pulled", "image", source="kubelet"),
            Event("default", "Deployment", "api", "ScalingReplicaSet", "Scaled up replica set web-1 to 1",
                  source="deployment-controller"),
            Event("default", "Pod", "db", "BackOff", "restarting", type="Warning", source="kubelet")]
    events.record(LAB, said, 1.0)
    everything, end = events.read(LAB)
    assert [e for _, e in everything] == said
    for name in ("web", "web-1", "db", "api", "nope"):
        some, at = events.read(LAB, mentioning=name)
        assert at == end
        assert [e for _, e in some if e.name == name] == [e for _, e in everything if e.name == name]
        assert len(some) < len(everything)


def test_the_plans_decoding_reads_the_field_types_typing_would():
    import dataclasses
    import typing

    from kubenet_lab.model import objects as model
    from kubenet_lab.plan import serialize

    classes = [c for c in vars(model).values()
               if isinstance(c, type) and dataclasses.is_dataclass(c) and c.__module__ == model.__name__]
    assert len(classes) > 40
    for c in classes:
        assert serialize._hints(c) == typing.get_type_hints(c, vars(model)), c.__name__
