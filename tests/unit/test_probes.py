"""Probes: how manifests become Probe objects (the API server's defaults and refusals), kubelet's
prober worker decisions (plan.probes, on a fake clock), and the probe runners' results and
messages (runtime.probes) against servers on loopback."""
from __future__ import annotations

import asyncio
import socket
import textwrap

import pytest

from kubenet_lab.kernel.confine import Launch
from kubenet_lab.errors import InputError
from kubenet_lab.manifests.load import load_model
from kubenet_lab.model.objects import Probe
from kubenet_lab.plan import probes
from kubenet_lab.plan.probes import (ERROR, FAILURE, LIVENESS, READINESS, STARTUP, SUCCESS, ContainerProbes,
                                     killing_message, runnable, unhealthy_message)
from kubenet_lab.runtime import probes as run


def pod_yaml(container: str) -> str:
    return textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers:
        """) + textwrap.indent(textwrap.dedent(container), "  ")


def load(tmp_path, container: str):
    path = tmp_path / "pod.yaml"
    path.write_text(pod_yaml(container))
    return load_model([str(path)])


def errors(tmp_path, container: str) -> list[str]:
    with pytest.raises(InputError) as e:
        load(tmp_path, container)
    return [p.split(": ", 1)[1] for p in e.value.problems]


# --- manifests -> Probe ----------------------------------------------------------------------


def test_probes_get_the_api_servers_defaults_and_named_ports_resolve(tmp_path):
    model = load(tmp_path, """\
        - name: c
          image: nginx
          ports: [{name: web, containerPort: 8080}]
          readinessProbe:
            httpGet: {path: /ready, port: web, httpHeaders: [{name: X-Probe, value: "1"}]}
            periodSeconds: 0
          livenessProbe:
            tcpSocket: {port: 8080}
            initialDelaySeconds: 5
            periodSeconds: 2
            timeoutSeconds: 3
            failureThreshold: 4
            terminationGracePeriodSeconds: 7
          startupProbe:
            httpGet: {port: metrics}
        """)
    c = model.pods[0].spec.containers[0]
    assert c.readiness_probe == Probe("httpGet", port=8080, path="/ready", headers=(("X-Probe", "1"),), period=10)
    assert c.liveness_probe == Probe("tcpSocket", port=8080, initial_delay=5, period=2, timeout=3,
                                     failure_threshold=4, grace=7)
    # a name the container does not declare stays a name: kubelet reports it when it probes
    assert c.startup_probe == Probe("httpGet", port="metrics")


def test_a_probe_needs_exactly_one_handler(tmp_path):
    assert errors(tmp_path, """\
        - name: c
          image: nginx
          readinessProbe: {periodSeconds: 1}
        """) == ["spec.containers[0].readinessProbe: Required value: must specify a handler type "
                 "(one of exec, httpGet, tcpSocket, grpc)"]
    assert errors(tmp_path, """\
        - name: c
          image: nginx
          livenessProbe: {exec: {command: ["true"]}, tcpSocket: {port: 80}}
        """) == ["spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type"]


def test_probe_timing_is_checked_as_the_api_server_checks_it(tmp_path):
    assert errors(tmp_path, """\
        - name: c
          image: nginx
          livenessProbe: {tcpSocket: {port: 80}, successThreshold: 2, periodSeconds: -1}
          readinessProbe: {tcpSocket: {port: 80}, terminationGracePeriodSeconds: 5}
          startupProbe: {tcpSocket: {port: 80}, successThreshold: 3}
        """) == [
        "spec.containers[0].livenessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
        "spec.containers[0].readinessProbe.terminationGracePeriodSeconds: Invalid value: 5: must not be set "
        "for readinessProbes",
        "spec.containers[0].startupProbe.successThreshold: Invalid value: 3: must be 1",
    ]


def test_a_grpc_probe_is_warned_about(tmp_path):
    model = load(tmp_path, """\
        - name: c
          image: nginx
          readinessProbe: {grpc: {port: 9090}}
        """)
    assert any("readinessProbe.grpc: not run" in w for w in model.warnings)
    assert runnable(model.pods[0].spec.containers[0].readiness_probe, True) is None


def test_exec_probes_run_only_where_the_lab_runs_a_real_process():
    p = Probe("exec", command=("true",))
    assert runnable(p, real_process=True) is p
    assert runnable(p, real_process=False) is None
    assert runnable(Probe("tcpSocket", port=80), real_process=False) is not None


# --- the prober worker's decisions -----------------------------------------------------------


def test_readiness_starts_failed_and_follows_thresholds():
    cp = ContainerProbes(readiness=Probe("exec", period=10, success_threshold=2, failure_threshold=3))
    cp.start(100.0)
    assert (cp.started, cp.ready) == (True, False)  # not ready before its first success
    assert cp.due(100.0) == [READINESS]
    assert cp.due(105.0) == [] and cp.next_time() == 110.0
    assert cp.record(READINESS, SUCCESS) == probes.Outcome()  # one success of two needed
    assert cp.due(110.0) == [READINESS]
    assert cp.record(READINESS, SUCCESS).changed and cp.ready
    for _ in range(2):
        assert cp.record(READINESS, FAILURE) == probes.Outcome() and cp.ready
    assert cp.record(READINESS, FAILURE) == probes.Outcome(changed=True) and not cp.ready
    # a failure run broken by a success starts again
    assert cp.record(READINESS, SUCCESS) == probes.Outcome()
    assert cp.record(READINESS, SUCCESS).changed and cp.ready


def test_initial_delay_and_an_errored_probe_counts_for_nothing():
    cp = ContainerProbes(readiness=Probe("httpGet", port="web", initial_delay=5, period=1))
    cp.start(0.0)
    assert cp.due(4.9) == [] and cp.next_time() == 5.0
    assert cp.due(5.0) == [READINESS]
    assert cp.record(READINESS, ERROR) == probes.Outcome() and not cp.ready


def test_liveness_failure_kills_once_then_holds_until_the_container_restarts():
    cp = ContainerProbes(liveness=Probe("exec", period=1, failure_threshold=2))
    cp.start(0.0)
    assert cp.ready  # liveness starts passing; no readiness probe: ready once started
    assert cp.record(LIVENESS, FAILURE) == probes.Outcome()
    assert cp.record(LIVENESS, FAILURE) == probes.Outcome(kill=LIVENESS)
    assert cp.due(10.0) == [] and cp.next_time() is None  # on hold
    cp.stop()
    assert not cp.ready
    cp.start(20.0)  # the restarted container: afresh
    assert cp.due(20.0) == [LIVENESS]


def test_startup_gates_the_other_probes_then_stops():
    cp = ContainerProbes(readiness=Probe("exec", period=1), liveness=Probe("exec", period=1),
                         startup=Probe("exec", period=1, failure_threshold=3))
    cp.start(0.0)
    assert (cp.started, cp.ready) == (False, False)
    assert cp.due(0.0) == [STARTUP]
    assert cp.record(STARTUP, FAILURE) == probes.Outcome()
    assert cp.due(1.0) == [STARTUP]
    assert cp.record(STARTUP, SUCCESS) == probes.Outcome(changed=True)
    assert (cp.started, cp.ready) == (True, False)
    assert sorted(cp.due(2.0)) == [LIVENESS, READINESS]  # startup no more
    assert cp.record(READINESS, SUCCESS).changed and cp.ready


def test_startup_failure_kills():
    cp = ContainerProbes(startup=Probe("exec", period=1, failure_threshold=2))
    cp.start(0.0)
    cp.record(STARTUP, FAILURE)
    assert cp.record(STARTUP, FAILURE) == probes.Outcome(kill=STARTUP)


def test_a_late_tick_is_not_made_up():
    cp = ContainerProbes(readiness=Probe("exec", period=1))
    cp.start(0.0)
    assert cp.due(0.0) == [READINESS]
    assert cp.due(7.5) == [READINESS] and cp.next_time() == 8.5


def test_kubelet_words():
    assert unhealthy_message(READINESS, FAILURE, "HTTP probe failed with statuscode: 500") == \
        "Readiness probe failed: HTTP probe failed with statuscode: 500"
    assert unhealthy_message(LIVENESS, ERROR, 'strconv.Atoi: parsing "web": invalid syntax') == \
        'Liveness probe errored and resulted in unknown state: strconv.Atoi: parsing "web": invalid syntax'
    assert killing_message("c", LIVENESS, True) == "Container c failed liveness probe, will be restarted"
    assert killing_message("c", STARTUP, False) == "Container c failed startup probe"


# --- the runners, on loopback ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_port_name_not_declared_errors_as_kubelet_says():
    assert run.probe_port("web") == (None, 'strconv.Atoi: parsing "web": invalid syntax')
    assert run.probe_port("8080") == (8080, "")
    assert run.probe_port(0) == (None, "invalid port number: 0")


def test_tcp_and_http_probes_answer_as_kubelets_probers():
    seen: list[bytes] = []

    async def main():
        async def handle(reader, writer):
            head = await reader.readuntil(b"\r\n\r\n")
            seen.append(head)
            code = 500 if b"/bad" in head else 301 if b"/moved" in head else 200
            writer.write(f"HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
            writer.close()
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        closed = free_port()
        out = {
            "tcp": await run.tcp_socket(socket.socket, "127.0.0.1", port, 1),
            "tcp-refused": await run.tcp_socket(socket.socket, "127.0.0.1", closed, 1),
            "ok": await run.http_get(socket.socket, "HTTP", "127.0.0.1", port, "healthz",
                                     (("X-Probe", "yes"),), 1),
            "moved": await run.http_get(socket.socket, "HTTP", "127.0.0.1", port, "/moved", (), 1),
            "bad": await run.http_get(socket.socket, "HTTP", "127.0.0.1", port, "/bad", (), 1),
            "refused": await run.http_get(socket.socket, "HTTP", "127.0.0.1", closed, "/healthz", (), 1),
        }
        server.close()
        return out, closed
    out, closed = asyncio.run(main())
    assert out["tcp"] == (SUCCESS, "")
    assert out["tcp-refused"] == (FAILURE, f"dial tcp 127.0.0.1:{closed}: connect: connection refused")
    assert out["ok"] == (SUCCESS, "") and out["moved"] == (SUCCESS, "")
    assert out["bad"] == (FAILURE, "HTTP probe failed with statuscode: 500")
    assert out["refused"] == (FAILURE, f'Get "http://127.0.0.1:{closed}/healthz": dial tcp 127.0.0.1:{closed}: '
                                       "connect: connection refused")
    head = seen[0].decode()
    assert head.startswith("GET /healthz HTTP/1.1\r\n")
    assert "User-Agent: kube-probe/1.31\r\n" in head and "X-Probe: yes\r\n" in head


def test_http_probe_times_out_as_gos_client():
    async def main():
        async def silent(reader, writer):
            await asyncio.sleep(5)
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return port, await run.http_get(socket.socket, "HTTP", "127.0.0.1", port, "/", (), 0.2)
        finally:
            server.close()
    port, result = asyncio.run(main())
    assert result == (FAILURE, f'Get "http://127.0.0.1:{port}/": context deadline exceeded '
                               "(Client.Timeout exceeded while awaiting headers)")


def UNCONFINED(argv, environ):
    """A probe's process as this test's own child (the confinement is tested as root)."""
    return Launch(argv, None, environ)


def test_exec_probe_exit_code_and_output():
    env = {"PATH": "/usr/bin:/bin"}
    ok = asyncio.run(run.exec_command(("sh", "-c", "echo fine"), env, UNCONFINED, 5))
    bad = asyncio.run(run.exec_command(("sh", "-c", "echo nope >&2; exit 3"), env, UNCONFINED, 5))
    missing = asyncio.run(run.exec_command(("no-such-program-here",), env, UNCONFINED, 5))
    slow = asyncio.run(run.exec_command(("sleep", "5"), env, UNCONFINED, 0.2))
    assert ok == (SUCCESS, "fine\n")
    assert bad == (FAILURE, "nope\n")
    assert missing == (FAILURE, 'OCI runtime exec failed: exec failed: unable to start container process: '
                                'exec: "no-such-program-here": executable file not found in $PATH: unknown')
    assert slow == (FAILURE, 'command "sleep 5" timed out')


def test_pods_made_anew_with_a_readiness_or_startup_probe_start_not_ready():
    from ipaddress import IPv4Address
    from types import SimpleNamespace

    from kubenet_lab.model.objects import PlannedContainer, PlannedPod, RunExec, RunHttp

    def pod(name, uid, **probes_):
        c = PlannedContainer("c", "img", RunExec(("sleep", "1")) if probes_.pop("real", True) else RunHttp((80,)),
                             **probes_)
        return PlannedPod("default", name, "node1", IPv4Address("10.244.0.2"), f"x.{name}", None, containers=(c,),
                          uid=uid)
    exec_probe = Probe("exec", command=("true",))
    plan = SimpleNamespace(pods=(
        pod("plain", "1"), pod("ready", "2", readiness_probe=exec_probe), pod("kept", "3", startup_probe=exec_probe),
        pod("live", "4", liveness_probe=exec_probe), pod("emulated", "5", real=False, readiness_probe=exec_probe),
        pod("http", "6", real=False, readiness_probe=Probe("httpGet", port=80))))
    previous = SimpleNamespace(pods=(pod("kept", "3", startup_probe=exec_probe),))
    assert probes.not_ready_at_start(plan, previous) == {"default/ready", "default/http"}
    assert probes.not_ready_at_start(plan, None) == {"default/ready", "default/kept", "default/http"}
