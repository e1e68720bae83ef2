"""Pod hostnames and headless Services' DNS, for real: spec.hostname and spec.subdomain give a
plain pod (and every replica of a Deployment whose template sets them) its UTS hostname, kubelet's
hosts line and the record `<hostname>.<subdomain>.<ns>.svc.cluster.local`; the cluster DNS
answers a headless Service with its ready pods only (a failing readiness probe takes one out of
its A, SRV and hostname records) unless the Service has publishNotReadyAddresses. With
setHostnameAsFQDN the hostname is the FQDN, and one longer than the kernel holds keeps the pod
ContainerCreating, as kubelet keeps it."""
from __future__ import annotations

import json

import pytest

from .conftest import Lab, lab_namespaces, new_lab_name, torn_down, wait_for

ZONE = "cluster.local"
# db-x2's exec probe reads a marker file in the test's directory (a hostPath volume at the same
# path): it fails until the test makes the file.
MANIFESTS = """
apiVersion: kubenet-lab.dev/v1alpha1
kind: Cluster
allowHostPath: true
---
apiVersion: v1
kind: Pod
metadata: {name: db-x1, labels: {app: db}}
spec:
  nodeName: node1
  hostname: db-a
  subdomain: dbs
  containers: [{name: db, image: busybox, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-x2, labels: {app: db}}
spec:
  nodeName: node2
  hostname: db-b
  subdomain: dbs
  containers:
  - name: db
    image: busybox
    command: [sleep, "3600"]
    readinessProbe: {exec: {command: [cat, "{dir}/ready"]}, periodSeconds: 1}
    volumeMounts: [{name: dir, mountPath: "{dir}"}]
  volumes: [{name: dir, hostPath: {path: "{dir}"}}]
---
apiVersion: v1
kind: Service
metadata: {name: dbs}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: dbs-all}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      hostname: web
      subdomain: webs
      containers: [{name: web, image: nginx, ports: [{name: http, containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: webs}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: fq-short}
spec:
  hostname: fq
  subdomain: dbs
  setHostnameAsFQDN: true
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: fq-long, labels: {app: db}}  # its FQDN has 76 characters: more than the kernel's
# hostname holds, so it never has a sandbox, nor an address: no endpoint of dbs or dbs-all
spec:
  hostname: a-rather-long-hostname-for-this-pod
  subdomain: long-subdomain
  setHostnameAsFQDN: true
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
"""

# `python3 -c RESOLVE NAME`: the addresses the pod's resolver (getaddrinfo, through its
# resolv.conf) gives for NAME, sorted, or "unknown" when the name does not resolve.
RESOLVE = """
import socket, sys
try:
    print(" ".join(sorted({a[4][0] for a in socket.getaddrinfo(sys.argv[1], 5432, socket.AF_INET,
                                                                socket.SOCK_STREAM)})))
except socket.gaierror:
    print("unknown")
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory, host_before):
    tmp = tmp_path_factory.mktemp("hostnames")
    (tmp / "lab.yaml").write_text(MANIFESTS.replace("{dir}", str(tmp)))
    lab = Lab(new_lab_name("hn"))
    lab.dir = tmp
    with torn_down(lab.name):
        lab.up = lab("up", str(tmp / "lab.yaml"))
        yield lab
    assert lab_namespaces(lab.name) == []


def resolve(lab: Lab, name: str) -> list[str]:
    out = lab.exec("client", "python3", "-c", RESOLVE, name).stdout.split()
    return [] if out == ["unknown"] else out


def dig(lab: Lab, *args: str) -> list[str]:
    return lab.exec("client", "dig", "+short", *args).stdout.split()


def endpoints(lab: Lab, service: str) -> tuple[set[str], set[str]]:
    """(ready, not ready) pod names of a service."""
    ep = json.loads(lab("get", "ep", service, "-o", "json").stdout)
    names = lambda key: {a["targetRef"]["name"] for s in ep["subsets"] for a in s.get(key, [])}  # noqa: E731
    return names("addresses"), names("notReadyAddresses")


def test_a_pods_hostname_subdomain_and_hosts_file_are_kubelets(lab):
    ip = lab.ip("db-x1")
    out = lab.exec("db-x1", "sh", "-c", "hostname; hostname -f; cat /etc/hostname; tail -n 1 /etc/hosts").stdout
    assert out.splitlines() == ["db-a", f"db-a.dbs.default.svc.{ZONE}", "db-a",
                                f"{ip}\tdb-a.dbs.default.svc.{ZONE}\tdb-a"]
    spec = lab.pods()["db-x1"]["spec"]
    assert (spec["hostname"], spec["subdomain"]) == ("db-a", "dbs")
    ep = json.loads(lab("get", "ep", "dbs", "-o", "json").stdout)
    hosts = {a["targetRef"]["name"]: a["hostname"] for s in ep["subsets"]
             for a in (*s.get("addresses", []), *s.get("notReadyAddresses", []))}
    assert hosts == {"db-x1": "db-a", "db-x2": "db-b"}
    # every replica of the Deployment is `web`, with its own address on the line
    replicas = [n for n in lab.pods() if n.startswith("web-")]
    assert len(replicas) == 2
    for name in replicas:
        out = lab.exec(name, "sh", "-c", "hostname; tail -n 1 /etc/hosts").stdout
        assert out.splitlines() == ["web", f"{lab.ip(name)}\tweb.webs.default.svc.{ZONE}\tweb"]


def test_a_not_ready_pod_is_left_out_of_the_headless_answers_unless_published(lab):
    a, b = lab.ip("db-x1"), lab.ip("db-x2")
    assert wait_for(lambda: endpoints(lab, "dbs") == ({"db-x1"}, {"db-x2"}), "db-x2 to be not ready", timeout=30)
    assert resolve(lab, "dbs") == [a]
    assert resolve(lab, f"db-a.dbs.default.svc.{ZONE}") == [a]
    assert resolve(lab, "db-b.dbs") == []  # its hostname record went with it
    assert "status: NXDOMAIN" in lab.exec("client", "dig", f"db-b.dbs.default.svc.{ZONE}").stdout
    assert dig(lab, "SRV", f"_pg._tcp.dbs.default.svc.{ZONE}") == ["0", "100", "5432", f"db-a.dbs.default.svc.{ZONE}."]
    # publishNotReadyAddresses: both, as the endpoints controller publishes them
    assert endpoints(lab, "dbs-all") == ({"db-x1", "db-x2"}, set())
    assert resolve(lab, "dbs-all") == sorted([a, b])
    srv = dig(lab, "SRV", f"_pg._tcp.dbs-all.default.svc.{ZONE}")
    assert sorted(srv[3::4]) == sorted(f"{ip.replace('.', '-')}.dbs-all.default.svc.{ZONE}." for ip in (a, b))

    # the probe passes: db-x2 is back in the answers, under its hostname too
    (lab.dir / "ready").touch()
    try:
        assert wait_for(lambda: resolve(lab, "dbs") == sorted([a, b]), "dbs to answer both", timeout=30)
        assert resolve(lab, "db-b.dbs") == [b]
        assert sorted(dig(lab, "SRV", f"_pg._tcp.dbs.default.svc.{ZONE}")[3::4]) == [
            f"db-a.dbs.default.svc.{ZONE}.", f"db-b.dbs.default.svc.{ZONE}."]
    finally:
        (lab.dir / "ready").unlink()
    assert wait_for(lambda: resolve(lab, "dbs") == [a], "db-x2 to leave the answers again", timeout=30)
    assert resolve(lab, "dbs-all") == sorted([a, b])


def test_replicas_sharing_the_templates_hostname_share_its_record(lab):
    ips = sorted(lab.ip(n) for n in lab.pods() if n.startswith("web-"))
    assert resolve(lab, "web.webs") == ips
    assert sorted(dig(lab, f"web.webs.default.svc.{ZONE}")) == ips
    # one SRV record names them (CoreDNS gives a target once), weight 100 / 2 endpoints
    assert dig(lab, "SRV", f"_http._tcp.webs.default.svc.{ZONE}") == ["0", "50", "80", f"web.webs.default.svc.{ZONE}."]
    # and the name leads to one of them for real, which answers with its hostname
    assert lab.exec("client", "wget", "-qO-", "-T", "5", "http://web.webs/hostname").stdout == "web"


def test_set_hostname_as_fqdn_and_an_fqdn_the_kernel_cannot_hold(lab):
    """setHostnameAsFQDN: `hostname` is the FQDN; one over 64 characters keeps the pod
    ContainerCreating with kubelet's FailedCreatePodSandBox event ("DNS for Services and Pods")."""
    assert (lab.exec("fq-short", "sh", "-c", "hostname; hostname -f").stdout.split()
            == [f"fq.dbs.default.svc.{ZONE}"] * 2)
    fqdn = f"a-rather-long-hostname-for-this-pod.long-subdomain.default.svc.{ZONE}"
    message = (f"failed to construct FQDN from pod hostname and cluster domain, FQDN {fqdn} is too long "
               f"(64 characters is the max, {len(fqdn)} characters requested)")
    assert f"warning: pod default/fq-long is ContainerCreating (FailedCreatePodSandBox): {message}" in lab.up.stderr
    row = lab("get", "pods", "fq-long").stdout.splitlines()[1].split()
    assert row[:3] == ["fq-long", "0/1", "ContainerCreating"]
    events = json.loads(lab("get", "events", "-o", "json").stdout)["items"]
    assert ("Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {message}") in [
        (e["type"], e["reason"], e["message"]) for e in events if e["involvedObject"]["name"] == "fq-long"]
    refused = lab.exec("fq-long", "hostname", check=False)
    assert refused.returncode != 0 and "has not started" in refused.stderr
    assert "fq-long" not in {name for names in endpoints(lab, "dbs-all") for name in names}
