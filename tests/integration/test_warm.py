"""The lab's warm process (kubenet_lab.warm): a command it runs ends exactly as the command would
have ended running the verb itself (output, errors, exit code, the signal that stopped it), with
the command's standard input, working directory and environment; a command killed takes its
verb with it; `down` stops the process; code changed on disk is never run stale."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kubenet_lab.fabric import state
from kubenet_lab.kernel import procs, steps
from kubenet_lab.warm import client, server

from .conftest import MANIFESTS, Lab, kl, lab_processes, new_lab_name, torn_down, wait_for

BASE = MANIFESTS / "crash" / "base.yaml"
EXTRA = MANIFESTS / "crash" / "extra.yaml"
CLI = [sys.executable, "-m", "kubenet_lab.cli"]


def warm_pid(lab: Lab) -> int | None:
    return next((pid for name, pid in procs.running_module(server.__name__, "--lab", lambda comm: comm == server.COMM)
                 if name == lab.name), None)


def served(lab: Lab) -> list[str]:
    """The commands the warm process ran (its log: time, pid, CPU, answer, args), as 'ANSWER: ARGS'."""
    try:
        with open(os.path.join(state.state_dir(lab.name), server.LOG)) as f:
            return [line.split(" ", 3)[3].rstrip("\n") for line in f]
    except FileNotFoundError:
        return []


def cold(lab: Lab, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "--lab", lab.name, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, client.DISABLE_ENV: "0"}, **kw)


def warm(lab: Lab, *args: str, **kw) -> subprocess.CompletedProcess:
    before = len(served(lab))
    proc = subprocess.run([*CLI, "--lab", lab.name, *args], capture_output=True, text=True, timeout=120, **kw)
    assert served(lab)[before:] == [f"exit {proc.returncode}: --lab {lab.name} {' '.join(args)}"], \
        "the command was not run by the warm process"
    return proc


def same_age(text: str) -> str:
    """A table's AGE column (a second may pass between two commands) made one value."""
    return re.sub(r"(?<=   )\d+(?:m\d+)?s(?=   )", "AGE", text)


@pytest.fixture(scope="module")
def lab(host_before):
    lab = Lab(new_lab_name("wm"))
    with torn_down(lab.name):
        lab("up", str(BASE))  # run by the command itself; it starts the warm process
        wait_for(lambda: os.path.exists(client.socket_path(lab.name)) and warm_pid(lab), "the warm process")
        yield lab
    assert lab_processes(lab.name) == []


def test_output_errors_and_exit_codes_are_the_commands_own(lab):
    for args in (("get", "pods", "-o", "wide"), ("get", "svc", "web", "-o", "yaml"), ("describe", "svc", "web"),
                 ("get", "pods", "nosuch"),            # exit 1, kubectl's NotFound
                 ("scale", "deployment", "web"),       # exit 2, click's usage error naming the program
                 ("delete", "pod", "nosuch", "--dry-run"),
                 ("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].spec.nodeName}")):
        expected = cold(lab, *args)
        got = warm(lab, *args)
        assert (got.returncode, same_age(got.stdout), got.stderr) == \
            (expected.returncode, same_age(expected.stdout), expected.stderr), args
    assert warm(lab, "get", "pods", "nosuch").returncode == 1
    assert "Usage: python -m kubenet_lab.cli scale" in warm(lab, "scale", "deployment", "web").stderr


def test_standard_input_working_directory_and_environment_are_the_commands(lab, tmp_path):
    made = warm(lab, "apply", "-f", "-", input=EXTRA.read_text())
    assert (made.returncode, made.stdout) == (0, "pod/extra created\n"), made.stderr
    (tmp_path / "again.yaml").write_text(EXTRA.read_text())
    again = warm(lab, "apply", "-f", "again.yaml", cwd=tmp_path)  # relative to the command's directory
    assert (again.returncode, again.stdout) == (0, "pod/extra unchanged\n"), again.stderr
    # the lab named by the environment, as commands.main reads it
    before = len(served(lab))
    proc = subprocess.run([*CLI, "get", "pod", "extra", "-o", "name"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "KUBENET_LAB": lab.name})
    assert (proc.returncode, proc.stdout) == (0, "pod/extra\n"), proc.stderr
    assert served(lab)[before:] == ["exit 0: get pod extra -o name"]
    assert warm(lab, "delete", "pod", "extra").returncode == 0


def test_a_verb_stopped_dead_stops_the_command_by_the_same_signal(lab):
    env = {**os.environ, steps.STOP_AT_ENV: "locked"}
    before = len(served(lab))
    proc = subprocess.run([*CLI, "--lab", lab.name, "scale", "deployment", "web", "--replicas", "3"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert served(lab)[before:] == [f"signal 9: --lab {lab.name} scale deployment web --replicas 3"]
    assert warm(lab, "scale", "deployment", "web", "--replicas", "2").returncode == 0


def test_ctrl_c_reaches_the_verb_and_a_killed_command_takes_its_verb_along(lab):
    def watching() -> tuple[subprocess.Popen, int]:
        before = set(children())
        proc = subprocess.Popen([*CLI, "--lab", lab.name, "get", "pods", "-w"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().startswith("NAME")
            (child,) = set(children()) - before
        except BaseException:
            proc.kill()  # a watch left behind would outlive the test
            proc.wait()
            raise
        return proc, child

    def children() -> list[int]:
        pid = warm_pid(lab)
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]

    proc, child = watching()
    assert procs.comm(child) == server.CHILD_COMM
    proc.send_signal(signal.SIGINT)  # as Ctrl-C on a terminal
    proc.communicate(timeout=30)
    assert not procs.wait_gone({child}, 10)
    cold_proc = subprocess.Popen([*CLI, "--lab", lab.name, "get", "pods", "-w"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env={**os.environ, client.DISABLE_ENV: "0"})
    assert cold_proc.stdout.readline().startswith("NAME")
    cold_proc.send_signal(signal.SIGINT)
    cold_proc.communicate(timeout=30)
    assert proc.returncode == cold_proc.returncode

    proc, child = watching()
    proc.kill()
    proc.wait()
    assert not procs.wait_gone({child}, 10), "the verb outlived its command"


def test_code_changed_on_disk_is_not_run_by_a_stale_process(lab):
    first = warm_pid(lab)
    module = Path(server.__file__).with_name("client.py")
    st = os.stat(module)
    try:
        os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        before = len(served(lab))
        proc = subprocess.run([*CLI, "--lab", lab.name, "get", "svc", "web", "-o", "name"], capture_output=True,
                              text=True, timeout=60)
        assert (proc.returncode, proc.stdout) == (0, "service/web\n"), proc.stderr
        assert served(lab)[before:] == []  # the command ran the verb itself
        assert procs.wait_gone({first}, 10) == set()
        # and started a new one, which serves the next command
        wait_for(lambda: os.path.exists(client.socket_path(lab.name)) and warm_pid(lab), "a new warm process")
        assert warm_pid(lab) != first
        assert warm(lab, "get", "svc", "web", "-o", "name").stdout == "service/web\n"
    finally:
        os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_down_stops_the_warm_process_and_what_it_runs():
    lab = Lab(new_lab_name("wm"))
    with torn_down(lab.name):
        lab("up", str(BASE))
        wait_for(lambda: os.path.exists(client.socket_path(lab.name)) and warm_pid(lab), "the warm process")
        pid = warm_pid(lab)
        watch = subprocess.Popen([*CLI, "--lab", lab.name, "get", "pods", "-w"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        cold_watch = subprocess.Popen([*CLI, "--lab", lab.name, "get", "pods", "-w"], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env={**os.environ, client.DISABLE_ENV: "0"})
        try:
            assert watch.stdout.readline().startswith("NAME")
            assert cold_watch.stdout.readline().startswith("NAME")
            t0 = time.monotonic()
            kl(lab.name, "down")
            assert time.monotonic() - t0 < 20
            assert lab_processes(lab.name) == []
            assert not procs.alive(pid)
            watch.communicate(timeout=30)
            assert watch.returncode == -signal.SIGTERM  # the watch ended with its lab
            # run by the command itself, the watch sees the lab go (its pods deleted) and ends
            out, err = cold_watch.communicate(timeout=30)
            assert cold_watch.returncode == 1 and f"lab {lab.name!r} is not up" in err, err
        finally:
            for proc in (watch, cold_watch):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


def test_a_command_confined_more_than_the_warm_process_runs_its_verb_itself(lab):
    before = len(served(lab))
    proc = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all", *CLI, "--lab", lab.name, "get", "svc",
                           "web", "-o", "name"], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, "service/web\n"), proc.stderr
    assert served(lab)[before:] == []  # a fork of the warm process would have had every capability


def test_a_signal_the_command_ignores_stays_ignored(lab):
    proc = subprocess.Popen(["sh", "-c", f"trap '' HUP; exec {sys.executable} -m kubenet_lab.cli --lab {lab.name} "
                             "get pods -w"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("NAME")
    proc.send_signal(signal.SIGHUP)  # as nohup leaves it: ignored
    time.sleep(1)
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_a_command_gone_before_its_verb_started_leaves_nothing_running(lab):
    pid = warm_pid(lab)
    os.kill(pid, signal.SIGSTOP)  # busy, as while it decodes a big plan
    try:
        # no pipes: the descriptors it hands over stay in the stopped process's queue until it reads them
        gone = subprocess.Popen([*CLI, "--lab", lab.name, "label", "pod", "solo", "late=1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        gone.send_signal(signal.SIGINT)  # Ctrl-C while it waits
        assert gone.wait(timeout=30) == 130
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: not children_of(pid), "the warm process's children to go")
    labels = json.loads(lab("get", "pod", "solo", "-o", "json").stdout)["metadata"].get("labels", {})
    assert "late" not in labels


def children_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]
