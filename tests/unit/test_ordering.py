"""A StatefulSet's ordered start (podManagementPolicy OrderedReady) without root: which pod each
pod is created after, the controller's rule (plan.ordering), pods not created yet left out of
`get` and the endpoints, and the supervisor creating them in order on fake runners (the real
processes are tests/integration/test_statefulset_order.py's)."""
from __future__ import annotations

import asyncio
import io
import textwrap
from types import SimpleNamespace

import pytest

from kubenet_lab import output
from kubenet_lab.app import query
from kubenet_lab.manifests import load_model
from kubenet_lab.plan import make_plan
from kubenet_lab.plan.cluster import workload_warnings
from kubenet_lab.plan.ordering import may_create, not_created, waiting_at_start, without_pods
from kubenet_lab.plan.serialize import plan_from_data, plan_to_data
from kubenet_lab.plan.services import with_readiness
from kubenet_lab.runtime import containers
from kubenet_lab.supervisor import daemon as supervisor

STS = """
apiVersion: v1
kind: Service
metadata: {{name: db}}
spec:
  clusterIP: None
  selector: {{app: db}}
  ports: [{{name: sql, port: 5432}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db}}
spec:
  serviceName: db
  replicas: {replicas}
  {extra}
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:
      initContainers: [{{name: setup, image: busybox, command: [sh, -c, "true"]}}]
      containers: [{{name: db, image: postgres}}]
"""


def model_of(replicas: int = 3, extra: str = ""):
    text = STS.format(replicas=replicas, extra=extra)
    return load_model(["-"], io.StringIO(textwrap.dedent(text).lstrip("\n")))


def plan_of(replicas: int = 3, extra: str = "", previous=None):
    return make_plan(model_of(replicas, extra), "lab", previous, has_program=lambda p: p == "sh")


def after(plan) -> dict:
    return {p.name: p.created_after for p in plan.pods if p.owner == "StatefulSet/db"}


def test_ordered_ready_pods_are_each_created_after_the_one_before():
    plan = plan_of()
    assert after(plan) == {"db-0": None, "db-1": "default/db-0", "db-2": "default/db-1"}
    assert plan_from_data(plan_to_data(plan)) == plan
    # what `up` used to warn about is modelled now
    assert not [w for w in workload_warnings(model_of()) if "StatefulSet" in w]


def test_parallel_pods_and_the_first_ordinal_wait_for_nothing():
    assert after(plan_of(extra="podManagementPolicy: Parallel")) == {"db-0": None, "db-1": None, "db-2": None}
    assert after(plan_of(extra="ordinals: {start: 5}")) == {"db-5": None, "db-6": "default/db-5",
                                                            "db-7": "default/db-6"}
    # the policy changes no pod (the same uid: the same namespace and processes)
    ordered, parallel = plan_of(), plan_of(extra="podManagementPolicy: Parallel")
    assert [p.uid for p in ordered.pods] == [p.uid for p in parallel.pods]


def test_a_pod_is_created_once_every_pod_before_it_is_running_and_ready():
    chain = {"ns/w-0": None, "ns/w-1": "ns/w-0", "ns/w-2": "ns/w-1", "ns/w-3": "ns/w-2"}
    ready = {"ns/w-0", "ns/w-1"}
    assert may_create("ns/w-0", chain, ready.__contains__)
    assert may_create("ns/w-2", chain, ready.__contains__)
    assert not may_create("ns/w-3", chain, ready.__contains__)  # w-2 is not ready
    # w-0 turned unready: w-2 waits again, even though w-1, right before it, is ready
    assert not may_create("ns/w-2", chain, {"ns/w-1"}.__contains__)
    # a pod before it that does not exist (no node takes it) is not ready either
    assert not may_create("ns/w-1", {"ns/w-1": "ns/w-0"}, lambda key: False)
    assert may_create("ns/other", chain, ready.__contains__)
    assert not may_create("ns/a", {"ns/a": "ns/b", "ns/b": "ns/a"}, lambda key: True)  # never a loop


def test_up_leaves_the_pods_it_makes_anew_out_until_the_supervisor_creates_them():
    plan = plan_of()
    assert waiting_at_start(plan, None) == {"default/db-1", "default/db-2"}
    assert waiting_at_start(plan_of(previous=plan), plan) == set()  # the same pods: as they are
    bigger = plan_of(4, previous=plan)
    assert waiting_at_start(bigger, plan) == {"default/db-3"}
    assert waiting_at_start(plan_of(extra="podManagementPolicy: Parallel"), None) == set()


def test_a_pod_not_created_yet_is_not_listed_and_is_no_endpoint():
    plan = plan_of()
    status = {"default/db-0": {"created": True, "containers": {"db": {"state": "running"}},
                               "initContainers": {"setup": {"state": "terminated", "exitCode": 0}},
                               "initialized": True},
              "default/db-1": {"created": False}, "default/db-2": {"created": False}}
    assert not_created(status) == {"default/db-1", "default/db-2"}
    assert not_created({"default/db-0": {"uid": "x"}}) == set()  # an older supervisor's status
    seen = query.existing(plan, status)
    assert [p.name for p in seen.pods if p.owner == "StatefulSet/db"] == ["db-0"]
    assert without_pods(plan, set()) is plan
    sts, = [w for w in seen.workloads if w.kind == "StatefulSet"]
    headers, rows = output.workload_rows(seen, "StatefulSet", [sts], status, False, False)
    assert rows[0][:2] == ["db", "1/3"]
    assert output.workload_object(seen, sts, status)["status"]["replicas"] == 1
    # the rules (and the DNS) have them as no endpoints at all, as the supervisor reports them
    view = with_readiness(plan, {"default/db-1", "default/db-2"}, {"default/db-1", "default/db-2"})
    svc, = [s for s in view.services if s.key == "default/db"]
    assert [e.pod for e in svc.ports[0].endpoints] == ["default/db-0"]


# --- the supervisor, on fake runners ------------------------------------------------------------


class Controlled(containers.Runner):
    """Runs until the test ends it (init containers: `exits` says with which code at once)."""

    def __init__(self, name: str, events: list, exits: int | None = None):
        self.name, self.events, self.exits = name, events, exits
        self._ended: asyncio.Future | None = None

    async def start(self) -> None:
        self.events.append(self.name)
        self._ended = asyncio.get_running_loop().create_future()
        if self.exits is not None:
            self._ended.set_result(self.exits)

    def end(self, code: int) -> None:
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(code)

    async def wait(self) -> int:
        return await asyncio.shield(self._ended)

    async def stop(self, grace: float) -> None:
        self.end(143)

    def stopped_code(self) -> int:
        return 143


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


@pytest.fixture
def fake_runners(monkeypatch):
    """Every container a Controlled runner named `<pod>/<container>`; db-0's init container
    runs until the test ends it, the others exit 0 at once."""
    events: list[str] = []
    runners: dict[str, Controlled] = {}

    def make(lab, pod, c, plan, init=False):
        name = f"{pod.name}/{c.name}"
        runners[name] = Controlled(name, events, exits=None if name == "db-0/setup" or not init else 0)
        return runners[name]
    monkeypatch.setattr(containers, "make_runner", make)
    monkeypatch.setattr(containers, "BACKOFF_START", 0.001)
    return events, runners


def test_a_worker_not_created_starts_nothing_until_it_is_released(fake_runners):
    events, runners = fake_runners
    plan = plan_of()

    async def scenario():
        worker = containers.PodWorker("lab", plan.pod("default/db-1"), lambda: None)
        await worker.start()  # returns at once: `up` does not wait for it
        before = (list(events), worker.status()["created"], worker.pod_status().ready)
        await worker.update(plan.pod("default/db-1"))  # a reload meanwhile starts nothing either
        assert events == []
        worker.release()
        await worker.wait_settled()
        await worker.find("db").until(lambda c: c.state == "running")
        after_ = (list(events), worker.status()["created"], worker.pod_status().ready)
        await worker.stop(0.1)
        return before, after_

    before, after_ = run(scenario())
    assert before == ([], False, False)
    assert after_ == (["db-1/setup", "db-1/db"], True, True)


def test_the_supervisor_creates_each_pod_once_the_ones_before_it_are_ready(fake_runners, monkeypatch):
    events, runners = fake_runners
    plan = plan_of()

    async def scenario():
        sup = supervisor.Supervisor("lab")
        monkeypatch.setattr(sup, "readiness_changed", lambda delay=0: sup._release_waiting())  # no rules here
        sup.pods = {supervisor.pod_key(p): containers.PodWorker("lab", p, lambda: None, on_change=sup.readiness_changed)
                    for p in plan.pods if p.owner == "StatefulSet/db"}
        sup._set_view(plan, (frozenset(), frozenset()))
        workers = {w.pod.name: w for w in sup.pods.values()}
        await asyncio.gather(*(w.start() for w in workers.values()))
        sup._release_waiting()
        waiting = (list(events), sup.readiness()[1], sup._not_created(plan))
        runners["db-0/setup"].end(0)  # db-0 initialized: its container runs, it is ready
        await workers["db-2"].wait_settled()
        await workers["db-2"].find("db").until(lambda c: c.state == "running")
        done = (list(events), sup.readiness())
        await asyncio.gather(*(w.stop(0.1) for w in workers.values()))
        return waiting, done

    waiting, done = run(scenario())
    assert waiting == (["db-0/setup"], {"default/db-1", "default/db-2"}, {"default/db-1", "default/db-2"})
    assert done[0] == ["db-0/setup", "db-0/db", "db-1/setup", "db-1/db", "db-2/setup", "db-2/db"]
    assert done[1] == (frozenset(), frozenset())


def test_a_created_pod_keeps_running_when_one_before_it_turns_unready():
    """The controller only gates creation: db-1 stays; db-2 waits until db-0 is ready again."""
    def worker(name, created, ready):
        pod = SimpleNamespace(key=f"default/{name}", name=name,
                              created_after=None if name == "db-0" else f"default/db-{int(name[-1]) - 1}")
        w = SimpleNamespace(pod=pod, created=created, released=False,
                            pod_status=lambda: SimpleNamespace(ready=ready[0]))
        w.release = lambda: setattr(w, "released", True)
        return w
    db0_ready = [False]
    sup = supervisor.Supervisor("lab")
    sup._ordered = True  # as a plan with such pods makes it
    sup.pods = {name: worker(name, created, ready) for name, created, ready in
                [("db-0", True, db0_ready), ("db-1", True, [True]), ("db-2", False, [False])]}
    sup._release_waiting()
    assert not sup.pods["db-2"].released and not sup.pods["db-1"].released
    db0_ready[0] = True
    sup._release_waiting()
    assert sup.pods["db-2"].released
