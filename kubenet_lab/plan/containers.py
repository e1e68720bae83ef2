"""What a container runs, decided from its image, command and args (no image is ever pulled).

- agnhost images: the built-in equivalents of `netexec` and `serve-hostname`, same flags;
- coredns images: the built-in cluster DNS server;
- command/args given: that argv, run as a real process in the pod's namespaces;
- any other image: the built-in HTTP server on each declared containerPort (nginx & co respond);
- nothing to run: the namespace alone is the pod, as the pause container is.
"""
from __future__ import annotations

import re
from typing import Mapping

from .model import (Container, Plan, PlannedContainer, PlannedPod, PlannedService, RunDns, RunExec, RunHttp, RunNetexec,
                    RunNothing, RunServeHostname, RunSpec)

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


def resolve_run(container: Container, fields: Mapping[str, str] | None = None,
                service_links: bool = True) -> RunSpec:
    """`fields`: the pod's values for valueFrom.fieldRef paths (see `pod_fields`)."""
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
        fields = fields or {}
        env = tuple((v.name, _field(fields, v.field_path) if v.field_path else v.value) for v in container.env)
        return RunExec(argv=tuple(argv), env=env, service_links=service_links)
    return default_run(container)


# --- a real process's environment, as kubelet makes it ------------------------------------------

CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The pod fields valueFrom.fieldRef can name (as the Downward API allows for env, minus
# annotations): what manifest validation accepts and `pod_fields` gives values for.
FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
               "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs")
LABEL_FIELD = re.compile(r"metadata\.labels\['([^']+)'\]")


def pod_fields(namespace: str, name: str, uid: str, node: str, node_ip: str, pod_ip: str,
               labels: Mapping[str, str]) -> dict[str, str]:
    """The values of the pod fields an env var can take (valueFrom.fieldRef.fieldPath)."""
    values = (name, namespace, uid, node, "default", node_ip, node_ip, pod_ip, pod_ip)
    out = dict(zip(FIELD_PATHS, values, strict=True))
    out.update({f"metadata.labels['{k}']": v for k, v in labels.items()})
    return out


def _field(fields: Mapping[str, str], path: str) -> str:
    return fields.get(path, "")  # an absent label gives "", as the Downward API does


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(NAME)` expansion: a defined NAME is replaced, an undefined reference is
    kept as written, and `$$` stands for one `$`."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("$(", i) and (end := text.find(")", i + 2)) != -1:
            name = text[i + 2:end]
            out.append(env[name] if name in env else text[i:end + 1])
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def service_links(services: tuple[PlannedService, ...], namespace: str, links: bool = True) -> dict[str, str]:
    """The variables kubelet gives a container for each service of its namespace that has a
    ClusterIP (docker-links style): NAME_SERVICE_HOST, NAME_SERVICE_PORT[_PORTNAME], NAME_PORT...;
    with `links` off (enableServiceLinks: false) only those of `kubernetes.default`, which every
    container gets whatever its namespace."""
    env: dict[str, str] = {}
    for svc in services:
        master = (svc.namespace, svc.name) == ("default", "kubernetes")
        if not (master or (links and svc.namespace == namespace)) or svc.cluster_ip is None or not svc.ports:
            continue
        name, ip = _env_name(svc.name), str(svc.cluster_ip)
        first = svc.ports[0]
        env[f"{name}_SERVICE_HOST"] = ip
        env[f"{name}_SERVICE_PORT"] = str(first.port)
        for p in svc.ports:
            if p.name:
                env[f"{name}_SERVICE_PORT_{_env_name(p.name)}"] = str(p.port)
        env[f"{name}_PORT"] = f"{first.protocol.lower()}://{ip}:{first.port}"
        for p in svc.ports:
            proto = p.protocol.lower()
            prefix = f"{name}_PORT_{p.port}_{p.protocol.upper()}"
            env[prefix] = f"{proto}://{ip}:{p.port}"
            env[f"{prefix}_PROTO"] = proto
            env[f"{prefix}_PORT"] = str(p.port)
            env[f"{prefix}_ADDR"] = ip
    return env


def process_environment(plan: Plan, pod: PlannedPod, container: PlannedContainer | None, hostname: str,
                        base: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a container's process sees when it starts now: `base` (by default the image's PATH
    and HOME), HOSTNAME, the service variables of its namespace (unless the pod turned them
    off), then its own variables in order, each expanded against those before it."""
    env = dict({"PATH": CONTAINER_PATH, "HOME": "/root"} if base is None else base)
    env["HOSTNAME"] = hostname
    run = container.run if container is not None else None
    env.update(service_links(plan.services, pod.namespace, links=not isinstance(run, RunExec) or run.service_links))
    if isinstance(run, RunExec):
        for name, value in run.env:
            env[name] = expand(value, env)
    return env


def process_argv(run: RunExec, env: Mapping[str, str]) -> list[str]:
    """command + args with their `$(NAME)` references expanded, as kubelet does."""
    return [expand(word, env) for word in run.argv]
