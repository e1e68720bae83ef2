"""The pod lifecycle without root: init containers and sidecars as planned, terminal pods leaving
the endpoints, and the supervisor's restart policies, init order and preStop ordering run on
fake runners (the real processes are tests/integration/test_lifecycle.py's)."""
from __future__ import annotations

import asyncio
import io
import textwrap
from pathlib import Path

import pytest

from kubenet_lab.plan.images import NGINX_HTML
from kubenet_lab.manifests import load_model
from kubenet_lab.plan import make_plan
from kubenet_lab.plan.containers import emulation_warnings
from kubenet_lab.model.objects import Hook, RunExec, RunHttp, RunNothing
from kubenet_lab.plan.serialize import plan_from_data, plan_to_data
from kubenet_lab.plan.services import with_readiness
from kubenet_lab.runtime import containers
from kubenet_lab.fabric import state

CORPUS = Path(__file__).resolve().parent.parent / "corpus"

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: app, labels: {app: app}}
spec:
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 7
  initContainers:
  - {name: setup, image: busybox, command: [sh, -c, "echo setup"]}
  - {name: fetch, image: example/fetcher, command: [/fetch, --all]}
  - name: proxy
    image: envoyproxy/envoy
    restartPolicy: Always
    ports: [{containerPort: 15001}]
    lifecycle: {preStop: {httpGet: {port: 15001, path: /quit}}}
  containers:
  - name: web
    image: nginx
    lifecycle: {preStop: {exec: {command: [sh, -c, "sleep 1"]}}}
---
apiVersion: v1
kind: Service
metadata: {name: app}
spec:
  selector: {app: app}
  ports: [{name: a, port: 80}, {name: b, port: 15001}]
"""


def plan_of(text: str, has_program=lambda p: p in ("sh", "wget", "nslookup")):
    model = load_model(["-"], io.StringIO(textwrap.dedent(text).lstrip("\n")))
    return make_plan(model, "lab", has_program=has_program)


def test_init_containers_are_planned_in_order_with_the_pods_lifecycle():
    plan = plan_of(PODS)
    pod = plan.pod("default/app")
    assert (pod.restart_policy, pod.termination_grace_period) == ("OnFailure", 7)
    setup, fetch, proxy = pod.init_containers
    assert setup.run == RunExec(("sh", "-c", "echo setup")) and not setup.sidecar
    # its program lives in its image: nothing to run to completion here, it completes at once
    assert fetch.run == RunNothing() and fetch.note and not fetch.sidecar
    # a sidecar is emulated like any container, and keeps its port: the Service's 15001 is its
    assert proxy.sidecar and proxy.run == RunHttp(ports=(15001,))
    assert proxy.pre_stop == Hook(http_port=15001, http_path="/quit")
    web, = pod.containers
    assert web.run == RunHttp(ports=(80,), docroot=NGINX_HTML) and web.pre_stop == Hook(command=("sh", "-c", "sleep 1"))
    assert plan_from_data(plan_to_data(plan)) == plan
    warnings = emulation_warnings(plan)
    assert ("pod default/app, init container fetch: /fetch is not a program on this machine (it lives in image "
            "example/fetcher, which kubenet-lab does not pull); it completes at once (exit code 0) instead") in warnings


def test_the_corpus_init_container_example_runs_its_command_where_the_program_is_here():
    plan = make_plan(load_model([str(CORPUS / "workloads/init-containers.yaml")]), "lab",
                     has_program=lambda p: p == "wget")
    install, = plan.pod("default/init-demo").init_containers
    assert install.run == RunExec(("wget", "-O", "/work-dir/index.html", "http://info.cern.ch"))
    sidecars = make_plan(load_model([str(CORPUS / "workloads/restart-all-containers.yaml")]), "lab")
    pod = sidecars.pod("default/ml-worker")
    assert pod.restart_policy == "Never" and [c.sidecar for c in pod.init_containers] == [False, True]


def test_pods_that_ended_are_no_endpoints_and_not_ready_ones_are_listed_as_such(tmp_path, monkeypatch):
    text = PODS + "".join(f"""
---
apiVersion: v1
kind: Pod
metadata: {{name: {n}, labels: {{app: app}}}}
spec: {{containers: [{{name: c, image: nginx}}]}}
""" for n in ("done", "waiting"))
    plan = plan_of(text)
    view = with_readiness(plan, {"default/done", "default/waiting"}, {"default/done"})
    port = next(s for s in view.services if s.key == "default/app").ports[0]
    assert sorted((e.pod, e.ready) for e in port.endpoints) == [("default/app", True), ("default/waiting", False)]
    monkeypatch.setenv(state.ROOT_ENV, str(tmp_path))
    state.save_not_ready("lab", frozenset({"default/done", "default/waiting"}), frozenset({"default/done"}))
    assert (state.not_ready("lab"), state.terminal("lab")) == ({"default/done", "default/waiting"}, {"default/done"})
    (tmp_path / "lab" / state.NOT_READY_FILE).write_text('["default/x"]')  # as an older lab wrote it
    assert (state.not_ready("lab"), state.terminal("lab")) == ({"default/x"}, frozenset())


# --- the supervisor's loops, on fake runners ----------------------------------------------------


class Fake(containers.Runner):
    """Exits with each of `codes` in turn (None: runs until stopped); notes what happens."""

    def __init__(self, name: str, events: list, codes=(None,)):
        self.name, self.events, self.codes = name, events, list(codes)
        self._ended: asyncio.Future | None = None

    async def start(self) -> None:
        self.events.append(f"start {self.name}")
        self._ended = asyncio.get_running_loop().create_future()
        code = self.codes.pop(0) if len(self.codes) > 1 else self.codes[0]
        if code is not None:
            self._ended.set_result(code)

    async def wait(self) -> int:
        return await asyncio.shield(self._ended)  # a cancelled waiter leaves the run going

    async def stop(self, grace: float) -> None:
        if self._ended is not None and not self._ended.done():
            self.events.append(f"term {self.name}")
            self._ended.set_result(143)

    def stopped_code(self) -> int:
        return 143


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setattr(containers, "BACKOFF_START", 0.001)
    monkeypatch.setattr(containers, "MIN_GRACE", 0.01)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_a_container_follows_its_restart_policy(fast):
    async def scenario(policy, codes):
        c = containers.Container(Fake("c", [], codes), restart_policy=policy)
        await c.start()
        await c.until(lambda x: x.state == "terminated" or x.restarts >= 3)
        await c.stop(0.01)
        return c.status()

    never = run(scenario("Never", [3]))
    assert (never["state"], never["reason"], never["exitCode"], never["restarts"]) == ("terminated", "Error", 3, 0)
    on_failure = run(scenario("OnFailure", [1, 1, 0]))
    assert (on_failure["state"], on_failure["reason"], on_failure["restarts"]) == ("terminated", "Completed", 2)
    assert (on_failure["exitCode"], on_failure["lastExitCode"]) == (0, 1)
    always = run(scenario("Always", [0]))
    assert always["restarts"] >= 3


def test_a_pod_worker_runs_init_containers_in_order_then_the_containers(fast, monkeypatch):
    events: list[str] = []
    codes = {"setup": [1, 0], "proxy": [None], "after": [0], "web": [None]}
    monkeypatch.setattr(containers, "make_runner", lambda lab, pod, c, plan, init=False: Fake(c.name, events,
                                                                                               codes[c.name]))
    pod = plan_of(PODS.replace("/fetch, --all", "sh, -c, after").replace("name: fetch", "name: after")
                  .replace("restartPolicy: OnFailure", "restartPolicy: Always")).pod("default/app")
    pod = type(pod)(**{**pod.__dict__, "init_containers": (pod.init_containers[0], pod.init_containers[2],
                                                           pod.init_containers[1])})

    async def scenario():
        worker = containers.PodWorker("lab", pod, lambda: None)
        await worker.start()
        await worker.find("web").until(lambda x: x.state == "running")
        st = worker.pod_status()
        await worker.stop(0.5)
        return worker, st

    worker, st = run(scenario())
    # setup failed once and was retried (restartPolicy Always: OnFailure for an init container);
    # the sidecar started and stayed; the next init container ran once it was started
    assert events[:5] == ["start setup", "start setup", "start proxy", "start after", "start web"]
    assert (st.phase, st.status, f"{st.ready_count}/{st.total}", st.restarts) == ("Running", "Running", "2/2", 0)
    # removal: the containers first, then the sidecar (the hooks are not run: no plan to run them in)
    assert events[5:] == ["term web", "term proxy"]
    assert worker.status()["initContainers"]["setup"]["restarts"] == 1


def test_a_pod_worker_with_restart_policy_never_stops_its_sidecar_when_done(fast, monkeypatch):
    events: list[str] = []
    codes = {"setup": [0], "fetch": [0], "proxy": [None], "web": [0]}
    monkeypatch.setattr(containers, "make_runner", lambda lab, pod, c, plan, init=False: Fake(c.name, events,
                                                                                               codes[c.name]))
    pod = plan_of(PODS.replace("restartPolicy: OnFailure", "restartPolicy: Never")).pod("default/app")

    async def scenario():
        worker = containers.PodWorker("lab", pod, lambda: None)
        await worker.start()
        await worker.find("proxy").until(lambda x: x.state == "terminated")
        return worker.pod_status()

    st = run(scenario())
    assert events == ["start setup", "start fetch", "start proxy", "start web", "term proxy"]
    assert (st.phase, st.status, st.terminal) == ("Succeeded", "Completed", True)


def test_a_failed_init_container_with_restart_policy_never_fails_the_pod(fast, monkeypatch):
    events: list[str] = []
    codes = {"setup": [1], "fetch": [0], "proxy": [None], "web": [None]}
    monkeypatch.setattr(containers, "make_runner", lambda lab, pod, c, plan, init=False: Fake(c.name, events,
                                                                                               codes[c.name]))
    pod = plan_of(PODS.replace("restartPolicy: OnFailure", "restartPolicy: Never")).pod("default/app")

    async def scenario():
        worker = containers.PodWorker("lab", pod, lambda: None)
        await worker.start()
        await worker._task
        return worker.pod_status()

    st = run(scenario())
    assert events == ["start setup"]
    assert (st.phase, st.status, st.terminal) == ("Failed", "Init:Error", True)


def test_pre_stop_runs_before_sigterm_and_counts_against_the_grace_period(fast):
    events: list[str] = []
    given: list[float] = []

    class Timed(Fake):
        async def stop(self, grace: float) -> None:
            given.append(grace)
            await super().stop(grace)

    async def hook(timeout: float) -> None:
        events.append("prestop")
        await asyncio.sleep(0.2)

    async def scenario():
        c = containers.Container(Timed("c", events), pre_stop=hook)
        await c.start()
        await c.stop(5.0, minimum=0.01)
        return c

    c = run(scenario())
    assert events == ["start c", "prestop", "term c"]
    assert 4.0 < given[0] <= 4.8  # what the hook left of the 5 seconds
    assert (c.state, c.exit_code) == ("terminated", 143)
