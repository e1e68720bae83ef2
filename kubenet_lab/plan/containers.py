"""What a container runs, decided from its image, command and args (no image is ever pulled).

- agnhost images: the built-in equivalents of `netexec` and `serve-hostname`, same flags;
- coredns images: the built-in cluster DNS server; pause images: nothing;
- a command (or, for an image without ENTRYPOINT, args) naming a program this machine has: that
  argv, run as a real process in the pod's namespaces;
- anything else is emulated: the built-in server (see `images` for the images it knows) on every
  port the pod makes known: the container's declared ports, the image's own, and, for the first
  emulated container of a pod, the ports that Services selecting the pod target by number and
  that its probes name, when no container of the pod already listens there (containerPort is
  informational in Kubernetes: serve_hostname listens on 9376 without declaring it);
- nothing to serve: the namespace alone is the pod, as the pause container is.

A command whose program lives inside the image (`./podinfo`, `/nginx-ingress-controller`) is
emulated too, with a note that `up` shows as a warning, rather than failing to start and leaving
its Service without endpoints.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Collection, Iterable, Mapping

from . import images
from .images import KnownImage
from ..model.objects import (Container, Plan, PlannedContainer, PlannedPod, PlannedService, RunDns, RunExec, RunHttp,
                    RunNetexec, RunNothing, RunServeHostname, RunSpec)

AGNHOST_IMAGES = ("registry.k8s.io/e2e-test-images/agnhost", "k8s.gcr.io/e2e-test-images/agnhost",
                  "gcr.io/kubernetes-e2e-test-images/agnhost")
DNS_IMAGES = ("registry.k8s.io/coredns/coredns", "coredns/coredns", "k8s.gcr.io/coredns/coredns",
              "registry.k8s.io/coredns", "k8s.gcr.io/coredns")
PAUSE_IMAGES = ("registry.k8s.io/pause", "k8s.gcr.io/pause")

image_repo = images.repository
Port = tuple[int, str]  # (port, protocol)


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
        return RunNetexec(http_port=_int(flags.get("http-port"), 8080), udp_port=_int(flags.get("udp-port"), 8081),
                          delay_shutdown=max(_int(flags.get("delay-shutdown"), 0), 0))
    if sub == "serve-hostname":
        tcp, udp = _bool(flags.get("tcp"), False), _bool(flags.get("udp"), False)
        return RunServeHostname(port=_int(flags.get("port"), 9376), http=_bool(flags.get("http"), not (tcp or udp)),
                                tcp=tcp, udp=udp)
    if sub == "pause":
        return RunNothing()
    return default_run(container)


def default_run(container: Container) -> RunSpec:
    return emulated(container, None, ())


@dataclass(frozen=True)
class Resolved:
    run: RunSpec
    # The container stands in for its image with the built-in server, and may take the ports its
    # pod makes known (see the module's docstring).
    emulated: bool = False
    note: str | None = None  # why it is emulated, when the manifest asked to run a program


def _listen_port(value: str | None, default: int) -> int:
    """A Go listen address (`:5678`, `0.0.0.0:8080`) -> its port."""
    return _int(value.rsplit(":", 1)[-1], default) if value else default


HTTPS_PORT = 443


def _named(name: str | None, scheme: str) -> bool:
    """A port name saying `scheme`: `https`, or Istio-style `https-admin`."""
    return name is not None and (name == scheme or name.startswith(scheme + "-"))


def tls_ports(container: Container, tcp: Iterable[int], https_targets: Collection[int] = ()) -> tuple[int, ...]:
    """Which of an emulated container's TCP ports `tcp` speak TLS, as nginx-style manifests mean
    it: a port the container declares with the name `https` (or `https-...`); else, unless the
    container names it `http` (or `http-...`), port 443 and the ports in `https_targets` (those a
    Service port named https targets by number). Every other port stays plain HTTP."""
    names = {p.container_port: p.name for p in container.ports if p.protocol == "TCP" and p.name}
    out = []
    for port in tcp:
        name = names.get(port)
        if _named(name, "https") or (not _named(name, "http") and (port == HTTPS_PORT or port in https_targets)):
            out.append(port)
    return tuple(out)


def emulated(container: Container, image: KnownImage | None, extra: Iterable[Port],
             args: Collection[str] = (), https: Collection[int] = ()) -> RunSpec:
    """The built-in server for a container whose image the lab does not run: on its declared
    ports, the image's own and `extra`, with what the image answers (`images.KnownImage.serves`),
    over TLS where the port is HTTPS (`tls_ports`)."""
    own = list(image.listens) if image else []
    flags = parse_flags(list(args))
    if image and image.serves == "echo":
        own = [(_listen_port(flags.get("listen"), own[0][0]), "TCP")]
    redis = redis_role(image, list(args)) if image and image.serves == "redis" else None
    if redis is not None:
        own = [(redis[0], "TCP")]
    if image and image.serves == "hostname":
        spec = agnhost_run(["serve-hostname", *args], container)
        assert isinstance(spec, RunServeHostname)
        own = [(spec.port, "TCP")]
        if {(p.container_port, p.protocol) for p in container.ports} | set(extra) <= set(own):
            return spec
    ports: list[Port] = []
    for port in [*((p.container_port, p.protocol) for p in container.ports), *own, *extra]:
        if port not in ports:
            ports.append(port)
    tcp = tuple(p for p, proto in ports if proto == "TCP")
    udp = tuple(p for p, proto in ports if proto == "UDP")
    if not (tcp or udp):
        return RunNothing()
    text = flags.get("text", "") + "\n" if image and image.serves == "echo" else image.text if image else None
    resp = (redis[0],) if redis is not None else ()
    return RunHttp(ports=tcp, udp_ports=udp, text=text,
                   tls_ports=tuple(p for p in tls_ports(container, tcp, https) if p not in resp),
                   redis_ports=resp, replica_of=redis[1] if redis is not None else None,
                   proxy_to=image.proxy_to if image else None, docroot=image.docroot if image else None)


def redis_role(image: KnownImage, args: list[str]) -> tuple[int, tuple[str, int] | None]:
    """Where a redis image listens and whose replica it is: `--port N` (else the image's own
    port), `--replicaof HOST PORT` / `--slaveof HOST PORT` (else the image's `replica_of`)."""
    port, master = image.listens[0][0], image.replica_of
    for i, word in enumerate(args):
        if word == "--port" and i + 1 < len(args):
            port = _int(args[i + 1], port)
        if word in ("--replicaof", "--slaveof") and i + 1 < len(args):
            host, _, number = args[i + 1].partition(" ")  # redis 7 also takes "HOST PORT" as one word
            if not number and i + 2 < len(args):
                number = args[i + 2]
            master = None if host.lower() == "no" else (host, _int(number, 6379))
    return port, master


def resolve(container: Container, fields: Mapping[str, str] | None = None, service_links: bool = True,
            extra: Iterable[Port] = (), has_program: Callable[[str], bool] | None = None,
            https: Collection[int] = ()) -> Resolved:
    """What `container` runs. `fields`: the pod's values for valueFrom.fieldRef paths (see
    `pod_fields`); `extra`: ports an emulated container serves besides its own; `has_program`:
    whether this machine has a program (None: assume it has); `https`: ports a Service port named
    https targets by number (TLS, see `tls_ports`)."""
    argv = list(container.command or ()) + list(container.args or ())
    repo = image_repo(container.image)
    if is_agnhost(container.image):
        return Resolved(agnhost_run(argv, container))
    if repo in DNS_IMAGES:
        udp53 = [p.container_port for p in container.ports if p.name in ("dns", "dns-tcp")]
        return Resolved(RunDns(port=udp53[0] if udp53 else 53))
    if repo in PAUSE_IMAGES:
        return Resolved(RunNothing())
    image = images.known(container.image)
    if container.command is None and container.args:
        if image is None or image.entrypoint is None:
            return Resolved(emulated(container, image, extra, https=https), True,
                            f"args without a command go to the entrypoint of image {container.image or '(none)'}, "
                            f"which kubenet-lab does not know (no image is pulled)")
        if image.entrypoint:  # the args are the image's own program's: emulate that program
            return Resolved(emulated(container, image, extra, container.args, https), True)
    if argv:
        if has_program is not None and not has_program(argv[0]):
            # a redis image's own program (redis-server): its flags say where and whose replica
            flags_of = argv[1:] if image and image.serves == "redis" else ()
            return Resolved(emulated(container, image, extra, flags_of, https=https), True,
                            f"{argv[0]} is not a program on this machine (it lives in image "
                            f"{container.image or '(none)'}, which kubenet-lab does not pull)")
        fields = fields or {}
        env = container_env(container, fields)
        return Resolved(RunExec(argv=tuple(argv), env=env, service_links=service_links))
    return Resolved(emulated(container, image, extra, https=https), True)


def container_env(container: Container, fields: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    """The container's own variables in order, pod fields resolved (valueFrom.fieldRef) and
    `$(NAME)` references left for start time."""
    fields = fields or {}
    return tuple((v.name, _field(fields, v.field_path) if v.field_path else v.value) for v in container.env
                 if v.key_ref is None)  # a ConfigMap's or Secret's key: see plan.configs


def resolve_run(container: Container, fields: Mapping[str, str] | None = None,
                service_links: bool = True) -> RunSpec:
    return resolve(container, fields, service_links).run


def listening(run: RunSpec, declared: Iterable[Port]) -> set[Port]:
    """Where a container listens: its server's ports; for a real process, what it declares."""
    if isinstance(run, RunHttp):
        return {(p, "TCP") for p in run.ports} | {(p, "UDP") for p in run.udp_ports}
    if isinstance(run, RunNetexec):
        return {(run.http_port, "TCP"), (run.udp_port, "UDP")} - {(-1, "TCP"), (-1, "UDP")}
    if isinstance(run, RunServeHostname):
        return ({(run.port, "TCP")} if run.http or run.tcp else set()) | ({(run.port, "UDP")} if run.udp else set())
    if isinstance(run, RunDns):
        return {(run.port, "UDP"), (run.port, "TCP")}
    return set(declared) if isinstance(run, RunExec) else set()


def resolve_pod(containers: Iterable[Container], wanted: Iterable[Port], fields: Mapping[str, str] | None = None,
                service_links: bool = True, has_program: Callable[[str], bool] | None = None,
                others: Iterable[PlannedContainer] = (), https: Collection[int] = (),
                restart_policy: str = "Always") -> list[tuple[Container, Resolved]]:
    """Every container of a pod resolved; the ports in `wanted` (Service targets, probes) that
    no container listens on (nor one of `others`, the pod's sidecars) go to the first emulated one."""
    containers = list(containers)
    out = [(c, resolve(c, fields, service_links, (), has_program, https)) for c in containers]
    heard = set().union(*(listening(r.run, ((p.container_port, p.protocol) for p in c.ports)) for c, r in out),
                        *(listening(o.run, ((p.container_port, p.protocol) for p in o.ports)) for o in others))
    missing = [p for p in dict.fromkeys(wanted) if p not in heard]
    first = next((i for i, (_, r) in enumerate(out) if r.emulated), None)
    if missing and first is not None:
        c = containers[first]
        out[first] = (c, resolve(c, fields, service_links, missing, has_program, https))
    if restart_policy != "Always":  # a run-to-completion pod: what has nothing to serve ends at once
        out = [(c, Resolved(RunNothing(completes=True), True, _completes_note(c, r)))
               if r.emulated and isinstance(r.run, RunNothing) else (c, r) for c, r in out]
    return out


def _completes_note(c: Container, r: Resolved) -> str:
    why = r.note or f"nothing of image {c.image or '(none)'} runs here and it serves no port"
    return f"{why}; as its pod runs to completion, it completes at once with exit code 0"


def plan_init_containers(containers: Iterable[Container], fields: Mapping[str, str] | None = None,
                         service_links: bool = True, has_program: Callable[[str], bool] | None = None
                         ) -> tuple[PlannedContainer, ...]:
    """A pod's init containers, in order. A sidecar (restartPolicy Always) runs what any
    container would; a plain init container runs its command to completion when this machine
    has the program, and otherwise, nothing of its image being here to run, completes at once
    (RunNothing, exit code 0; with a note when the manifest named a program)."""
    out = []
    for c in containers:
        sidecar = c.restart_policy == "Always"
        r = resolve(c, fields, service_links, (), has_program)
        run = r.run if sidecar or isinstance(r.run, RunExec) else RunNothing()
        out.append(PlannedContainer(name=c.name, image=c.image, run=run, ports=c.ports, note=r.note, sidecar=sidecar,
                                    pre_stop=c.pre_stop, env=container_env(c, fields), service_links=service_links,
                                    readiness_probe=c.readiness_probe if sidecar else None,
                                    liveness_probe=c.liveness_probe if sidecar else None,
                                    startup_probe=c.startup_probe if sidecar else None))
    return tuple(out)


def serving(run: RunSpec) -> str:
    """What an emulated container serves, in words: `the built-in HTTP server on TCP 9898`."""
    if isinstance(run, RunServeHostname):
        return f"the built-in serve_hostname on port {run.port}"
    if isinstance(run, RunHttp):
        ports = [f"{'HTTPS' if p in run.tls_ports else 'Redis' if p in run.redis_ports else 'TCP'} {p}"
                 for p in run.ports] + [f"UDP {p}" for p in run.udp_ports]
        proxy = f" (a proxy to {run.proxy_to})" if run.proxy_to else ""
        return f"the built-in HTTP server{proxy} on {', '.join(ports)}"
    return "nothing (no port of its pod is known: declare its containerPort)"


def emulation_warnings(plan: Plan) -> tuple[str, ...]:
    """One warning per controller (or bare pod) and container that the lab emulates instead of
    running what the manifest names."""
    seen: dict[tuple[str, str], str] = {}
    for pod in plan.pods:
        owner = pod.owner.replace("/", f" {pod.namespace}/", 1) if pod.owner else f"pod {pod.key}"
        for c in pod.init_containers:
            if c.note and (owner, c.name) not in seen:
                instead = f"it serves {serving(c.run)}" if c.sidecar else "it completes at once (exit code 0)"
                seen[owner, c.name] = f"{owner}, init container {c.name}: {c.note}; {instead} instead"
        for c in pod.containers:
            if c.note and (owner, c.name) not in seen:
                ends = isinstance(c.run, RunNothing) and c.run.completes  # the note says so
                seen[owner, c.name] = f"{owner}, container {c.name}: {c.note}" + (
                    "" if ends else f"; it serves {serving(c.run)} instead")
    return tuple(seen.values())


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


def services_before(plan: Plan, pod: PlannedPod) -> tuple[PlannedService, ...]:
    """The Services a pod's containers got variables of when they started: kubelet takes those
    that exist at that moment, so those created (creationTimestamp, `Allocations.created`) no
    later than the pod; the master `kubernetes` Service always (it predates every pod). With no
    creation time known (a plan made without a clock), every Service."""
    created = plan.allocations.created
    born = created.get(f"Pod/{pod.key}")
    if born is None:
        return plan.services
    return tuple(s for s in plan.services if (s.namespace, s.name) == ("default", "kubernetes")
                 or created.get(f"Service/{s.key}", born) <= born)


def process_environment(plan: Plan, pod: PlannedPod, container: PlannedContainer | None, hostname: str,
                        base: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a container's process sees when it starts, and what `exec` into any container
    (emulated ones too) sees: `base` (by default the image's PATH and HOME), HOSTNAME, the
    service variables of its namespace as they were when the pod was created (unless the pod
    turned them off; see `services_before`), then its own variables in order, each expanded
    against those before it."""
    env = dict({"PATH": CONTAINER_PATH, "HOME": "/root"} if base is None else base)
    env["HOSTNAME"] = hostname
    run = container.run if container is not None else None
    own = container.env if container is not None else ()
    links = container.service_links if container is not None else True
    if isinstance(run, RunExec):  # a plan made before containers carried their env
        own, links = own or run.env, links and run.service_links
    env.update(service_links(services_before(plan, pod), pod.namespace, links=links))
    for name, value in own:
        env[name] = expand(value, env)
    return env


def process_argv(run: RunExec, env: Mapping[str, str]) -> list[str]:
    """command + args with their `$(NAME)` references expanded, as kubelet does."""
    return [expand(word, env) for word in run.argv]
