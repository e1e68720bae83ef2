"""What kubelet makes of ConfigMaps and Secrets for a pod (pure): its containers' variables
(envFrom, then env with valueFrom configMapKeyRef/secretKeyRef: kubelet_pods.go
makeEnvironmentVariables), the files of its configMap, secret and downwardAPI volumes (the
volume plugins' MakePayload and fieldpath.FormatMap), and where its containers mount them.

A ConfigMap or key kubelet cannot find is not a problem of the manifests: the pod is created and
waits, a container with reason CreateContainerConfigError (`PlannedContainer.config_error`), a
volume not set up (`PlannedVolume.error`, the pod ContainerCreating), in kubelet's words, until
the object appears.
"""
from __future__ import annotations

import base64
import posixpath
import re
from dataclasses import dataclass, replace
from typing import Iterable, Mapping

from . import images
from ..model.objects import (ConfigMap, Container, KeyRef, Model, Plan, PlannedContainer, PlannedMount, PlannedPod,
                             PlannedVolume, Pod, Volume, VolumeFile)
from .containers import container_env, expand, parse_flags

DEFAULT_MODE = 0o644  # configMap, secret and downwardAPI volumes' defaultMode
# The names kubelet takes from envFrom (IsEnvVarName: a C identifier, '-' and '.' allowed);
# other keys are skipped with an InvalidEnvironmentVariableNames event.
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_SUBSCRIPTED = re.compile(r"metadata\.(labels|annotations)\['([^']+)'\]")


class Configs:
    """The lab's ConfigMaps and Secrets by (kind, namespace, name)."""

    def __init__(self, objects: Iterable[ConfigMap] = ()):
        self.objects = {(c.kind, c.namespace, c.name): c for c in objects}

    def get(self, kind: str, namespace: str, name: str) -> ConfigMap | None:
        return self.objects.get((kind, namespace, name))


def _not_found(kind: str, name: str) -> str:
    """kubelet's words (its ConfigMap and Secret managers' NotFound: the singular resource)."""
    return f'{kind.lower()} "{name}" not found'


def _decoded(value: str) -> bytes:
    return base64.b64decode(value)


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _values(obj: ConfigMap) -> dict[str, str]:
    """What an env var takes of the object: a ConfigMap's data (not binaryData, as kubelet),
    a Secret's data decoded."""
    if obj.kind == "Secret":
        return {k: _text(_decoded(v)) for k, v in obj.data.items()}
    return dict(obj.data)


def _literal(value: str) -> str:
    """A value kubelet does not expand ($(NAME) in a ConfigMap stays as written): escaped for
    plan.containers.process_environment, which expands every variable."""
    return value.replace("$", "$$")


@dataclass(frozen=True)
class Env:
    env: tuple[tuple[str, str], ...]
    error: str | None = None  # why kubelet cannot start the container (CreateContainerConfigError)
    skipped: tuple[str, ...] = ()  # kubelet's InvalidEnvironmentVariableNames events
    sources: tuple[str, ...] = ()  # see PlannedContainer.env_sources


ENV_FROM = "envFrom"


def described_ref(ref: KeyRef) -> str:
    """kubectl describe's words for a variable a ConfigMap's or Secret's key sets."""
    where = f"in secret '{ref.name}'" if ref.kind == "Secret" else f"of config map '{ref.name}'"
    return f"<set to the key '{ref.key}' {where}>\tOptional: {'true' if ref.optional else 'false'}"


def container_variables(c: Container, namespace: str, fields: Mapping[str, str] | None, configs: Configs) -> Env:
    """A container's own variables as kubelet makes them: every envFrom source in order (each key,
    with its prefix), then its env in order (pod fields and ConfigMap/Secret keys resolved)."""
    out: list[tuple[str, str]] = []
    sources: list[str] = []
    skipped: list[str] = []
    for source in c.env_from:
        obj = configs.get(source.kind, namespace, source.name)
        if obj is None:
            if source.optional:
                continue
            return Env((), _not_found(source.kind, source.name))
        invalid = []
        for key, value in sorted(_values(obj).items()):
            name = source.prefix + key
            if not _ENV_NAME.fullmatch(name):
                invalid.append(name)
                continue
            out.append((name, _literal(value)))
            sources.append(ENV_FROM)
        if invalid:
            kind = "configMap" if source.kind == "ConfigMap" else "secret"
            skipped.append(f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom {kind} {namespace}/{source.name} "
                           f"were skipped since they are considered invalid environment variable names.")
    literal = iter(container_env(c, fields))
    for var in c.env:
        ref = var.key_ref
        if ref is None:
            out.append(next(literal))
            sources.append("")
            continue
        obj = configs.get(ref.kind, namespace, ref.name)
        if obj is None:
            if ref.optional:
                continue
            return Env((), _not_found(ref.kind, ref.name))
        values = _values(obj)
        if ref.key not in values:
            if ref.optional:
                continue
            return Env((), f"couldn't find key {ref.key} in {ref.kind} {namespace}/{ref.name}")
        out.append((var.name, _literal(values[ref.key])))
        sources.append(described_ref(ref))
    return Env(tuple(out), None, tuple(skipped), tuple(sources))


# ------------------------------------------------------------------------------------ volumes


def go_quote(s: str) -> str:
    """Go's %q of a string (strconv.Quote): printable characters as they are, the rest escaped."""
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(ch)])
        elif ch.isprintable() and ch != "\u00ad":
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def format_map(m: Mapping[str, str]) -> str:
    """fieldpath.FormatMap: `key="value"` lines, sorted by key, without a final newline."""
    return "\n".join(f"{k}={go_quote(m[k])}" for k in sorted(m))


def _file(path: str, data: bytes, mode: int) -> VolumeFile:
    try:
        return VolumeFile(path, data.decode("utf-8"), mode)
    except UnicodeDecodeError:
        return VolumeFile(path, base64.b64encode(data).decode(), mode, binary=True)


def _payload(volume: Volume, obj: ConfigMap) -> tuple[tuple[VolumeFile, ...], str | None]:
    """The files of a configMap or secret volume (every key, or `items` only), or why not."""
    mode = DEFAULT_MODE if volume.default_mode is None else volume.default_mode
    contents: dict[str, bytes] = {k: v.encode() for k, v in obj.data.items()} if obj.kind == "ConfigMap" else \
        {k: _decoded(v) for k, v in obj.data.items()}
    contents.update({k: _decoded(v) for k, v in obj.binary_data.items()})
    if not volume.items:
        return tuple(_file(k, contents[k], mode) for k in sorted(contents)), None
    files = {}
    for item in volume.items:
        if item.key not in contents:
            if volume.optional:
                continue
            what = "configmap references non-existent config key" if obj.kind == "ConfigMap" else \
                "secret references non-existent secret key"
            return (), f"{what}: {item.key}"
        files[item.path] = _file(item.path, contents[item.key], mode if item.mode is None else item.mode)
    return tuple(files[p] for p in sorted(files)), None


def _downward(volume: Volume, fields: Mapping[str, str], labels: Mapping[str, str],
              annotations: Mapping[str, str]) -> tuple[VolumeFile, ...]:
    mode = DEFAULT_MODE if volume.default_mode is None else volume.default_mode
    files = {}
    for item in volume.downward:
        path = item.field_path
        if path == "metadata.labels":
            text = format_map(labels)
        elif path == "metadata.annotations":
            text = format_map(annotations)
        elif m := _SUBSCRIPTED.fullmatch(path):
            text = (labels if m.group(1) == "labels" else annotations).get(m.group(2), "")
        else:
            text = fields.get(path, "")
        files[item.path] = VolumeFile(item.path, text, mode if item.mode is None else item.mode)
    return tuple(files[p] for p in sorted(files))


def plan_volume(volume: Volume, namespace: str, configs: Configs, fields: Mapping[str, str],
                labels: Mapping[str, str], annotations: Mapping[str, str]) -> PlannedVolume:
    """One volume as kubelet sets it up (a type the lab has nothing for is an emptyDir)."""
    if volume.kind in ("configMap", "secret"):
        kind = "ConfigMap" if volume.kind == "configMap" else "Secret"
        obj = configs.get(kind, namespace, volume.source)
        if obj is None:
            return PlannedVolume(volume.name, volume.kind, source=volume.source, optional=volume.optional,
                                 error=None if volume.optional else _not_found(kind, volume.source))
        files, error = _payload(volume, obj)
        return PlannedVolume(volume.name, volume.kind, files=files, error=error, source=volume.source,
                             optional=volume.optional)
    if volume.kind == "downwardAPI":
        return PlannedVolume(volume.name, volume.kind, files=_downward(volume, fields, labels, annotations))
    if volume.kind == "hostPath":
        return PlannedVolume(volume.name, volume.kind, host_path=volume.source)
    return PlannedVolume(volume.name, "emptyDir", medium=volume.medium)


def plan_volumes(volumes: Iterable[Volume], namespace: str, configs: Configs, fields: Mapping[str, str],
                 labels: Mapping[str, str], annotations: Mapping[str, str],
                 running: PlannedPod | None = None) -> tuple[PlannedVolume, ...]:
    """A pod's volumes. Kubelet refreshes a running pod's configMap, secret and downwardAPI
    volumes; one it cannot refresh (its ConfigMap gone) keeps what it had (`running`)."""
    had = {v.name: v for v in running.volumes} if running is not None else {}
    out = []
    for volume in volumes:
        planned = plan_volume(volume, namespace, configs, fields, labels, annotations)
        before = had.get(volume.name)
        if planned.error and before is not None and before.error is None and before.kind == planned.kind:
            planned = before
        out.append(planned)
    return tuple(out)


def planned_mounts(c: Container) -> tuple[PlannedMount, ...]:
    """Where the container sees its volumes, each path normalised as the runtime mounts it
    (`/usr/local/certificates/` is `/usr/local/certificates`)."""
    return tuple(PlannedMount(m.name, posixpath.normpath(m.path), m.read_only, m.sub_path) for m in c.mounts)


def kept_env(planned: Env, name: str, running: PlannedPod | None, init: bool = False) -> Env:
    """A running container's variables stay what they were when it started (kubelet resolves
    them at start): `running`'s container `name`, unless it could not start (config_error)."""
    if running is None:
        return planned
    before = next((c for c in (running.init_containers if init else running.containers) if c.name == name), None)
    if before is None or before.config_error is not None:
        return planned
    return replace(planned, env=before.env, error=None, skipped=before.env_skipped, sources=before.env_sources)


def with_configs(planned: PlannedPod, pod: Pod, fields: Mapping[str, str], configs: Configs,
                 running: PlannedPod | None) -> PlannedPod:
    """`planned` with what kubelet makes of ConfigMaps and Secrets: its volumes, each
    container's variables (kept as they started for a running one) and mounts."""
    def container(pc: PlannedContainer, c: Container, init: bool) -> PlannedContainer:
        env = kept_env(container_variables(c, pod.namespace, fields, configs), c.name, running, init)
        return replace(pc, env=env.env, config_error=env.error, env_skipped=env.skipped, mounts=planned_mounts(c),
                       env_sources=env.sources if set(env.sources) - {""} else (), env_from=c.env_from)

    return replace(
        planned,
        containers=tuple(container(pc, c, False) for pc, c in zip(planned.containers, pod.spec.containers)),
        init_containers=tuple(container(pc, c, True) for pc, c in zip(planned.init_containers,
                                                                      pod.spec.init_containers)),
        volumes=plan_volumes(pod.spec.volumes, pod.namespace, configs, fields, pod.labels, pod.annotations, running))


def waiting_warnings(plan: Plan, previous: Plan | None) -> tuple[str, ...]:
    """What `up` and `apply` say of pods kubelet cannot start for want of a ConfigMap, a Secret
    or a key (new since `previous`): a volume it cannot set up (FailedMount: the pod stays
    ContainerCreating), a container it cannot make the environment of (CreateContainerConfigError)."""
    before = {p.key: _problems(p) for p in previous.pods} if previous is not None else {}
    return tuple(w for pod in plan.pods for w in _problems(pod) if w not in before.get(pod.key, ()))


def _problems(pod: PlannedPod) -> tuple[str, ...]:
    mounts = tuple(f"pod {pod.key} is ContainerCreating: MountVolume.SetUp failed for volume \"{v.name}\" : {v.error} "
                   f"(kubelet retries until it exists)" for v in pod.volumes if v.error)
    configs = tuple(f"pod {pod.key}, container {c.name} is waiting (CreateContainerConfigError): {c.config_error} "
                    f"(kubelet retries until it exists)" for c in (*pod.init_containers, *pod.containers)
                    if c.config_error)
    return mounts + configs


# --------------------------------------------------------------------- Secrets a Job's pod makes

CERTGEN = "kube-webhook-certgen"


def made_secrets(model: Model) -> tuple[ConfigMap, ...]:
    """The Secrets a bundle's own Jobs create through the API on a cluster, which the lab has no
    API server for: kube-webhook-certgen `create --secret-name=NAME --namespace=NS` (ingress-nginx's
    admission Job) makes Secret NS/NAME with keys ca, cert and key. Here they are empty: no
    admission webhook runs, and the controller that mounts them is emulated. Not when the
    manifests hold an object of that name."""
    have = {(c.kind, c.namespace, c.name) for c in model.config_maps}
    out: dict[tuple[str, str], ConfigMap] = {}
    for w in model.workloads:
        if w.kind != "Job":
            continue
        for c in w.template.containers:
            if images.repository(c.image).rsplit("/", 1)[-1] != CERTGEN:
                continue
            argv = [*(c.command or ()), *(c.args or ())]
            if "create" not in argv:
                continue
            env = {v.name: (w.namespace if v.field_path == "metadata.namespace" else v.value)
                   for v in c.env if v.key_ref is None and v.field_path in (None, "metadata.namespace")}
            flags = parse_flags([expand(a, env) for a in argv if a.startswith("-")])
            name, namespace = flags.get("secret-name"), flags.get("namespace") or w.namespace
            if name and ("Secret", namespace, name) not in have:
                out[namespace, name] = ConfigMap(namespace, name, "Secret", {"ca": "", "cert": "", "key": ""},
                                                 type="Opaque")
    return tuple(out.values())
