"""The command's side of the warm process (server.py): hand it the command, wait, exit as it did.

One connection per command, over the lab's `warm.sock` (root only). The command sends one line
of JSON (argv, the program name click would print, working directory, environment, umask) with
its standard input, output and error attached (SCM_RIGHTS). The process answers `pid N` once a
child runs the verb, then `exit CODE` or `signal NUMBER` when it has ended; `stale` instead of
`pid` means it will not serve (its code changed on disk, or it runs another copy of kubenet_lab
than the command's), and the command runs the verb itself.
Signals the command receives (Ctrl-C) go on to the child. Only the standard library is
imported here: this runs before anything else of the command.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sys

SOCK = "warm.sock"
LOCK = "warm.lock"
SERVER_MODULE = "kubenet_lab.warm.server"
# Set to 0 to run every verb in the command's own process (and start no warm process).
DISABLE_ENV = "KUBENET_LAB_WARM"
# The verbs a warm process runs: those that neither take over the terminal (exec, run -it,
# port-forward) nor remove the lab, and with it the warm process (down).
VERBS = frozenset(("up", "apply", "delete", "scale", "create", "expose", "label", "annotate", "set", "get", "logs",
                   "rollout", "check", "trace", "describe", "graph"))
# Global options taking a value (commands.main), and the default lab.
VALUED_OPTIONS = ("--lab", "--lock-timeout")
DEFAULT_LAB = "kubenet"
START_WAIT = 5.0  # seconds a command waits for the warm process it started to listen
ANSWER_WAIT = 60.0  # seconds a command waits for its warm process to start the verb
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def lab_and_verb(args: list[str]) -> tuple[str, str | None]:
    """The lab and the verb of a command line (without argv[0]), as commands.main reads them;
    verb None when the line starts with something else (an unknown option, --help, --version)."""
    lab = os.environ.get("KUBENET_LAB") or DEFAULT_LAB
    i = 0
    while i < len(args):
        a = args[i]
        if a in VALUED_OPTIONS:
            if i + 1 >= len(args):
                return lab, None
            if a == "--lab":
                lab = args[i + 1]
            i += 2
        elif a.startswith("--lab="):
            lab, i = a.split("=", 1)[1], i + 1
        elif a.startswith("--lock-timeout="):
            i += 1
        elif a.startswith("-"):
            return lab, None
        else:
            return lab, a
    return lab, None


def program_name() -> str:
    """What click calls the program in its messages: `python -m kubenet_lab.cli` or the script's name."""
    path = sys.argv[0]
    package = getattr(sys.modules.get("__main__"), "__package__", None)
    if not package:
        return os.path.basename(path)
    name = os.path.splitext(os.path.basename(path))[0]
    return f"python -m {package}" + ("" if name == "__main__" else f".{name}")


def package_root() -> str:
    """The directory this kubenet_lab is imported from (the one holding the package): a warm
    process runs the same code."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def socket_path(lab: str) -> str:
    from ..fabric.statedir import state_dir  # the standard library only, unlike fabric.state

    return os.path.join(state_dir(lab), SOCK)


def wanted(argv: list[str]) -> str | None:
    """The lab whose warm process is to run this command line, or None."""
    if os.environ.get(DISABLE_ENV) == "0" or os.geteuid() != 0:
        return None
    lab, verb = lab_and_verb(argv[1:])
    if verb not in VERBS or "-h" in argv or "--help" in argv or "/" in lab or lab in ("", ".", ".."):
        return None
    return lab


def run(argv: list[str]) -> int | None:
    """Run the command in its lab's warm process and return its exit code (having died by the
    child's signal when it died by one); None when there is no warm process to run it."""
    lab = wanted(argv)
    if lab is None:
        return None
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
    except OSError:  # a closed standard stream: nothing to hand on
        return None
    # Signals this command was started with ignored (nohup, a script's background job) stay
    # ignored in the verb, as they would in the command's own process.
    ignored = [int(sig) for sig in FORWARDED if signal.getsignal(sig) == signal.SIG_IGN]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(ANSWER_WAIT)
        sock.connect(socket_path(lab))
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        if int.from_bytes(creds[4:8], sys.byteorder) != 0:
            sock.close()
            return None  # not the lab's: a warm process runs as root
        umask = os.umask(0o022)
        os.umask(umask)
        request = {"argv": argv, "prog": program_name(), "cwd": os.getcwd(), "env": dict(os.environ), "umask": umask,
                   "package": package_root(), "python": sys.executable, "ignored": ignored}
        socket.send_fds(sock, [json.dumps(request).encode() + b"\n"], [0, 1, 2])
        reader = sock.makefile("rb")
        first = reader.readline().decode().split()
    except socket.timeout:
        sock.close()
        print(f"kubenet-lab: lab {lab}'s warm process did not answer within {ANSWER_WAIT:g} s; "
              f"{DISABLE_ENV}=0 runs the command without it", file=sys.stderr)
        return 1
    except OSError:
        sock.close()
        return None
    except KeyboardInterrupt:  # before the verb started: the warm process, seeing us gone, stops it
        sock.close()
        return 130
    if len(first) != 2 or first[0] != "pid":
        sock.close()
        return None  # stale, or going away: the command runs the verb itself
    sock.settimeout(None)
    child = int(first[1])

    def forward(signum, _frame):
        try:
            os.kill(child, signum)
        except OSError:
            pass

    for sig in FORWARDED:
        if int(sig) not in ignored:
            signal.signal(sig, forward)
    while True:
        try:
            last = reader.readline().decode().split()
            break
        except InterruptedError:
            continue
    sock.close()
    if len(last) == 2 and last[0] == "exit":
        return int(last[1])
    if len(last) == 2 and last[0] == "signal":
        sig = int(last[1])
        sys.stdout.flush()
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        return 128 + sig
    print(f"kubenet-lab: lab {lab}'s warm process went away while it ran this command (pid {child}); "
          "what it did is not known", file=sys.stderr)
    return 1


def start(argv: list[str]) -> None:
    """After the command ran the verb itself: start the lab's warm process for the next one,
    when the lab is up and none answers (a second one started meanwhile gives way)."""
    lab = wanted(argv)
    if lab is None:
        return
    from ..fabric import state

    if not os.path.exists(state.plan_path(lab)):
        return
    import fcntl
    import subprocess

    try:  # a warm process holds this lock from its first step (server.main)
        fd = os.open(os.path.join(state.state_dir(lab), LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # one runs, or is starting
    finally:
        os.close(fd)

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root(), env.get("PYTHONPATH")]))
    # argv[0] is the interpreter's full path: Python finds its own sys.executable (and prefix) from
    # it, and a bare "python3" is looked up on PATH, where a version manager's shim may come first;
    # the warm process would then take every command for another Python's.
    try:
        proc = subprocess.Popen([sys.executable, "-m", SERVER_MODULE, "--lab", lab], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                start_new_session=True, cwd="/", close_fds=True)
    except OSError:
        return
    # Until it listens (or gives way): the command returns once the warm process's files are in
    # the lab's state, so that nothing is added to it after (a `rm -rf` of the state, or `down`).
    import select

    with proc.stdout:
        if select.select([proc.stdout], [], [], START_WAIT)[0]:
            proc.stdout.readline()
