"""What a container's processes may do, from its pod's and its own securityContext, as kubelet
and containerd work it out: the runtime's default capabilities changed by `capabilities`
(ALL first, then single names), every capability when privileged, the user and groups, no_new_privs
when allowPrivilegeEscalation is false, and kubelet's refusal to start a root container under
runAsNonRoot. Pure: the runtime applies it (kernel.confine)."""
from __future__ import annotations

import dataclasses
from typing import Any

from ..model.objects import (DEFAULT_CAPABILITIES, LINUX_CAPABILITIES, Confinement, PlannedContainer, PlannedPod,
                             PodSpec, SecurityContext)

# Every capability Linux has (containerd's list of all).
ALL_CAPABILITIES = LINUX_CAPABILITIES


def capabilities(add: tuple[str, ...], drop: tuple[str, ...]) -> tuple[str, ...]:
    """containerd's order: add ALL, drop ALL, then the single names added, then those dropped."""
    caps = list(ALL_CAPABILITIES if "ALL" in add else DEFAULT_CAPABILITIES)
    if "ALL" in drop:
        caps = []
    for c in add:
        if c != "ALL" and c not in caps:
            caps.append(c)
    return tuple(c for c in caps if c not in drop)


def unknown_capabilities(sc: SecurityContext | None) -> list[str]:
    if sc is None:
        return []
    return [c for c in (*sc.add, *sc.drop) if c != "ALL" and c not in ALL_CAPABILITIES]


def confinement(pod: PodSpec, own: SecurityContext | None, pod_name: str, uid: str, container: str
                ) -> Confinement:
    psc = pod.security or SecurityContext()
    sc = own or SecurityContext()

    def pick(name: str) -> Any:  # the container's setting, else the pod's
        value = getattr(sc, name)
        return value if value is not None else getattr(psc, name)

    user, group, non_root = pick("run_as_user"), pick("run_as_group"), pick("run_as_non_root")
    refused = None
    who = f'(pod: "{pod_name}({uid})", container: {container})'
    if non_root and user is None:
        refused = f"container has runAsNonRoot and image will run as root {who}"
    elif non_root and user == 0:
        refused = f"container's runAsUser breaks non-root policy {who}"
    elif bad := unknown_capabilities(own):
        refused = f'failed to create containerd container: unknown capability "CAP_{bad[0]}"'
    groups = [*psc.supplemental_groups, *([psc.fs_group] if psc.fs_group is not None else [])]
    if sc.privileged:
        return Confinement(uid=user or 0, gid=group or 0, groups=tuple(dict.fromkeys(groups)),
                           capabilities=ALL_CAPABILITIES, privileged=True,
                           read_only_root=bool(sc.read_only_root_filesystem), refused=refused)
    return Confinement(uid=user or 0, gid=group or 0, groups=tuple(dict.fromkeys(groups)),
                       capabilities=capabilities(sc.add, sc.drop),
                       no_new_privs=sc.allow_privilege_escalation is False,
                       read_only_root=bool(sc.read_only_root_filesystem), refused=refused)


def confine_pod(pod: PlannedPod, spec: PodSpec) -> PlannedPod:
    """`pod` with each container's confinement worked out from `spec`."""
    if spec.security is None and not any(c.security for c in (*spec.containers, *spec.init_containers)):
        return pod
    own = {c.name: c.security for c in (*spec.containers, *spec.init_containers)}

    def confined(cs: tuple[PlannedContainer, ...]) -> tuple[PlannedContainer, ...]:
        return tuple(dataclasses.replace(c, confinement=confinement(spec, own.get(c.name),
                                                                     f"{pod.name}_{pod.namespace}", pod.uid, c.name))
                     for c in cs)
    return dataclasses.replace(pod, containers=confined(pod.containers), init_containers=confined(pod.init_containers))
