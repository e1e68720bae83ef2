"""kubectl rollout: status, restart, undo and history of a Deployment.

restart and undo edit the Deployment the lab holds (a restartedAt annotation on its template; the
template of an earlier revision), which makes a new ReplicaSet that the Deployment controller
(plan.rollout, driven by the supervisor's readiness sync) rolls out; status watches the lab's plan
and its pods' readiness until the rollout is done, in kubectl's words.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable, Iterator

from ..errors import InputError, LabError
from ..manifests import store
from ..model.objects import Plan, PlannedWorkload
from .. import output
from . import change, query


def _deployment(resource: str, name: str | None) -> str:
    if name is None and "/" in resource:
        resource, name = resource.split("/", 1)
    if change.kind_of(resource) != "Deployment":
        raise InputError(f"{resource} is not supported here: kubenet-lab rolls out deployments only")
    if not name:
        raise InputError("required resource not specified")
    return name


def _held(held: list[store.Stored], name: str, namespace: str) -> store.Stored:
    found = store.find(held, "Deployment", namespace, name)
    if found is None:
        raise LabError(change.not_found("Deployment", name))
    return found


def restart(lab: str, resource: str, name: str | None, namespace: str = "default",
            now: Callable[[], float] = time.time) -> change.ChangeResult:
    """kubectl rollout restart: the template annotated with the time, so every pod is replaced."""
    name = _deployment(resource, name)
    out = change.ChangeResult()
    stamp = datetime.fromtimestamp(now(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def edit(previous: Plan, held: list[store.Stored]):
        found = _held(held, name, namespace)
        path = ("spec", "template", "metadata", "annotations", "kubectl.kubernetes.io/restartedAt")
        out.lines.append(f"{found.ref} restarted")
        return [store.edited(s, path, stamp) if s.key == found.key else s for s in held], previous

    out.up = change.change_objects(lab, edit, "rollout")
    return out


def _revisions(plan: Plan, namespace: str, name: str) -> list[PlannedWorkload]:
    return sorted((w for w in plan.workloads if w.kind == "ReplicaSet" and w.namespace == namespace
                   and w.owner == f"Deployment/{name}"), key=lambda w: w.revision)


def undo(lab: str, resource: str, name: str | None, namespace: str = "default",
         to_revision: int = 0) -> change.ChangeResult:
    """kubectl rollout undo: the Deployment's template set back to that of the revision before
    the current one (or --to-revision)."""
    name = _deployment(resource, name)
    out = change.ChangeResult()

    def edit(previous: Plan, held: list[store.Stored]):
        found = _held(held, name, namespace)
        deploy = next((w for w in previous.workloads if w.kind == "Deployment" and w.key == f"{namespace}/{name}"),
                      None)
        current = deploy.revision if deploy else 0
        versions = {v.revision: v for v in _revisions(previous, namespace, name)}
        if to_revision:
            target = versions.get(to_revision)
            if target is None:
                raise LabError(f"unable to find specified revision {to_revision} in history")
        else:
            earlier = [r for r in versions if r < current]
            if not earlier:
                raise LabError(f'no rollout history found for deployment "{name}"')
            target = versions[max(earlier)]
        template = previous.allocations.rs_templates[f"{namespace}/{target.name}"].template_raw
        if target.revision == current:
            out.lines.append(f"{found.ref} skipped rollback (current template already matches revision "
                             f"{target.revision})")
            raise change.NothingToDo()
        out.lines.append(f"{found.ref} rolled back")
        return [store.edited(s, ("spec", "template"), template) if s.key == found.key else s for s in held], previous

    out.up = change.change_objects(lab, edit, "rollout")
    return out


def history(lab: str, resource: str, name: str | None, namespace: str = "default") -> str:
    """kubectl rollout history: the Deployment's revisions."""
    name = _deployment(resource, name)
    plan = query.running_plan(lab)
    if not any(w.kind == "Deployment" and w.key == f"{namespace}/{name}" for w in plan.workloads):
        raise LabError(change.not_found("Deployment", name))
    rows = [[str(w.revision), "<none>"] for w in _revisions(plan, namespace, name)]
    return f"deployment.apps/{name} \n" + output.table(["REVISION", "CHANGE-CAUSE"], rows) + "\n"


def progress(plan: Plan, status: dict, namespace: str, name: str) -> tuple[str, bool]:
    """kubectl rollout status's line for the Deployment now, and whether the rollout is done
    (deployment's status viewer: updated, then old pending termination, then available)."""
    deploy = next((w for w in plan.workloads if w.kind == "Deployment" and w.key == f"{namespace}/{name}"), None)
    if deploy is None:
        raise LabError(change.not_found("Deployment", name))
    st = output.workload_status(plan, deploy, status)
    waiting = f'Waiting for deployment "{name}" rollout to finish: '
    if st.updated < deploy.replicas:
        return waiting + f"{st.updated} out of {deploy.replicas} new replicas have been updated...", False
    if st.current > st.updated:
        return waiting + f"{st.current - st.updated} old replicas are pending termination...", False
    if st.updated_ready < st.updated:
        return waiting + f"{st.updated_ready} of {st.updated} updated replicas are available...", False
    return f'deployment "{name}" successfully rolled out', True


def status(lab: str, resource: str, name: str | None, namespace: str = "default", watch: bool = True,
           timeout: float = 0, interval: float = 0.2) -> Iterator[str]:
    """The lines kubectl rollout status prints, each once, until done (or timeout, an error)."""
    name = _deployment(resource, name)
    deadline = time.monotonic() + timeout if timeout else None
    last = None
    while True:
        plan = query.running_plan(lab)
        pods = query.pod_status(lab)
        line, done = progress(query.existing(plan, pods), pods, namespace, name)
        if line != last:
            yield line
            last = line
        if done or not watch:
            return
        if deadline is not None and time.monotonic() > deadline:
            raise LabError("timed out waiting for the condition")
        time.sleep(interval)
