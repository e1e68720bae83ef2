"""A lab's warm process: `python3 -m kubenet_lab.warm.server --lab LAB` (started by client.start).

It imports every verb's modules once, keeps the lab's last plan decoded (fabric.state keeps it
while its file is unchanged), and for each command forks a child that takes the command's
standard streams, working directory, environment and umask and runs commands.main as the
command would have; the process then tells the command how the child ended. One thread: the
children are forked from a loop over the listening socket, the connections and the children's
pidfds. A command that goes away (killed) takes its child with it (SIGKILL), as it would have had
it run the verb itself.

It exits, once its children have: when told to (SIGTERM: `down`), when its socket is no longer
the lab's (the lab's state removed), when the code on disk changed or a command comes from another
copy of kubenet_lab (it answers `stale`: the command runs the verb itself and starts a new one),
and after IDLE seconds without a command.
Its name (comm) is `kubenet-warm`, its children's `kubenet-lab`, so that `down` finds it alone.
"""
from __future__ import annotations

import argparse
import ctypes
import fcntl
import gc
import importlib
import io
import json
import os
import selectors
import signal
import socket
import sys
import time
import traceback

from . import client

COMM = "kubenet-warm"
LOG = "warm.log"
CHILD_COMM = "kubenet-lab"
IDLE = 1800.0  # seconds without a command
CHECK_EVERY = 1.0  # seconds between checks that the socket is still the lab's
# What the verbs import inside their functions (commands.py), imported here once.
MODULES = ("kubenet_lab.commands", "kubenet_lab.output", "kubenet_lab.progress", "kubenet_lab.app.build",
           "kubenet_lab.app.change", "kubenet_lab.app.imperative", "kubenet_lab.app.query",
           "kubenet_lab.app.describe", "kubenet_lab.app.check", "kubenet_lab.app.trace", "kubenet_lab.app.graph",
           "kubenet_lab.app.rollout", "kubenet_lab.manifests.load", "kubenet_lab.plan.serialize",
           "kubenet_lab.fabric.netlink", "kubenet_lab.fabric.netdump", "kubenet_lab.kernel.nsenter",
           "kubenet_lab.inspect.describe", "kubenet_lab.inspect.netview", "kubenet_lab.jsonpath", "yaml")


def _set_comm(name: str) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def _fingerprint() -> dict[str, int]:
    """The modification times of every module of the package, taken before this process imports
    them (a module changed meanwhile makes the process stale at once, never silently current)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                try:
                    out[path] = os.stat(path).st_mtime_ns
                except OSError:
                    out[path] = -1
    return out


def _stale(fingerprint: dict[str, int]) -> bool:
    for path, mtime in fingerprint.items():
        try:
            if os.stat(path).st_mtime_ns != mtime:
                return True
        except OSError:
            return True
    return False


CONFINEMENT = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
NAMESPACES = ("mnt", "net", "pid", "user", "uts", "ipc", "cgroup")


def _confinement(pid: int | str) -> tuple | None:
    """What a process may do, as the kernel says: its capabilities, no_new_privs, seccomp mode
    and namespaces (None when it cannot be read)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return (tuple(fields.get(k, "").strip() for k in CONFINEMENT),
                tuple(os.readlink(f"/proc/{pid}/ns/{ns}") for ns in NAMESPACES))
    except OSError:
        return None


def _same_confinement(peer: int) -> bool:
    """A command confined more than this process (fewer capabilities, no_new_privs, seccomp,
    other namespaces) runs its verb itself: a fork of this process would not be confined so."""
    mine = _confinement("self")
    return peer > 0 and mine is not None and _confinement(peer) == mine


def _gone(conn: socket.socket) -> bool:
    """Whether the command closed its end (it sends nothing after its request)."""
    timeout = conn.gettimeout()
    conn.setblocking(False)  # a socket with a timeout would wait for data before peeking
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        conn.settimeout(timeout)


def _streams(env: dict[str, str]) -> None:
    """sys.stdin/stdout/stderr over the command's descriptors 0-2, buffered as Python would."""
    unbuffered = bool(env.get("PYTHONUNBUFFERED"))

    def text(fd: int, mode: str, errors: str) -> io.TextIOWrapper:
        tty = os.isatty(fd)
        raw = io.FileIO(fd, mode, closefd=False)
        buffered = io.BufferedReader(raw) if mode == "rb" else io.BufferedWriter(raw)
        return io.TextIOWrapper(buffered, encoding="utf-8", errors=errors, line_buffering=tty and mode != "rb",
                                write_through=unbuffered and mode != "rb")

    sys.stdin = text(0, "rb", "strict")
    sys.stdout = text(1, "wb", "strict")
    sys.stderr = text(2, "wb", "backslashreplace")


def _run_child(request: dict, fds: list[int]) -> None:
    """In the forked child: become the command, run the verb, exit as it ends. Never returns."""
    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.closerange(3, os.sysconf("SC_OPEN_MAX") if os.sysconf("SC_OPEN_MAX") > 0 else 65536)
        _set_comm(CHILD_COMM)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        for sig in request.get("ignored", ()):  # as the command was started (nohup, a background job)
            signal.signal(int(sig), signal.SIG_IGN)
        os.environ.clear()
        os.environ.update(request["env"])
        os.umask(int(request["umask"]))
        os.chdir(request["cwd"])
        _streams(request["env"])
        sys.argv = list(request["argv"])
        from ..commands import main

        try:
            main.main(args=sys.argv[1:], prog_name=request["prog"])
            code = 0
        except SystemExit as e:
            if e.code is None:
                code = 0
            elif isinstance(e.code, int):
                code = e.code
            else:
                print(e.code, file=sys.stderr)
                code = 1
        except KeyboardInterrupt:
            _flush()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        except BaseException:
            traceback.print_exc()
            code = 1
        _flush()
    except BaseException:
        try:
            traceback.print_exc()
        except BaseException:
            pass
    os._exit(code)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


class Server:
    def __init__(self, lab: str, listener: socket.socket, path: str, lock: int, fingerprint: dict[str, int]):
        self.lab, self.listener, self.path, self.lock = lab, listener, path, lock
        self.ident = os.stat(path).st_ino
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ, ("listen", None))
        self.children: dict[int, tuple[socket.socket, int, list[str]]] = {}  # pid -> (connection, pidfd, argv)
        self.listening = True
        self.fingerprint = fingerprint
        self.last_command = time.monotonic()

    def stop_listening(self) -> None:
        if not self.listening:
            return
        self.listening = False
        self.selector.unregister(self.listener)
        try:
            if os.stat(self.path).st_ino == self.ident:
                os.unlink(self.path)
        except OSError:
            pass
        self.listener.close()
        os.close(self.lock)  # a new one may start while this one waits for its children

    def still_the_labs(self) -> bool:
        try:
            return os.stat(self.path).st_ino == self.ident
        except OSError:
            return False

    def accept(self) -> None:
        conn, _ = self.listener.accept()
        self.last_command = time.monotonic()
        fds: list[int] = []
        try:
            conn.settimeout(5)
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
            uid = int.from_bytes(creds[4:8], sys.byteorder)
            data = b""
            while not data.endswith(b"\n"):
                chunk, got, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
                fds += got
                if not chunk:
                    break
                data += chunk
            if uid != 0 or len(fds) != 3 or not data.endswith(b"\n"):
                raise ValueError("not a command")
            request = json.loads(data)
            if request.get("package") != client.package_root() or _stale(self.fingerprint):
                conn.sendall(b"stale\n")
                self.stop_listening()
                raise ValueError("stale")
            peer = int.from_bytes(creds[:4], sys.byteorder)
            if request.get("python") != sys.executable or not _same_confinement(peer):
                conn.sendall(b"foreign\n")  # the command runs the verb itself, as what it is
                raise ValueError("foreign")
            if _gone(conn):
                raise ValueError("the command went while it waited")  # its verb never starts
            # What this process holds (modules, decoded plans) is frozen for the child's garbage
            # collector: its full collections would walk all of it, copying each page they touch.
            gc.freeze()
            pid = os.fork()
            if pid == 0:
                _run_child(request, fds)
            gc.unfreeze()
            pidfd = os.pidfd_open(pid)
            # registered before the command hears of it: if it is gone already, so is its verb
            self.children[pid] = (conn, pidfd, [str(a) for a in request["argv"][1:]])
            self.selector.register(pidfd, selectors.EVENT_READ, ("child", pid))
            try:
                conn.sendall(f"pid {pid}\n".encode())
            except OSError:
                os.kill(pid, signal.SIGKILL)
                return
            conn.setblocking(False)
            self.selector.register(conn, selectors.EVENT_READ, ("client", pid))
        except (OSError, ValueError, KeyError, TypeError):
            conn.close()
        finally:
            for fd in fds:
                os.close(fd)

    def ended(self, pid: int) -> None:
        conn, pidfd, args = self.children.pop(pid)
        self.selector.unregister(pidfd)
        try:
            self.selector.unregister(conn)
        except KeyError:  # the command went first (client_gone)
            pass
        os.close(pidfd)
        _, status, usage = os.wait4(pid, 0)
        answer = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                  else f"exit {os.waitstatus_to_exitcode(status)}")
        try:
            conn.setblocking(True)
            conn.sendall(answer.encode() + b"\n")
        except OSError:
            pass
        conn.close()
        self.last_command = time.monotonic()
        cpu = 1000 * (usage.ru_utime + usage.ru_stime)  # the child's and the processes it waited for
        self.log(f"{pid} {cpu:.1f}ms {answer}: {' '.join(args)}")
        self.keep_plan()

    def log(self, line: str) -> None:
        """One line per command run (warm.log in the lab's state): what ran here, the CPU time it
        took (bench/bench_cli.py adds it to the command's), and how it ended."""
        try:
            with open(os.path.join(os.path.dirname(self.path), LOG), "a") as f:
                f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")
        except OSError:
            pass

    def client_gone(self, pid: int) -> None:
        """The command's connection closed before its child ended: the command was killed, and
        its child goes as the command's own process would have (SIGKILL)."""
        conn = self.children[pid][0]
        try:
            if conn.recv(1, socket.MSG_PEEK):
                return  # not a close: nothing is sent after the request
        except BlockingIOError:
            return
        except OSError:
            pass
        self.selector.unregister(conn)
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass

    def keep_plan(self) -> None:
        """The lab's plan decoded now, while no command waits, for the children to inherit."""
        from ..fabric import state
        from ..errors import LabError

        try:
            state.load_plan(self.lab)
        except (LabError, OSError):
            pass

    def serve(self) -> None:
        """Until told to stop (SIGTERM, SIGINT: they wake the loop through `wakeup`) and the
        children have ended."""
        wakeup, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        self.selector.register(wakeup, selectors.EVENT_READ, ("signal", None))
        stopping = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: stopping.append(signum))
        while True:
            if stopping:
                self.stop_listening()
                for pid in self.children:  # as the lab goes, so do the commands still running in it
                    try:
                        os.kill(pid, signal.SIGTERM)
                    except OSError:
                        pass
                stopping.clear()
            if not self.listening and not self.children:
                return
            for key, _ in self.selector.select(timeout=CHECK_EVERY):
                kind, pid = key.data
                if kind == "signal":
                    try:
                        os.read(wakeup, 512)
                    except BlockingIOError:
                        pass
                elif kind == "listen":
                    self.accept()
                elif kind == "child":
                    self.ended(pid)
                elif kind == "client" and pid in self.children:
                    self.client_gone(pid)
            if self.listening and (not self.still_the_labs()
                                   or (not self.children and time.monotonic() - self.last_command > IDLE)):
                self.stop_listening()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubenet-lab-warm")
    parser.add_argument("--lab", required=True)
    lab = parser.parse_args(argv).lab
    from ..fabric import state

    _set_comm(COMM)
    os.umask(0o077)
    directory = state.state_dir(lab)
    try:
        lock = os.open(os.path.join(directory, client.LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # the lab is gone, or another one serves it
    path = client.socket_path(lab)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    # Every file of this process is in the lab's state now: the command that started it may
    # return (client.start waits for this line), and commands queue until the imports are done.
    try:
        os.write(1, b"listening\n")
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    except OSError:
        pass
    fingerprint = _fingerprint()  # before the imports: what they load is at least this new
    for name in MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    state.keep_plans()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    server = Server(lab, listener, path, lock, fingerprint)
    server.keep_plan()
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
