"""`port-forward` for real: the command listens on this machine's loopback, the test fetches a
page there, and the answer comes from inside the lab (kubelet connects to localhost inside the
pod's network namespace). Nothing else on the host changes."""
from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from .conftest import MANIFESTS, Lab, host_snapshot, new_lab_name, torn_down, wait_for

FORWARDING = re.compile(r"^Forwarding from (127\.0\.0\.1|\[::1\]):(\d+) -> (\d+)$", re.M)


@pytest.fixture(scope="module")
def lab(host_before):
    lab = Lab(new_lab_name("pf"))
    with torn_down(lab.name):
        lab("up", str(MANIFESTS / "port-forward.yaml"))
        wait_for(lambda: lab.pods()["loopback-only"]["status"]["phase"] == "Running", "loopback-only running")
        yield lab


class Forwarder:
    """`kubenet-lab port-forward ...` running as a user runs it; its output read as it comes."""

    def __init__(self, lab: str, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "kubenet_lab.cli", "--lab", lab, "port-forward", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out, self.err = b"", b""
        self.sel = selectors.DefaultSelector()
        for f in (self.proc.stdout, self.proc.stderr):
            os.set_blocking(f.fileno(), False)
            self.sel.register(f, selectors.EVENT_READ)

    def _read(self, timeout: float) -> None:
        for key, _ in self.sel.select(timeout):
            data = os.read(key.fileobj.fileno(), 65536)
            if key.fileobj is self.proc.stdout:
                self.out += data
            else:
                self.err += data

    def wait_output(self, pred, what: str, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := pred():
                return value
            if self.proc.poll() is not None:
                self._read(0)
                if value := pred():
                    return value
                raise AssertionError(f"port-forward exited {self.proc.returncode} before {what}\n"
                                     f"stdout: {self.out.decode()}\nstderr: {self.err.decode()}")
            self._read(0.1)
        raise AssertionError(f"timed out waiting for {what}\nstdout: {self.out.decode()}\nstderr: {self.err.decode()}")

    def forwarding(self) -> dict[str, tuple[int, int]]:
        """{"127.0.0.1": (local, remote), "[::1]": ...} once the first line is out."""
        found = lambda: {h: (int(l), int(r)) for h, l, r in FORWARDING.findall(self.out.decode())}  # noqa: E731
        self.wait_output(found, "Forwarding from ...")
        time.sleep(0.1)  # the [::1] line follows at once
        self._read(0)
        return found()

    def stop(self, sig=signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=10)
        self._read(0)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def fetch(host: str, port: int, path: str = "/") -> str:
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=10) as r:
        return r.read().decode()


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_service_is_forwarded_to_one_of_its_pods_on_its_targetPort(lab):
    before = host_snapshot()
    web = {n for n in lab.pods() if n.startswith("web-")}
    fw = Forwarder(lab.name, "svc/web", "0:80")
    try:
        lines = fw.forwarding()
        port, remote = lines["127.0.0.1"]
        assert remote == 8080  # the Service's port 80 -> targetPort `http`, the pod's 8080, as kubectl prints it
        answers = {fetch("127.0.0.1", port, "/hostname") for _ in range(4)}
        assert len(answers) == 1 and answers <= web  # one pod, not balanced: kubectl forwards to one pod
        if "[::1]" in lines:  # kubectl listens on both loopbacks for localhost, on the same port
            assert lines["[::1]"] == (port, 8080)
            assert fetch("[::1]", port, "/hostname") in answers
        fw.wait_output(lambda: fw.out.decode().count(f"Handling connection for {port}\n") >= 4,
                       "a Handling connection line per connection")
        assert host_snapshot() == before  # listening sockets only: no link, address, route, rule, sysctl
        assert fw.stop(signal.SIGINT) == 0
        assert not listening(port)
    finally:
        fw.kill()


def test_a_pod_is_forwarded_to_by_name_and_by_named_port_until_SIGTERM(lab):
    fw = Forwarder(lab.name, "pod/solo", ":web", "0:9")
    try:
        def on_loopback4():
            return {int(r): int(l) for h, l, r in FORWARDING.findall(fw.out.decode()) if h == "127.0.0.1"}
        ports = fw.wait_output(lambda: len(on_loopback4()) == 2 and on_loopback4(), "both ports")
        assert set(ports) == {80, 9}  # `web` is the containerPort of that name
        assert fetch("127.0.0.1", ports[80]).strip() == "solo"
        # Nothing listens on 9 in the pod: that connection is cut and said so; the session goes on.
        with socket.create_connection(("127.0.0.1", ports[9]), timeout=10) as s:
            assert s.recv(1) == b""
        fw.wait_output(lambda: b"connect: connection refused" in fw.err, "the forwarding error")
        assert f"an error occurred forwarding {ports[9]} -> 9".encode() in fw.err
        assert fetch("127.0.0.1", ports[80]).strip() == "solo"
        assert fw.stop(signal.SIGTERM) == 0
        assert not listening(ports[80]) and not listening(ports[9])
    finally:
        fw.kill()


def test_the_connection_is_made_to_localhost_inside_the_pod(lab):
    # The server listens on the pod's 127.0.0.1 only: the pod's IP would not reach it.
    fw = Forwarder(lab.name, "loopback-only", "0:8000")
    try:
        port, _ = fw.forwarding()["127.0.0.1"]
        assert "Directory listing" in fetch("127.0.0.1", port)
        assert fw.stop() == 0
    finally:
        fw.kill()


def test_an_address_other_than_loopback_is_refused(lab):
    for address in ("0.0.0.0", "localhost,10.0.0.1"):
        proc = lab("port-forward", "--address", address, "svc/web", "0:80", check=False, timeout=30)
        assert proc.returncode == 2
        assert "loopback addresses only" in proc.stderr and "Forwarding" not in proc.stdout


def test_what_cannot_be_forwarded_says_so_as_kubectl_does(lab):
    cases = [(("pod/nowhere", "80"),
              "error: unable to forward port because pod is not running. Current status=Pending"),
             (("svc/web", "81"), "error: Service web does not have a service port 81"),
             (("svc/web", "8081"), "error: UDP protocol is not supported for 8081"),
             (("svc/nope", "80"), 'Error from server (NotFound): services "nope" not found')]
    for args, message in cases:
        proc = lab("port-forward", *args, check=False, timeout=30)
        assert (proc.returncode, proc.stderr.strip()) == (1, message)


def test_a_session_ends_when_its_pod_is_gone(host_before):
    lab = Lab(new_lab_name("pf"))
    with torn_down(lab.name):
        lab("up", str(MANIFESTS / "port-forward.yaml"))
        fw = Forwarder(lab.name, "pod/solo", "0:80")
        try:
            port, _ = fw.forwarding()["127.0.0.1"]
            assert fetch("127.0.0.1", port).strip() == "solo"
            lab("down")
            assert fw.proc.wait(timeout=10) == 1
            fw._read(0)
            assert fw.err.decode().strip().endswith("error: lost connection to pod")
            assert not listening(port)
        finally:
            fw.kill()
