"""Pod phase and container statuses as kubelet reports them (restartPolicy Always; the other
policies and init containers: test_podstatus)."""
from __future__ import annotations

from kubenet_lab.output import _container_status, pod_phase
from kubenet_lab.model.objects import PlannedContainer, RunExec

RUNNING = {"state": "running", "restarts": 0, "startedAt": "2026-11-27T10:00:00Z"}
CREATING = {"state": "waiting", "reason": "ContainerCreating", "restarts": 0}
CRASHING = {"state": "waiting", "reason": "CrashLoopBackOff", "restarts": 2, "exitCode": 3,
            "message": "back-off restarting: the container exited with code 3"}
NEVER_STARTED = {"state": "waiting", "reason": "RunContainerError", "restarts": 1,
                 "message": 'exec: "/no/such": no such file or directory'}


def test_a_pod_is_pending_only_until_its_containers_first_start():
    assert pod_phase([RUNNING, CREATING]) == ("Pending", "ContainerCreating")
    assert pod_phase([RUNNING, CRASHING]) == ("Running", "CrashLoopBackOff")
    assert pod_phase([NEVER_STARTED]) == ("Running", "RunContainerError")
    assert pod_phase([RUNNING, RUNNING]) == ("Running", "Running")
    # with restartPolicy Always a container that ended is about to restart: the pod stays Running
    assert pod_phase([{"state": "terminated", "exitCode": 0}]) == ("Running", "Completed")
    assert pod_phase([{"state": "terminated", "exitCode": 0}], restart_policy="Never") == ("Succeeded", "Completed")


def test_a_restarting_container_shows_why_it_waits_and_how_it_last_ended():
    c = PlannedContainer(name="main", image="busybox", run=RunExec(argv=("false",)))
    st = _container_status(c, CRASHING)
    assert st["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": CRASHING["message"]}}
    assert st["lastState"] == {"terminated": {"exitCode": 3, "reason": "Error"}}
    assert st["restartCount"] == 2 and st["ready"] is False
    assert "lastState" not in _container_status(c, RUNNING)
