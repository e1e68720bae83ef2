"""The securityContext fields of a pod and of a container (core/v1), as the API server checks
them, and their model. What they mean for a container's processes is plan.security's."""
from __future__ import annotations

from ..model.objects import SecurityContext
from .fields import IGNORE, Bool, Checked, Ignore, Int, ListOf, Obj, Str

ID = Int(0, 2147483647)  # the API server: "must be between 0 and 2147483647, inclusive"
_NOT_APPLIED = "not applied: kubenet-lab runs its containers without {}"


# Capabilities with which a container is root on this machine, as on a real node.
HOST_ROOT_CAPABILITIES = ("ALL", "SYS_ADMIN", "SYS_PTRACE", "SYS_MODULE", "SYS_RAWIO", "DAC_READ_SEARCH")
_HOST_ROOT = "the container is root on this machine, as on a real node: nothing confines it"


def _check_container(sc: Checked) -> None:
    """The API server's own checks between fields (validation.ValidateSecurityContext), and a
    warning where the manifest asks for what undoes the confinement."""
    if sc.get("privileged"):
        sc.at("privileged").warn(f"privileged: {_HOST_ROOT}")
    wide = [c for c in sc.get("capabilities", {}).get("add", []) if c.upper().removeprefix("CAP_") in
            HOST_ROOT_CAPABILITIES]
    if wide:
        sc.at("capabilities").warn(f"with {', '.join(wide)} {_HOST_ROOT}")
    if sc.get("allowPrivilegeEscalation") is False:
        if sc.get("privileged"):
            sc.at("allowPrivilegeEscalation").error(
                "Invalid value: false: cannot set `allowPrivilegeEscalation` to false and `privileged` to true")
        if "SYS_ADMIN" in [c.upper().removeprefix("CAP_") for c in sc.get("capabilities", {}).get("add", [])]:
            sc.at("allowPrivilegeEscalation").error(
                "Invalid value: false: cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` "
                "CAP_SYS_ADMIN")


_COMMON = {
    "runAsUser": ID, "runAsGroup": ID, "runAsNonRoot": Bool(),
    "seccompProfile": IGNORE, "seLinuxOptions": IGNORE, "appArmorProfile": IGNORE, "windowsOptions": IGNORE,
}

CONTAINER = Obj({
    **_COMMON,
    "privileged": Bool(), "allowPrivilegeEscalation": Bool(), "readOnlyRootFilesystem": Bool(),
    "capabilities": Obj({"add": ListOf(Str()), "drop": ListOf(Str())}),
    "procMount": Ignore(warning=_NOT_APPLIED.format("a choice of /proc mount (each gets the default one)")),
}, post=_check_container)

POD = Obj({
    **_COMMON,
    "supplementalGroups": ListOf(ID), "fsGroup": ID, "fsGroupChangePolicy": IGNORE,
    "supplementalGroupsPolicy": IGNORE, "seLinuxChangePolicy": IGNORE,
    "sysctls": Ignore(warning=_NOT_APPLIED.format("pod sysctls (each pod has the kernel's defaults)")),
})


def _caps(names: list[str]) -> tuple[str, ...]:
    return tuple(n.upper().removeprefix("CAP_") for n in names)


def security_context(sc: Checked | None) -> SecurityContext | None:
    if not sc:
        return None
    caps = sc.get("capabilities", {})
    return SecurityContext(
        privileged=sc.get("privileged"), run_as_user=sc.get("runAsUser"), run_as_group=sc.get("runAsGroup"),
        run_as_non_root=sc.get("runAsNonRoot"), allow_privilege_escalation=sc.get("allowPrivilegeEscalation"),
        read_only_root_filesystem=sc.get("readOnlyRootFilesystem"),
        add=_caps(caps.get("add", [])), drop=_caps(caps.get("drop", [])),
        supplemental_groups=tuple(sc.get("supplementalGroups", ())), fs_group=sc.get("fsGroup"))
