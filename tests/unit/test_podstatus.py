"""Phase, readiness and the READY/STATUS/RESTARTS columns of `get pods` from container states, as
kubelet (getPhase, the pod conditions) and kubectl (printPod) make them, for every restart
policy, init containers and sidecars."""
from __future__ import annotations

from datetime import datetime, timezone

from kubenet_lab.output import restarts_column
from kubenet_lab.plan.podstatus import pod_status

T0, T1 = "2026-11-27T10:00:00Z", "2026-11-27T10:00:05Z"
RUNNING = {"state": "running", "restarts": 0, "startedAt": T0}
CREATING = {"state": "waiting", "reason": "ContainerCreating", "restarts": 0}
INITIALIZING = {"state": "waiting", "reason": "PodInitializing", "restarts": 0}
COMPLETED = {"state": "terminated", "reason": "Completed", "exitCode": 0, "restarts": 0, "finishedAt": T0}
ERROR = {"state": "terminated", "reason": "Error", "exitCode": 3, "restarts": 0, "finishedAt": T0}
CRASHING = {"state": "waiting", "reason": "CrashLoopBackOff", "exitCode": 2, "restarts": 2, "finishedAt": T1}


def columns(st) -> tuple[str, str, str, str]:
    return st.phase, f"{st.ready_count}/{st.total}", st.status, str(st.restarts)


def test_restart_policy_never_a_container_that_ends_stays_ended():
    done = pod_status([COMPLETED], restart_policy="Never")
    assert columns(done) == ("Succeeded", "0/1", "Completed", "0")
    assert done.terminal and not done.ready and done.initialized
    failed = pod_status([ERROR], restart_policy="Never")
    assert columns(failed) == ("Failed", "0/1", "Error", "0") and failed.terminal
    # one ended with an error, one still runs: kubectl says Error, the pod runs on, not ready
    mixed = pod_status([ERROR, RUNNING], restart_policy="Never")
    assert columns(mixed) == ("Running", "1/2", "Error", "0") and not mixed.ready and not mixed.terminal
    both = pod_status([ERROR, COMPLETED], restart_policy="Never")
    assert both.phase == "Failed"
    start_error = {"state": "terminated", "reason": "StartError", "exitCode": 128, "restarts": 0}
    assert columns(pod_status([start_error], restart_policy="Never")) == ("Failed", "0/1", "StartError", "0")


def test_restart_policy_on_failure_restarts_only_after_a_failure():
    restarting = pod_status([CRASHING], restart_policy="OnFailure")
    assert columns(restarting) == ("Running", "0/1", "CrashLoopBackOff", "2") and not restarting.terminal
    assert restarting.last_restart == T1
    # it failed twice, then exited 0: Succeeded, and the restarts stay counted
    finally_done = {**COMPLETED, "restarts": 2, "finishedAt": T1, "lastExitCode": 1, "lastFinishedAt": T0}
    st = pod_status([finally_done], restart_policy="OnFailure")
    assert columns(st) == ("Succeeded", "0/1", "Completed", "2") and st.last_restart == T0
    # one container done, another still running: kubectl turns "Completed" into NotReady
    assert columns(pod_status([COMPLETED, RUNNING], restart_policy="OnFailure")) == ("Running", "1/2", "NotReady",
                                                                                     "0")


def test_restart_policy_always_never_ends():
    assert columns(pod_status([CRASHING])) == ("Running", "0/1", "CrashLoopBackOff", "2")
    assert columns(pod_status([RUNNING, CREATING])) == ("Pending", "1/2", "ContainerCreating", "0")
    st = pod_status([RUNNING, RUNNING])
    assert columns(st) == ("Running", "2/2", "Running", "0") and st.ready


def test_init_containers_run_in_order_and_the_status_column_counts_them():
    first_runs = pod_status([INITIALIZING], [(RUNNING, False), (INITIALIZING, False)], initialized=False)
    assert columns(first_runs) == ("Pending", "0/1", "Init:0/2", "0") and not first_runs.ready
    second_runs = pod_status([INITIALIZING], [(COMPLETED, False), (RUNNING, False)], initialized=False)
    assert second_runs.status == "Init:1/2"
    both_done = pod_status([INITIALIZING], [(COMPLETED, False), (COMPLETED, False)])
    assert columns(both_done) == ("Pending", "0/1", "PodInitializing", "0") and both_done.initialized
    running = pod_status([RUNNING], [(COMPLETED, False), (COMPLETED, False)], initialized=True)
    assert columns(running) == ("Running", "1/1", "Running", "0") and running.ready


def test_a_failing_init_container_is_retried_or_fails_the_pod():
    retried = pod_status([INITIALIZING], [(COMPLETED, False), (CRASHING, False)], initialized=False)
    assert columns(retried) == ("Pending", "0/1", "Init:CrashLoopBackOff", "2") and not retried.terminal
    failed = pod_status([INITIALIZING], [(ERROR, False), (INITIALIZING, False)], restart_policy="Never",
                        initialized=False)
    assert columns(failed) == ("Failed", "0/1", "Init:Error", "0") and failed.terminal and not failed.ready


def test_sidecars_count_in_ready_and_keep_the_pod_running():
    st = pod_status([RUNNING], [(RUNNING, True), (COMPLETED, False)], initialized=True)
    assert columns(st) == ("Running", "2/2", "Running", "0") and st.ready
    # the sidecar runs, the next init container too: it is started, so the next one went on
    assert pod_status([INITIALIZING], [(RUNNING, True), (RUNNING, False)], initialized=False).status == "Init:1/2"
    # a sidecar that crashes once the pod runs: counted in RESTARTS, the pod not ready, and (as
    # kubectl's printPod has it) its reason stays in STATUS, a running container not replacing it
    st = pod_status([RUNNING], [(CRASHING, True)], initialized=True)
    assert columns(st) == ("Running", "1/2", "Init:CrashLoopBackOff", "2") and not st.ready
    # a Job-like pod: its container done, the sidecar stopped (by SIGTERM): Succeeded
    stopped = {"state": "terminated", "reason": "Error", "exitCode": 143, "restarts": 0}
    st = pod_status([COMPLETED], [(stopped, True)], restart_policy="Never", initialized=True)
    assert columns(st) == ("Succeeded", "0/2", "Completed", "0") and st.terminal


def test_restarts_say_how_long_ago_as_kubectl_does():
    now = datetime(2026, 11, 27, 10, 1, 5, tzinfo=timezone.utc).timestamp()
    assert restarts_column(pod_status([CRASHING]), now) == "2 (60s ago)"
    assert restarts_column(pod_status([RUNNING]), now) == "0"
    never_ran = {"state": "waiting", "reason": "RunContainerError", "restarts": 3}
    assert restarts_column(pod_status([never_ran]), now) == "3"


def test_probes_decide_ready_as_kubectl_counts_it():
    """A running container its readiness probe fails is not ready: READY 0/1, STATUS Running, and
    the pod not Ready (no endpoint); one not past its startup probe is neither started nor ready."""
    unready = {**RUNNING, "started": True, "ready": False}
    st = pod_status([unready])
    assert columns(st) == ("Running", "0/1", "Running", "0") and not st.ready
    st = pod_status([{**RUNNING, "started": True, "ready": True}, unready])
    assert columns(st) == ("Running", "1/2", "Running", "0") and not st.ready
    # a sidecar waiting for its startup probe: the next init container does not start yet
    starting = {**RUNNING, "started": False, "ready": False}
    st = pod_status([INITIALIZING], [(starting, True), (CREATING, False)], initialized=False)
    assert (st.status, st.initialized) == ("Init:0/2", False)
    # started and running, its readiness probe failing: the next one goes on, READY does not count it
    st = pod_status([RUNNING], [(unready, True)], initialized=True)
    assert columns(st) == ("Running", "1/2", "Running", "0") and not st.ready
