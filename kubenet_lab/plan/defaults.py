"""A pod template as the API server stores it: the defaults it fills in (pkg/apis/core/v1's
SetDefaults_* and SetObjectDefaults_PodTemplateSpec), so that writing a default out or leaving it
out is the same template, with the same pod-template-hash, and does not replace any pod.

Only what the defaulters set for fields left out; a value written is kept as written. Works on
plain data (the template as the manifest wrote it)."""
from __future__ import annotations

import copy
from typing import Any

POD = {"restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
       "securityContext": {}, "schedulerName": "default-scheduler", "enableServiceLinks": True}
CONTAINER = {"terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
             "resources": {}}
PROBE = {"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}


def _image_pull_policy(image: Any) -> str:
    """Always for the :latest tag or no tag (and no digest), else IfNotPresent."""
    if not isinstance(image, str) or "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else None
    return "Always" if tag in (None, "latest") else "IfNotPresent"


def _probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    for key, value in PROBE.items():
        probe.setdefault(key, value)
    http = probe.get("httpGet")
    if isinstance(http, dict):
        http.setdefault("scheme", "HTTP")
        http.setdefault("path", "/")


def _container(c: Any) -> None:
    if not isinstance(c, dict):
        return
    for key, value in CONTAINER.items():
        c.setdefault(key, copy.deepcopy(value))
    c.setdefault("imagePullPolicy", _image_pull_policy(c.get("image")))
    for port in c.get("ports") or ():
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for var in c.get("env") or ():
        ref = var.get("valueFrom", {}).get("fieldRef") if isinstance(var, dict) and \
            isinstance(var.get("valueFrom"), dict) else None
        if isinstance(ref, dict):
            ref.setdefault("apiVersion", "v1")
    for name in ("livenessProbe", "readinessProbe", "startupProbe"):
        _probe(c.get(name))


def pod_template(template: Any) -> Any:
    """`template` (spec.template of a controller) with the API server's defaults filled in."""
    if not isinstance(template, dict):
        return template
    out = copy.deepcopy(template)
    spec = out.get("spec")
    if isinstance(spec, dict):
        for key, value in POD.items():
            spec.setdefault(key, copy.deepcopy(value))
        for key in ("containers", "initContainers"):
            for c in spec.get(key) or ():
                _container(c)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        meta.setdefault("creationTimestamp", None)
    return out
