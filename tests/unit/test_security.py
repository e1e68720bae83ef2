"""A container's confinement from its pod's and its own securityContext (plan.security), as
kubelet and containerd work it out, and the API server's checks of those fields."""
from __future__ import annotations

import textwrap

import pytest

from kubenet_lab.errors import InputError
from kubenet_lab.manifests import load_model
from kubenet_lab.model.objects import DEFAULT_CAPABILITIES, Confinement, PodSpec, SecurityContext
from kubenet_lab.plan.cluster import make_plan
from kubenet_lab.plan.security import ALL_CAPABILITIES, capabilities, confinement


def conf(pod: SecurityContext | None = None, own: SecurityContext | None = None) -> Confinement:
    return confinement(PodSpec(security=pod), own, "p_default", "uid-1", "c")


def test_the_default_is_root_with_containerds_fourteen_capabilities():
    c = conf()
    assert (c.uid, c.gid, c.groups, c.no_new_privs, c.privileged, c.refused) == (0, 0, (), False, False, None)
    assert set(c.capabilities) == set(DEFAULT_CAPABILITIES) and len(DEFAULT_CAPABILITIES) == 14
    assert "NET_ADMIN" not in c.capabilities and "SYS_ADMIN" not in c.capabilities


@pytest.mark.parametrize("add, drop, want", [
    (("NET_ADMIN",), (), set(DEFAULT_CAPABILITIES) | {"NET_ADMIN"}),
    ((), ("ALL",), set()),
    (("NET_BIND_SERVICE",), ("ALL",), {"NET_BIND_SERVICE"}),  # ALL dropped first, then the single add
    ((), ("NET_RAW", "KILL"), set(DEFAULT_CAPABILITIES) - {"NET_RAW", "KILL"}),
    (("ALL",), ("SYS_ADMIN",), set(ALL_CAPABILITIES) - {"SYS_ADMIN"}),
    (("NET_ADMIN",), ("NET_ADMIN",), set(DEFAULT_CAPABILITIES)),  # a single drop wins over a single add
])
def test_capabilities_in_containerds_order(add, drop, want):
    assert set(capabilities(add, drop)) == want


def test_the_containers_fields_win_over_the_pods():
    c = conf(SecurityContext(run_as_user=2000, run_as_group=3000, supplemental_groups=(4000,), fs_group=5000),
             SecurityContext(run_as_user=1000, allow_privilege_escalation=False, read_only_root_filesystem=True))
    assert (c.uid, c.gid, c.groups, c.no_new_privs, c.read_only_root) == (1000, 3000, (4000, 5000), True, True)


def test_privileged_has_every_capability():
    c = conf(own=SecurityContext(privileged=True))
    assert c.privileged and c.capabilities == ALL_CAPABILITIES and not c.no_new_privs


def test_run_as_non_root_is_refused_with_kubelets_words():
    assert conf(SecurityContext(run_as_non_root=True)).refused == (
        'container has runAsNonRoot and image will run as root (pod: "p_default(uid-1)", container: c)')
    assert conf(SecurityContext(run_as_non_root=True), SecurityContext(run_as_user=0)).refused == (
        'container\'s runAsUser breaks non-root policy (pod: "p_default(uid-1)", container: c)')
    assert conf(SecurityContext(run_as_non_root=True, run_as_user=1000)).refused is None


def test_an_unknown_capability_is_refused_at_start_as_containerd_refuses_it():
    assert conf(own=SecurityContext(add=("NET_ADMN",))).refused == (
        'failed to create containerd container: unknown capability "CAP_NET_ADMN"')


def pod_yaml(security: str, pod_security: str = "") -> str:
    return textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
        %s  containers:
          - name: c
            image: busybox
            command: [sleep, infinity]
        %s""") % (pod_security, security)


def test_the_manifest_reaches_the_plan(tmp_path):
    (tmp_path / "p.yaml").write_text(pod_yaml(
        "    securityContext: {runAsUser: 1000, capabilities: {add: [CAP_NET_ADMIN], drop: [net_raw]}}\n",
        "  securityContext: {runAsGroup: 7, supplementalGroups: [8]}\n"))
    plan = make_plan(load_model([str(tmp_path / "p.yaml")]), "lab")
    c = plan.pod("default/p").containers[0].confinement
    assert (c.uid, c.gid, c.groups) == (1000, 7, (8,))
    assert "NET_ADMIN" in c.capabilities and "NET_RAW" not in c.capabilities


@pytest.mark.parametrize("security, message", [
    ("    securityContext: {privileged: true, allowPrivilegeEscalation: false}\n",
     "p.yaml:9: spec.containers[0].securityContext.allowPrivilegeEscalation: Invalid value: false: cannot set "
     "`allowPrivilegeEscalation` to false and `privileged` to true"),
    ("    securityContext: {allowPrivilegeEscalation: false, capabilities: {add: [SYS_ADMIN]}}\n",
     "p.yaml:9: spec.containers[0].securityContext.allowPrivilegeEscalation: Invalid value: false: cannot set "
     "`allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN"),
    ("    securityContext: {runAsUser: -1}\n",
     "p.yaml:9: spec.containers[0].securityContext.runAsUser:"),
    ("    securityContext: {runAsUsr: 1}\n",
     "p.yaml:9: spec.containers[0].securityContext.runAsUsr: unknown field (did you mean 'runAsUser'?)"),
])
def test_the_api_servers_checks(tmp_path, monkeypatch, security, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(pod_yaml(security))
    with pytest.raises(InputError) as err:
        load_model(["p.yaml"])
    assert any(p.startswith(message) for p in err.value.problems), err.value.problems


def test_what_undoes_the_confinement_is_warned_about(tmp_path, monkeypatch):
    from kubenet_lab.manifests import load_model

    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(pod_yaml(
        "    securityContext: {privileged: true, capabilities: {add: [NET_ADMIN, CAP_SYS_PTRACE]}}\n"))
    warnings = load_model(["p.yaml"]).warnings
    assert warnings == (
        "p.yaml:9: spec.containers[0].securityContext.privileged: privileged: the container is root on this "
        "machine, as on a real node: nothing confines it",
        "p.yaml:9: spec.containers[0].securityContext.capabilities: with CAP_SYS_PTRACE the container is root on "
        "this machine, as on a real node: nothing confines it")
    (tmp_path / "p.yaml").write_text(pod_yaml("    securityContext: {capabilities: {add: [NET_ADMIN]}}\n"))
    assert load_model(["p.yaml"]).warnings == ()
