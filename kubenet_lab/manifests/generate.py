"""The objects kubectl's imperative verbs make, as its generators make them (pure).

- `kubectl run NAME --image=IMAGE`: a bare Pod labelled run=NAME (or --labels), one container
  named NAME, --port as its containerPort, restartPolicy from --restart (Always), `-- ARGS` as
  its args (its command with --command), dnsPolicy ClusterFirst;
- `kubectl create deployment NAME --image=IMAGE...`: a Deployment labelled app=NAME, selecting
  app=NAME, with `replicas` (1), one container per image named after the image (registry path,
  tag and digest left out: `nginx` for `docker.io/library/nginx:1.27`), --port on the one;
- `kubectl expose KIND NAME`: a Service selecting what the object selects (a Deployment's or
  ReplicaSet's matchLabels, a ReplicationController's selector, a pod's labels, a Service's
  selector), with the object's labels, its ports from --port or from the object's container
  ports (`port-1`, `port-2`, ... when several), targetPort --target-port or the port itself;
- `kubectl label` / `kubectl annotate`: KEY=VALUE and KEY- over a map, with --overwrite;
- `kubectl create configmap` / `create secret generic NAME`: --from-literal=KEY=VALUE and the
  files of --from-file as data (a ConfigMap's non-UTF-8 file as binaryData; a Secret's all base64).

Each returns plain data (dicts and lists, as kubectl's `--dry-run=client -o yaml` prints them
without the null creationTimestamp and empty status), and `tree` makes a stored document of it
(manifests.fields.LMap/LList) whose every field points at one place, such as `<kubectl run>`:1.
Problems are raised as GenerateError with kubectl's own words.
"""
from __future__ import annotations

import base64
import re
from typing import Any, Iterable, Mapping, Sequence

from .fields import LList, LMap


class GenerateError(Exception):
    """What kubectl says when it cannot make the object (`error: ...`)."""


def tree(value: Any, line: int = 1) -> Any:
    """Plain data as a loaded document whose every entry is at `line`."""
    if isinstance(value, dict):
        out = LMap(line)
        for k, v in value.items():
            out[k] = tree(v, line)
            out.lines[k] = line
        return out
    if isinstance(value, (list, tuple)):
        items = LList(line)
        for v in value:
            items.append(tree(v, line))
            items.lines.append(line)
        return items
    return value


def _meta(name: str, namespace: str | None, labels: Mapping[str, str] | None,
          annotations: Mapping[str, str] | None = None) -> dict:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


RESTART_POLICIES = ("Always", "OnFailure", "Never")


def parse_pairs(text: str | None, what: str = "labels") -> dict[str, str]:
    """--labels='a=b,c=d' as kubectl's run reads it."""
    if not text:
        return {}
    out = {}
    for item in text.split(","):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise GenerateError(f"invalid label spec: {item}" if what == "labels" else f"invalid {what}: {item}")
        out[key.strip()] = value.strip()
    return out


def parse_env(items: Iterable[str]) -> list[dict]:
    """--env NAME=VALUE, repeatable."""
    out = []
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise GenerateError(f"invalid env: {item}")
        out.append({"name": name, "value": value})
    return out


def run_pod(name: str, image: str, *, namespace: str | None = None, port: int | None = None,
            labels: Mapping[str, str] | None = None, restart: str = "Always", argv: Sequence[str] = (),
            command: bool = False, env: Sequence[dict] = (), annotations: Mapping[str, str] | None = None,
            stdin: bool = False, tty: bool = False) -> dict:
    """The Pod `kubectl run` makes."""
    if not image:
        raise GenerateError("--image is required")
    if restart not in RESTART_POLICIES:
        raise GenerateError(f"invalid restart policy: {restart}")
    if command and not argv:
        raise GenerateError("--command requires a command: kubectl run NAME --image=IMAGE --command -- CMD [ARGS...]")
    container: dict[str, Any] = {"name": name, "image": image}
    if argv:
        container["command" if command else "args"] = list(argv)
    if env:
        container["env"] = [dict(e) for e in env]
    if port is not None:
        container["ports"] = [{"containerPort": port}]
    container["resources"] = {}
    if stdin:
        container["stdin"] = True
        container["stdinOnce"] = True
    if tty:
        container["tty"] = True
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": _meta(name, namespace, labels if labels else {"run": name}, annotations),
            "spec": {"containers": [container], "dnsPolicy": "ClusterFirst", "restartPolicy": restart}}


def container_name(image: str) -> str:
    """kubectl create deployment's container name: the image's last path element without tag or
    digest, `_` made `-`."""
    name = image.split("/")[-1]
    name = name.split(":")[0].split("@")[0]
    return name.replace("_", "-")


def deployment(name: str, images: Sequence[str], *, namespace: str | None = None, replicas: int = 1,
               port: int | None = None) -> dict:
    """The Deployment `kubectl create deployment` makes."""
    if not images:
        raise GenerateError("required flag(s) \"image\" not set")
    if replicas < 0:
        raise GenerateError(f"replicas must be greater than or equal to 0 (got {replicas})")
    if port is not None and len(images) > 1:
        raise GenerateError("cannot specify port with multiple images")
    containers, seen = [], set()
    for image in images:
        cname = container_name(image)
        n = 1
        unique = cname
        while unique in seen:  # kubectl adds a random suffix; the lab counts
            n += 1
            unique = f"{cname}-{n}"
        seen.add(unique)
        c: dict[str, Any] = {"name": unique, "image": image}
        if port is not None:
            c["ports"] = [{"containerPort": port}]
        c["resources"] = {}
        containers.append(c)
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": _meta(name, namespace, labels),
            "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)}, "strategy": {},
                     "template": {"metadata": {"labels": dict(labels)}, "spec": {"containers": containers}}}}


SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
PROTOCOLS = ("TCP", "UDP", "SCTP")


def _selector_of(kind: str, doc: Mapping) -> dict[str, str]:
    """What `kubectl expose` selects for an object (polymorphichelpers.MapBasedSelectorForObject)."""
    spec = doc.get("spec") or {}
    if kind == "Pod":
        labels = (doc.get("metadata") or {}).get("labels") or {}
        if not labels:
            raise GenerateError("the pod has no labels and cannot be exposed")
        return dict(labels)
    if kind == "Service":
        if not spec.get("selector"):
            raise GenerateError("the service has no pod selector set")
        return dict(spec["selector"])
    if kind == "ReplicationController":
        selector = spec.get("selector") or ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        return dict(selector)
    if kind in ("Deployment", "ReplicaSet"):
        selector = spec.get("selector") or {}
        if kind == "Deployment" and not selector.get("matchLabels"):
            raise GenerateError("invalid deployment: no selectors, therefore cannot be exposed")
        if selector.get("matchExpressions"):
            raise GenerateError(f"couldn't convert expressions - \"{_go_expressions(selector['matchExpressions'])}\" "
                                f"to map-based selector format")
        return dict(selector.get("matchLabels") or {})
    raise GenerateError(f"cannot expose a {kind}")


def _go_expressions(exprs: Sequence[Mapping]) -> str:
    return "[" + " ".join(f"{{Key:{e.get('key')} Operator:{e.get('operator')} "
                          f"Values:[{' '.join(e.get('values') or [])}]}}"
                          for e in exprs) + "]"


def _containers_of(kind: str, doc: Mapping) -> list[Mapping]:
    spec = doc.get("spec") or {}
    if kind != "Pod":
        spec = ((spec.get("template") or {}).get("spec")) or {}
    return list(spec.get("containers") or [])


def ports_of(kind: str, doc: Mapping) -> list[tuple[int, str]]:
    """(port, protocol) of the object as `kubectl expose` finds them (PortsForObject,
    ProtocolsForObject): a Service's ports, else every container port of the pod (template)."""
    if kind == "Service":
        return [(p.get("port"), p.get("protocol") or "TCP") for p in (doc.get("spec") or {}).get("ports") or []]
    return [(p.get("containerPort"), p.get("protocol") or "TCP")
            for c in _containers_of(kind, doc) for p in c.get("ports") or []]


def service(kind: str, doc: Mapping, *, name: str | None = None, port: str | None = None,
            target_port: str | None = None, type_: str | None = None, protocol: str | None = None,
            labels: Mapping[str, str] | None = None, selector: Mapping[str, str] | None = None,
            namespace: str | None = None, cluster_ip: str | None = None) -> dict:
    """The Service `kubectl expose KIND NAME` makes of the object `doc` (its raw document)."""
    meta = doc.get("metadata") or {}
    if type_ is not None and type_ not in SERVICE_TYPES:
        raise GenerateError(f"cannot expose a Service of type {type_!r}; valid types: {', '.join(SERVICE_TYPES)}")
    if protocol is not None and protocol not in PROTOCOLS:
        raise GenerateError(f"invalid protocol {protocol!r}; valid protocols: {', '.join(PROTOCOLS)}")
    chosen = dict(selector) if selector else None
    if chosen is None:
        try:
            chosen = _selector_of(kind, doc)
        except GenerateError as e:
            raise GenerateError(f"couldn't retrieve selectors via --selector flag or introspection: {e}") from None
    found = ports_of(kind, doc)
    protocols = {str(p): proto for p, proto in found}
    if port:
        numbers = port.split(",")
    else:
        numbers = [str(p) for p, _ in found]
        if not numbers and cluster_ip != "None":
            raise GenerateError("couldn't find port via --port flag or introspection")
    ports = []
    for i, text in enumerate(numbers):
        if not re.fullmatch(r"[0-9]+", text.strip()):
            raise GenerateError(f'strconv.Atoi: parsing "{text}": invalid syntax')
        number = int(text)
        entry: dict[str, Any] = {}
        if len(numbers) > 1:
            entry["name"] = f"port-{i + 1}"
        entry["port"] = number
        entry["protocol"] = protocol or protocols.get(str(number), "TCP")
        if target_port:
            entry["targetPort"] = int(target_port) if re.fullmatch(r"[0-9]+", target_port) else target_port
        else:
            entry["targetPort"] = number
        ports.append(entry)
    spec: dict[str, Any] = {}
    if ports:
        spec["ports"] = ports
    spec["selector"] = chosen
    if type_:
        spec["type"] = type_
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    own_labels = dict(labels) if labels else dict(meta.get("labels") or {})
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _meta(name or meta.get("name"), namespace, own_labels), "spec": spec}


# --- label and annotate ----------------------------------------------------------------------------

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_VALUE = r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"


def _qualified(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    return (re.fullmatch(_NAME, name) is not None
            and (not slash or (len(prefix) <= 253 and re.fullmatch(_PREFIX, prefix) is not None)))


def parse_updates(specs: Sequence[str], what: str = "label") -> tuple[dict[str, str], list[str]]:
    """KEY=VALUE and KEY- as kubectl's label and annotate read them: (to set, to remove)."""
    if not specs:
        raise GenerateError(f"at least one {what} update is required")
    to_set, to_remove = {}, []
    for spec in specs:
        if spec.endswith("-") and "=" not in spec:
            to_remove.append(spec[:-1])
            continue
        key, eq, value = spec.partition("=")
        if not eq or "=" in value and what == "label":
            raise GenerateError(f"invalid {what} spec: {spec}" if what == "label"
                                else f"invalid annotation format: {spec}")
        if not _qualified(key):
            raise GenerateError(f"invalid {what} spec: {spec}" if what == "label"
                                else f"invalid annotation format: {spec}")
        if what == "label" and (len(value) > 63 or re.fullmatch(_VALUE, value) is None):
            raise GenerateError(f'invalid label value: "{spec}": a valid label must be an empty string or consist '
                                f"of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                                f"alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
                                f"for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
        to_set[key] = value
    for key in to_remove:
        if key in to_set:
            raise GenerateError(f"can not both modify and remove the following {what}(s) in the same command: {key}")
    return to_set, to_remove


def updated(current: Mapping[str, str], to_set: Mapping[str, str], to_remove: Sequence[str], overwrite: bool,
            what: str = "label") -> dict[str, str]:
    """`current` with the updates made, or GenerateError as kubectl refuses a change of a value
    without --overwrite."""
    if not overwrite:
        clashes = [(k, current[k]) for k, v in to_set.items() if k in current and current[k] != v]
        if clashes and what == "label":
            raise GenerateError("\n".join(f"'{k}' already has a value ({v}), and --overwrite is false"
                                          for k, v in clashes))
        if clashes:
            raise GenerateError("--overwrite is false but found the following declared annotation(s): "
                                + "; ".join(f"'{k}' already has a value ({v})" for k, v in clashes))
    out = {**current, **to_set}
    for key in to_remove:
        out.pop(key, None)
    return out


def printed(doc: Mapping) -> dict:
    """`doc` as `kubectl ... --dry-run=client -o yaml|json` prints it: keys in order, a null
    creationTimestamp in each metadata, an empty status (a Service's with its loadBalancer)."""
    def walk(value: Any, path: tuple[str, ...]) -> Any:
        if isinstance(value, Mapping):
            out = {k: walk(v, path + (k,)) for k, v in value.items()}
            if path and path[-1] == "metadata":
                out["creationTimestamp"] = None
            return {k: out[k] for k in sorted(out)}
        if isinstance(value, (list, tuple)):
            return [walk(v, path) for v in value]
        return value
    out = walk(dict(doc), ())
    if doc.get("kind") not in ("ConfigMap", "Secret"):  # which have no status
        out["status"] = {"loadBalancer": {}} if doc.get("kind") == "Service" else {}
    return out


# ------------------------------------------------------------------ create configmap / secret

def config_data(kind: str, name: str, literals: Sequence[str], files: Sequence[tuple[str, bytes]]
                ) -> tuple[dict[str, str], dict[str, str]]:
    """`kubectl create configmap|secret generic`'s data from --from-literal=KEY=VALUE and the
    files already read ((key, content) for each --from-file): (data, binaryData). A ConfigMap
    keeps text as it is and other bytes base64 in binaryData; a Secret's data is all base64."""
    from .fields import Invalid
    from .values import config_key

    data: dict[str, str] = {}
    binary: dict[str, str] = {}

    def add(key: str, content: bytes) -> None:
        try:
            config_key(key)
        except Invalid as e:
            raise GenerateError(f"{_go_quote(key)} is not a valid key name for a {kind}: "
                                f"{str(e).split(': ', 2)[-1]}") from None
        if key in data or key in binary:
            where = "Data" if key in data else "BinaryData"
            shown = _go_quote(key) if kind == "ConfigMap" else key
            raise GenerateError(f"cannot add key {shown}, another key by that name already exists in {where} for "
                                f"{kind} {_go_quote(name)}")
        if kind == "Secret":
            data[key] = base64.b64encode(content).decode()
            return
        try:
            data[key] = content.decode("utf-8")
        except UnicodeDecodeError:
            binary[key] = base64.b64encode(content).decode()

    for literal in literals:
        key, eq, value = literal.partition("=")
        if not eq or not key:
            raise GenerateError(f"invalid literal source {literal}, expected key=value")
        add(key, value.encode())
    for key, content in files:
        add(key, content)
    return data, binary


def _go_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_map(name: str, literals: Sequence[str] = (), files: Sequence[tuple[str, bytes]] = (), *,
               namespace: str | None = None) -> dict:
    """kubectl create configmap NAME --from-literal=K=V... --from-file=[KEY=]PATH..."""
    data, binary = config_data("ConfigMap", name, literals, files)
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(name, namespace, None)}
    if data:
        doc["data"] = data
    if binary:
        doc["binaryData"] = binary
    return doc


def secret(name: str, literals: Sequence[str] = (), files: Sequence[tuple[str, bytes]] = (), *,
           type_: str | None = None, namespace: str | None = None) -> dict:
    """kubectl create secret generic NAME --from-literal=K=V... --from-file=[KEY=]PATH... [--type]"""
    data, _ = config_data("Secret", name, literals, files)
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(name, namespace, None)}
    if data:
        doc["data"] = data
    if type_:
        doc["type"] = type_
    return doc


def tls_secret(name: str, cert: bytes, key: bytes, *, namespace: str | None = None) -> dict:
    """kubectl create secret tls NAME --cert=PATH --key=PATH: type kubernetes.io/tls with tls.crt
    and tls.key (each must hold PEM data, as kubectl's key-pair check first asks)."""
    for what, data in (("certificate", cert), ("key", key)):
        if b"-----BEGIN " not in data:
            raise GenerateError(f"failed to load key pair tls: failed to find any PEM data in {what} input")
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(name, namespace, None),
            "data": {"tls.crt": base64.b64encode(cert).decode(), "tls.key": base64.b64encode(key).decode()},
            "type": "kubernetes.io/tls"}
