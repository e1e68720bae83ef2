"""kubectl's imperative verbs on a running lab: run, create deployment, expose, label, annotate,
set image.

Each makes or edits the objects the lab holds as kubectl's generators and patches would
(manifests.generate) and goes through change.change_objects, as apply does: the whole lab is
planned again and only what differs is built. A new object is kept with the place `<kubectl
VERB>`:1, so that later messages about it point somewhere.

Labels change in place: a pod's uid does not cover its labels, so relabelling a running pod
keeps its namespace and processes and only moves it in or out of Services' endpoints. A pod a
controller owns is not an object of the lab: its new labels are kept with the plan's
allocations (`Allocations.pod_labels`) while they still match its controller's selector; a
ReplicaSet's or ReplicationController's pod relabelled out of the selector is orphaned, as the
controller releases it on a cluster: it becomes a bare Pod object of the lab (same name,
address, namespace and processes) and the controller makes a replacement under a new name.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import time
from typing import Callable, Mapping, Sequence

from ..errors import InputError
from ..manifests import generate, store
from ..model.objects import Plan, PlannedPod
from ..plan import replicas
from ..plan.naming import check_lab_name
from . import query
from .change import ChangeResult, NothingToDo, PLURALS, change_objects, kind_of, not_found

Matcher = Callable[[Mapping[str, str]], bool]


class Refused(Exception):
    """What kubectl says when it refuses (on stderr, exit 1); the lab is left as it is."""


def _exists(kind: str, name: str) -> str:
    return f'Error from server (AlreadyExists): {PLURALS[kind]} "{name}" already exists'


def _new(doc: dict, verb: str) -> store.Stored:
    raw = generate.tree(doc)
    key = store.identify(raw)
    assert key is not None
    return store.Stored(*key, raw, f"<kubectl {verb}>", 1)


def _create(lab: str, docs: Callable[[Plan, list[store.Stored]], list[dict]], verb: str, said: str) -> ChangeResult:
    """Objects `docs` makes (given the plan and the held objects) added to the lab, each refused
    when its name is taken."""
    out = ChangeResult()

    def edit(previous: Plan, held: list[store.Stored]) -> tuple[list[store.Stored], Plan]:
        try:
            made = [_new(d, verb) for d in docs(previous, held)]
        except generate.GenerateError as e:
            raise Refused(f"error: {e}") from None
        for s in made:
            if store.find(held, s.kind, s.namespace, s.name) is not None or (
                    s.kind == "Pod"
                    and any(p.key == f"{s.namespace}/{s.name}" for p in previous.pods + previous.pending)):
                raise Refused(_exists(s.kind, s.name))
        out.lines += [f"{s.ref} {said}" for s in made]
        return held + made, previous

    try:
        out.up = change_objects(lab, edit, verb, keep_warnings=lambda w: w.startswith(f"<kubectl {verb}>"))
    except Refused as e:
        out.lines, out.errors = [], [str(e)]
    return out


def _ns(namespace: str) -> str | None:
    return None if namespace == "default" else namespace


# ------------------------------------------------------------------------------------------- run

def run(lab: str, name: str, image: str, namespace: str = "default", *, port: int | None = None,
        labels: str | None = None, restart: str = "Always", argv: Sequence[str] = (), command: bool = False,
        env: Sequence[str] = (), annotations: Sequence[str] = (), expose: bool = False, stdin: bool = False,
        tty: bool = False) -> ChangeResult:
    """kubectl run: a bare pod (and with --expose a Service of the same name for its --port)."""
    check_lab_name(lab)
    try:
        pod = generate.run_pod(name, image, namespace=_ns(namespace), port=port, labels=generate.parse_pairs(labels),
                               restart=restart, argv=argv, command=command, env=generate.parse_env(env),
                               annotations=dict(a.partition("=")[::2] for a in annotations), stdin=stdin, tty=tty)
        docs = [pod]
        if expose:
            if port is None:
                raise generate.GenerateError("--port must be set when exposing a service")
            docs = [generate.service("Pod", pod, port=str(port), namespace=_ns(namespace)), pod]
    except generate.GenerateError as e:
        raise InputError(str(e)) from None
    return _create(lab, lambda previous, held: docs, "run", "created")


def finished(status: Mapping | None) -> bool:
    """Whether a container's status (the supervisor's) says it has ended once: terminated, or
    restarted or waiting to be (restartPolicy Always or OnFailure)."""
    if not status:
        return False
    return (status.get("state") == "terminated" or bool(status.get("restarts"))
            or (status.get("state") == "waiting" and status.get("exitCode") is not None))


def follow(lab: str, namespace: str, name: str, out: Callable[[str], None], poll: float = 0.1
           ) -> tuple[int, str | None]:
    """What `kubectl run -i` shows of a pod: its (one) container's output as it comes, until
    the container ended. -> (its exit code, its reason)."""
    key, shown = f"{namespace}/{name}", 0
    while True:
        container = next(iter((query.pod_status(lab).get(key) or {}).get("containers", {}).values()), None)
        done = finished(container)
        text = query.logs(lab, name, namespace, None)
        if len(text) > shown:
            out(text[shown:])
            shown = len(text)
        if done:
            code = container.get("exitCode")
            if code is None:
                code = container.get("lastExitCode", 0)
            return int(code or 0), container.get("reason")
        time.sleep(poll)


# ----------------------------------------------------------------------------- create deployment

def create_deployment(lab: str, name: str, images: Sequence[str], namespace: str = "default", *,
                      replicas: int = 1, port: int | None = None) -> ChangeResult:
    check_lab_name(lab)
    try:
        doc = generate.deployment(name, images, namespace=_ns(namespace), replicas=replicas, port=port)
    except generate.GenerateError as e:
        raise InputError(str(e)) from None
    return _create(lab, lambda previous, held: [doc], "create", "created")


# -------------------------------------------------------------------- create configmap / secret

def file_sources(specs: Sequence[str]) -> list[tuple[str, bytes]]:
    """--from-file=[KEY=]PATH, as kubectl reads them: a file under KEY (default: its name), or
    every regular file of a directory under its own name."""
    out = []
    for spec in specs:
        key, eq, path = spec.partition("=")
        if not eq:
            key, path = os.path.basename(spec.rstrip("/")) or spec, spec
        elif not key:
            raise InputError(f"key name for file path {path} missing")
        elif not path:
            raise InputError(f"file path for key name {key} missing")
        if os.path.isdir(path):
            if eq:
                raise InputError("cannot give a key name for a directory path")
            for entry in sorted(os.scandir(path), key=lambda e: e.name):
                if entry.is_file(follow_symlinks=True):
                    out.append((entry.name, _read_bytes(entry.path)))
            continue
        out.append((key, _read_bytes(path)))
    return out


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise InputError(f"error reading {path}: {e.strerror.lower() if e.strerror else e}") from None


def create_config_map(lab: str, name: str, literals: Sequence[str] = (), files: Sequence[str] = (),
                      namespace: str = "default") -> ChangeResult:
    """kubectl create configmap NAME --from-literal=K=V... --from-file=[KEY=]PATH..."""
    check_lab_name(lab)
    read = file_sources(files)
    try:
        doc = generate.config_map(name, literals, read, namespace=_ns(namespace))
    except generate.GenerateError as e:
        raise InputError(str(e)) from None
    return _create(lab, lambda previous, held: [doc], "create", "created")


def create_secret(lab: str, name: str, literals: Sequence[str] = (), files: Sequence[str] = (),
                  type_: str | None = None, namespace: str = "default") -> ChangeResult:
    """kubectl create secret generic NAME --from-literal=K=V... --from-file=[KEY=]PATH... [--type]"""
    check_lab_name(lab)
    read = file_sources(files)
    try:
        doc = generate.secret(name, literals, read, type_=type_, namespace=_ns(namespace))
    except generate.GenerateError as e:
        raise InputError(str(e)) from None
    return _create(lab, lambda previous, held: [doc], "create", "created")


def create_tls_secret(lab: str, name: str, cert: str, key: str, namespace: str = "default") -> ChangeResult:
    """kubectl create secret tls NAME --cert=PATH --key=PATH"""
    check_lab_name(lab)
    try:
        doc = generate.tls_secret(name, _read_bytes(cert), _read_bytes(key), namespace=_ns(namespace))
    except generate.GenerateError as e:
        raise InputError(str(e)) from None
    return _create(lab, lambda previous, held: [doc], "create", "created")


# ---------------------------------------------------------------------------------------- expose

EXPOSABLE = ("Pod", "Service", "Deployment", "ReplicaSet", "ReplicationController")


def expose(lab: str, resource: str, name: str, namespace: str = "default", *, service_name: str | None = None,
           port: str | None = None, target_port: str | None = None, type_: str | None = None,
           protocol: str | None = None, labels: str | None = None, selector: str | None = None,
           cluster_ip: str | None = None) -> ChangeResult:
    """kubectl expose KIND NAME: a Service selecting what the object selects."""
    check_lab_name(lab)
    kind = kind_of(resource)
    if kind not in EXPOSABLE:
        raise InputError(f"cannot expose a {kind}")
    try:
        own_labels = generate.parse_pairs(labels)
        chosen = generate.parse_pairs(selector)
    except generate.GenerateError as e:
        raise InputError(str(e)) from None

    def docs(previous: Plan, held: list[store.Stored]) -> list[dict]:
        found = store.find(held, kind, namespace, name)
        if found is not None:
            doc = found.data
        elif (pod := _owned_pod(previous, kind, namespace, name)) is not None:
            doc = _pod_doc(held, previous, pod)
        else:
            raise Refused(not_found(kind, name))
        return [generate.service(kind, doc, name=service_name, port=port, target_port=target_port, type_=type_,
                                 protocol=protocol, labels=own_labels, selector=chosen, namespace=_ns(namespace),
                                 cluster_ip=cluster_ip)]
    return _create(lab, docs, "expose", "exposed")


def _owned_pod(plan: Plan, kind: str, namespace: str, name: str) -> PlannedPod | None:
    if kind != "Pod":
        return None
    return next((p for p in plan.pods if p.key == f"{namespace}/{name}" and p.owner), None)


# -------------------------------------------------------------------------------- label, annotate

def _selected(plan: Plan, held: list[store.Stored], kind: str, namespace: str, names: Sequence[str],
              matcher: Matcher | None, everything: bool) -> tuple[list[store.Stored | PlannedPod], list[str]]:
    """The objects named (or selected by -l / --all) in kubectl's order: stored objects and, for
    pods, the pods controllers own. -> (found, NotFound messages)."""
    cluster_scoped = kind in ("Node", "Namespace")
    stored = [s for s in held if s.kind == kind and (cluster_scoped or s.namespace == namespace)]
    owned: list[PlannedPod] = [p for p in plan.pods if kind == "Pod" and p.owner and p.namespace == namespace]
    if matcher is None and not everything:
        found, missing = [], []
        for name in names:
            obj = next((s for s in stored if s.name == name), None) or next((p for p in owned if p.name == name), None)
            if obj is None:
                missing.append(not_found(kind, name))
            else:
                found.append(obj)
        return found, missing
    pool: list = sorted([*stored, *owned], key=lambda o: o.name)
    if matcher is not None:
        pool = [o for o in pool if matcher(_labels(o))]
    return pool, []


def _labels(obj: store.Stored | PlannedPod) -> dict[str, str]:
    if isinstance(obj, PlannedPod):
        return dict(obj.labels)
    return dict(((obj.data.get("metadata") or {}).get("labels")) or {})


def _annotations(obj: store.Stored) -> dict[str, str]:
    return dict(((obj.data.get("metadata") or {}).get("annotations")) or {})


def _ref(kind: str, obj: store.Stored | PlannedPod) -> str:
    return obj.ref if isinstance(obj, store.Stored) else f"pod/{obj.name}"


def _with_default_nodes(held: list[store.Stored], plan: Plan) -> list[store.Stored]:
    """The lab's nodes as objects of their own when it runs on the default ones (no Node
    objects), so that one of them can be labelled; the same nodes in the same order."""
    if any(s.kind == "Node" for s in held):
        return held
    return held + [_new({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n.name}}, "label")
                   for n in plan.nodes]


def label(lab: str, resource: str, names: Sequence[str], updates: Sequence[str], namespace: str = "default", *,
          overwrite: bool = False, matcher: Matcher | None = None, everything: bool = False,
          what: str = "label") -> ChangeResult:
    """kubectl label (what="label") and kubectl annotate (what="annotation")."""
    check_lab_name(lab)
    kind = kind_of(resource)
    try:
        to_set, to_remove = generate.parse_updates(updates, what)
    except generate.GenerateError as e:
        raise InputError(str(e)) from None
    if not names and matcher is None and not everything:
        raise InputError("resource(s) were provided, but no name was specified")
    if names and (matcher is not None or everything):
        raise InputError("cannot set --all and --selector at the same time" if matcher and everything
                         else "name cannot be provided when a selector is specified")
    out = ChangeResult()
    verb = "labeled" if what == "label" else "annotated"

    def edit(previous: Plan, held: list[store.Stored]) -> tuple[list[store.Stored], Plan]:
        if kind == "Node":
            held = _with_default_nodes(held, previous)
        found, missing = _selected(previous, held, kind, namespace, names, matcher, everything)
        out.errors += missing
        changed = False
        for obj in found:
            try:
                if isinstance(obj, PlannedPod):
                    if what != "label":
                        raise generate.GenerateError(
                            f"pod {obj.name} is {obj.owner}'s: kubenet-lab keeps no annotations of a controller's "
                            f"pods (annotate its template with apply)")
                    new = generate.updated(obj.labels, to_set, to_remove, overwrite)
                    if new != dict(obj.labels):
                        held, previous = _relabel_owned(held, previous, obj, new)
                        changed = True
                    out.lines.append(f"pod/{obj.name} {verb if new != dict(obj.labels) else 'not ' + verb}")
                    continue
                field = "labels" if what == "label" else "annotations"
                current = _labels(obj) if what == "label" else _annotations(obj)
                new = generate.updated(current, to_set, to_remove, overwrite, what)
            except generate.GenerateError as e:
                out.errors.append(f"error: {e}")
                continue
            except Refused as e:
                out.errors.append(str(e))
                continue
            if what == "label" and new == current:
                out.lines.append(f"{obj.ref} not {verb}")
                continue
            held = [store.edited(s, ("metadata", field), generate.tree(new, s.line)) if s.key == obj.key else s
                    for s in held]
            changed = True
            out.lines.append(f"{obj.ref} {verb}")
        if not changed:
            raise NothingToDo()
        return held, previous

    out.up = change_objects(lab, edit, what)
    if not out.lines and not out.errors and (matcher is not None or everything):
        out.errors.append("No resources found" + ("" if kind in ("Node", "Namespace") else f" in {namespace} namespace")
                          + ".")
    return out


def _owner_doc(held: list[store.Stored], plan: Plan, pod: PlannedPod) -> store.Stored | None:
    """The object whose template made `pod`: its ReplicaSet's Deployment, or the controller."""
    kind, name = pod.owner.split("/", 1)
    rs = next((w for w in plan.workloads if w.kind == kind and w.namespace == pod.namespace and w.name == name), None)
    if rs is not None and rs.owner:
        kind, name = rs.owner.split("/", 1)
    return store.find(held, kind, pod.namespace, name)


def _pod_doc(held: list[store.Stored], plan: Plan, pod: PlannedPod, labels: Mapping[str, str] | None = None) -> dict:
    """A controller's pod as a Pod document: its controller's template, its name and labels."""
    kind, name = pod.owner.split("/", 1)
    version = plan.allocations.rs_templates.get(f"{pod.namespace}/{name}") if kind == "ReplicaSet" else None
    if version is not None:  # a Deployment's ReplicaSet, old or current: the template it makes pods of
        template = version.template_raw
    else:
        owner = _owner_doc(held, plan, pod)
        if owner is None:
            raise Refused(f"error: the controller of pod {pod.name} ({pod.owner}) is not an object of the lab")
        template = owner.data.get("spec", {}).get("template", {})
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod.name, **({"namespace": pod.namespace} if pod.namespace != "default" else {}),
                         "labels": dict(pod.labels if labels is None else labels)},
            "spec": copy.deepcopy(template.get("spec", {}))}


ORPHANED_BY = ("ReplicaSet", "ReplicationController")


def _relabel_owned(held: list[store.Stored], plan: Plan, pod: PlannedPod, new: dict[str, str]
                   ) -> tuple[list[store.Stored], Plan]:
    """A controller's pod relabelled: its labels kept with the allocations while its controller
    still selects it; else (a ReplicaSet's or ReplicationController's pod) orphaned: a bare Pod
    object of its own, its index let go, so that the controller makes a replacement."""
    kind, name = pod.owner.split("/", 1)
    owner = next((w for w in plan.workloads if w.kind == kind and w.namespace == pod.namespace and w.name == name),
                 None)
    alloc = plan.allocations
    others = {k: v for k, v in alloc.pod_labels.items() if k != pod.key}
    if owner is None or owner.selector.matches(new):
        return held, dataclasses.replace(plan, allocations=dataclasses.replace(
            alloc, pod_labels={**others, pod.key: new}))
    if kind not in ORPHANED_BY:
        raise generate.GenerateError(
            f"pod {pod.name} would no longer match the selector of {pod.owner}; kubenet-lab orphans only the pods "
            f"of ReplicaSets and ReplicationControllers (a {kind}'s controller would make a pod of the same name)")
    doc = _pod_doc(held, plan, pod, new)
    base, key = name, f"{pod.namespace}/{pod.owner}"
    index = replicas.index_of(base, key, pod.name, alloc.replicas.get(key, ()))
    kept = replicas.without_index(alloc.replicas, key, index) if index is not None else dict(alloc.replicas)
    plan = dataclasses.replace(plan, allocations=dataclasses.replace(alloc, pod_labels=others, replicas=kept))
    return held + [_new(doc, "label")], plan


# ------------------------------------------------------------------------------------- set image

TEMPLATED = ("Deployment", "ReplicaSet", "ReplicationController", "StatefulSet", "DaemonSet", "Job")


def set_image(lab: str, resource: str, names: Sequence[str], images: Mapping[str, str],
              namespace: str = "default") -> ChangeResult:
    """kubectl set image KIND/NAME CONTAINER=IMAGE...: the stored pod (template) edited; `*`
    names every container. A changed template is a new pod-template-hash: new pods."""
    check_lab_name(lab)
    kind = kind_of(resource)
    if kind != "Pod" and kind not in TEMPLATED:
        raise InputError(f"error: {kind} is not supported by set image")
    if not images:
        raise InputError("at least one image update is required")
    out = ChangeResult()

    def edit(previous: Plan, held: list[store.Stored]) -> tuple[list[store.Stored], Plan]:
        changed = False
        for name in names:
            found = store.find(held, kind, namespace, name)
            if found is None:
                if _owned_pod(previous, kind, namespace, name) is not None:
                    out.errors.append(f"error: pod {name} is owned by a controller: set the image of its "
                                      f"controller's template instead")
                else:
                    out.errors.append(not_found(kind, name))
                continue
            data = copy.deepcopy(found.data)
            spec = data.get("spec") if kind == "Pod" else data.get("spec", {}).get("template", {}).get("spec")
            containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])] \
                if isinstance(spec, dict) else []
            missing = [c for c in images if c != "*" and not any(x.get("name") == c for x in containers)]
            if missing:
                out.errors.append(f'error: unable to find container named "{missing[0]}"')
                continue
            for x in containers:
                image = images.get(x.get("name"), images.get("*"))
                if image is not None and x.get("image") != image:
                    x["image"] = image
                    changed = True
            held = [dataclasses.replace(s, data=data) if s.key == found.key else s for s in held]
            out.lines.append(f"{found.ref} image updated")
        if not changed:
            raise NothingToDo()
        return held, previous

    out.up = change_objects(lab, edit, "set image")
    return out


def parse_images(pairs: Sequence[str]) -> dict[str, str]:
    """CONTAINER=IMAGE pairs of `kubectl set image`."""
    out = {}
    for pair in pairs:
        name, eq, image = pair.partition("=")
        if not eq or not name or not image:
            raise InputError(f"invalid image update {pair!r}: expected CONTAINER_NAME=CONTAINER_IMAGE")
        out[name] = image
    return out
