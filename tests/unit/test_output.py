"""Pod phase and container statuses as kubelet reports them (restartPolicy Always; the other
policies and init containers: test_podstatus)."""
from __future__ import annotations

from kubenet_lab import output
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


def test_get_watch_prints_new_changed_and_gone_rows_not_the_passing_of_time():
    headers = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    before = {"default/a": ["a", "1/1", "Running", "0", "5s"],
              "default/b": ["b", "0/1", "ContainerCreating", "0", "1s"],
              "default/c": ["c", "1/1", "Running", "1 (3s ago)", "9s"]}
    after = {"default/a": ["a", "1/1", "Running", "0", "6s"],                 # older only
             "default/b": ["b", "1/1", "Running", "0", "2s"],                 # changed
             "default/c": ["c", "1/1", "Running", "1 (4s ago)", "10s"],       # older only
             "default/d": ["d", "0/1", "Pending", "0", "0s"]}                 # new
    assert output.watch_changes(headers, before, after) == [after["default/b"], after["default/d"]]
    assert output.watch_changes(headers, after, {"default/a": after["default/a"]}) == [
        ["b", "1/1", "Terminating", "0", "2s"], ["c", "1/1", "Terminating", "1 (4s ago)", "10s"],
        ["d", "0/1", "Terminating", "0", "0s"]]
    assert output.watch_changes(headers, after, after) == []
    widths = [4, 5, 6, 8, 3]
    assert output.aligned(["web-1", "1/1", "Running", "0", "1s"], widths) == "web-1   1/1     Running   0          1s"
    assert widths == [5, 5, 7, 8, 3]
