"""What a container runs, decided from its image, command and args (no image is ever pulled).

- agnhost images: the built-in equivalents of `netexec` and `serve-hostname`, same flags;
- coredns images: the built-in cluster DNS server;
- command/args given: that argv, run as a real process in the pod's namespaces;
- any other image: the built-in HTTP server on each declared containerPort (nginx & co respond);
- nothing to run: the namespace alone is the pod, as the pause container is.
"""
from __future__ import annotations

from .model import Container, RunDns, RunExec, RunHttp, RunNetexec, RunNothing, RunServeHostname, RunSpec

AGNHOST_IMAGES = ("registry.k8s.io/e2e-test-images/agnhost", "k8s.gcr.io/e2e-test-images/agnhost",
                  "gcr.io/kubernetes-e2e-test-images/agnhost")
DNS_IMAGES = ("registry.k8s.io/coredns/coredns", "coredns/coredns", "k8s.gcr.io/coredns/coredns",
              "registry.k8s.io/coredns", "k8s.gcr.io/coredns")
PAUSE_IMAGES = ("registry.k8s.io/pause", "k8s.gcr.io/pause")


def image_repo(image: str) -> str:
    """The image without its tag or digest."""
    repo = image.split("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    if ":" in last:
        repo = repo[: len(repo) - len(last)] + last.split(":", 1)[0]
    return repo


def is_agnhost(image: str) -> bool:
    return image_repo(image) in AGNHOST_IMAGES or image_repo(image).endswith("/agnhost")


def parse_flags(words: list[str]) -> dict[str, str]:
    """Go-style flags: --name=value, --name value, -name, --bool (true)."""
    flags: dict[str, str] = {}
    i = 0
    while i < len(words):
        w = words[i]
        if w.startswith("-"):
            name = w.lstrip("-")
            if "=" in name:
                name, value = name.split("=", 1)
            elif i + 1 < len(words) and not words[i + 1].startswith("-") and not _is_bool_flag(name):
                value = words[i + 1]
                i += 1
            else:
                value = "true"
            flags[name] = value
        i += 1
    return flags


_BOOL_FLAGS = {"http", "tcp", "udp", "close-on-exit"}


def _is_bool_flag(name: str) -> bool:
    return name in _BOOL_FLAGS


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _bool(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.lower() in ("true", "1", "t", "yes")


def agnhost_run(argv: list[str], container: Container) -> RunSpec:
    words = list(argv)
    if words and words[0].rsplit("/", 1)[-1] == "agnhost":
        words = words[1:]
    if not words:
        return RunNothing()
    sub, flags = words[0], parse_flags(words[1:])
    if sub == "netexec":
        return RunNetexec(http_port=_int(flags.get("http-port"), 8080), udp_port=_int(flags.get("udp-port"), 8081))
    if sub == "serve-hostname":
        tcp, udp = _bool(flags.get("tcp"), False), _bool(flags.get("udp"), False)
        return RunServeHostname(port=_int(flags.get("port"), 9376), http=_bool(flags.get("http"), not (tcp or udp)),
                                tcp=tcp, udp=udp)
    if sub == "pause":
        return RunNothing()
    return default_run(container)


def default_run(container: Container) -> RunSpec:
    tcp = tuple(p.container_port for p in container.ports if p.protocol == "TCP")
    udp = tuple(p.container_port for p in container.ports if p.protocol == "UDP")
    if tcp or udp:
        return RunHttp(ports=tcp, udp_ports=udp)
    return RunNothing()


def resolve_run(container: Container) -> RunSpec:
    argv = list(container.command or ()) + list(container.args or ())
    repo = image_repo(container.image)
    if is_agnhost(container.image):
        return agnhost_run(argv, container)
    if repo in DNS_IMAGES:
        udp53 = [p.container_port for p in container.ports if p.name in ("dns", "dns-tcp")]
        return RunDns(port=udp53[0] if udp53 else 53)
    if repo in PAUSE_IMAGES:
        return RunNothing()
    if argv:
        return RunExec(argv=tuple(argv))
    return default_run(container)
