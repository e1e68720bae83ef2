"""The shape of ConfigMaps and Secrets, of pod volumes and of what refers to them (volumeMounts,
env valueFrom configMapKeyRef/secretKeyRef, envFrom), with the API server's checks and words
(k8s.io/kubernetes pkg/apis/core/validation: ValidateConfigMap, ValidateSecret, validateVolumes,
validateVolumeMounts, validateEnvFrom). Part of the schema (manifests.schema uses these tables).
"""
from __future__ import annotations

import base64
import json
import re
from typing import Any, Callable, Iterable

from .fields import IGNORE, INVALID, At, Bool, Checked, Either, Ignore, Int, Invalid, ListOf, Noted, Obj, OneOf, Str, \
    Type, _no_repeats, describe
from .values import config_key, dns_label, env_name, local_path

# The most a ConfigMap's or Secret's data may hold (MaxSecretSize, and a ConfigMap's total).
MAX_DATA_BYTES = 1024 * 1024
SECRET_DEFAULT_TYPE = "Opaque"
# What kubelet's default file mode is for configMap, secret and downwardAPI volumes (0644).
DEFAULT_MODE = 0o644
# The keys a Secret of a built-in type must have (ValidateSecret).
SECRET_REQUIRED_KEYS = {
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
}
_BASE64 = re.compile(r"[A-Za-z0-9+/]")


def base64_error(text: str) -> str | None:
    """Why `text` is not what a Secret's data holds (standard base64, padded; newlines are
    skipped, as Go's decoder skips them), in Go's words; None when it is."""
    chars = [(i, c) for i, c in enumerate(text) if c not in "\r\n"]
    padded = False
    for n, (i, c) in enumerate(chars):
        if c == "=":
            at = n % 4
            if at < 2 or (at == 2 and (n + 1 >= len(chars) or chars[n + 1][1] != "=")):
                return f"illegal base64 data at input byte {i}"
            padded = True
        elif padded or not _BASE64.fullmatch(c):
            return f"illegal base64 data at input byte {i}"
    if len(chars) % 4:
        return f"illegal base64 data at input byte {chars[len(chars) - len(chars) % 4][0]}"
    return None


class ConfigData(Type):
    """A ConfigMap's data/binaryData or a Secret's data/stringData: config keys to strings, each
    message pointing at `data[KEY]` as the API server's do; `check` (base64) judges each value."""

    def __init__(self, check: Callable[[str], str | None] | None = None, hint: str = ""):
        self.check, self.hint = check, hint

    def convert(self, value: Any, at: At) -> Any:
        if not isinstance(value, dict):
            return at.error(f"expected a map, got {describe(value)}")
        lines = getattr(value, "lines", {})
        ok = _no_repeats(value, at, fields=False)
        out: dict[str, str] = {}
        for key, v in value.items():
            entry = At(at.sink, at.file, lines.get(key, at.line), f"{at.path}[{key}]")
            if not isinstance(key, str):
                ok = bool(entry.error(f"the key {describe(key)} must be a string"))
                continue
            try:
                config_key(key)
            except Invalid as e:
                entry.error(str(e))
                ok = False
                continue
            if v is None:
                v = ""  # null in a map of strings is the empty string, as the API server decodes it
            if not isinstance(v, str):
                entry.error(f'expected a string, got {describe(v)} (quote it: "{describe(v)}")'
                            if isinstance(v, (int, float, bool)) else f"expected a string, got {describe(v)}")
                ok = False
                continue
            problem = self.check(v) if self.check else None
            if problem:
                shown = v if len(v) <= 60 else v[:57] + "..."
                entry.error(f"Invalid value: {json.dumps(shown)}: {problem}{self.hint}")
                ok = False
                continue
            out[key] = v
        return out if ok else INVALID


def _size(data: dict[str, str]) -> int:
    return sum(len(v.encode()) for v in data.values())


def _check_config_map(doc: Checked) -> None:
    data, binary = doc.get("data", {}), doc.get("binaryData", {})
    for key in data:
        if key in binary:
            At(doc.here.sink, doc.here.file, doc.at("binaryData").line, f"data[{key}]").error(
                f'Invalid value: "{key}": duplicate of key present in binaryData')
    size = _size(data) + sum(len(base64.b64decode(v)) for v in binary.values())
    if size > MAX_DATA_BYTES:
        doc.here.child("data").error(f"Too long: must have at most {MAX_DATA_BYTES} bytes")


def _check_secret(doc: Checked) -> None:
    data = merged_secret_data(doc.get("data", {}), doc.get("stringData", {}))
    if sum(len(base64.b64decode(v)) for v in data.values()) > MAX_DATA_BYTES:
        doc.here.child("data").error(f"Too long: must have at most {MAX_DATA_BYTES} bytes")
    for key in SECRET_REQUIRED_KEYS.get(doc.get("type", ""), ()):
        if key not in data:
            doc.here.child(f"data[{key}]").error("Required value")


def merged_secret_data(data: dict[str, str], string_data: dict[str, str]) -> dict[str, str]:
    """A Secret's data as the API server stores it: stringData encoded and merged in (it wins)."""
    return {**data, **{k: base64.b64encode(v.encode()).decode() for k, v in string_data.items()}}


def _top(meta: Obj, fields: dict[str, Type], post: Callable[[Checked], None]) -> Obj:
    return Obj({"apiVersion": IGNORE, "kind": IGNORE, "metadata": meta, **fields}, required=("metadata",), post=post)


def config_map(meta: Obj) -> Obj:
    return _top(meta, {"data": ConfigData(), "binaryData": ConfigData(base64_error), "immutable": Bool()},
                _check_config_map)


def secret(meta: Obj) -> Obj:
    return _top(meta, {"data": ConfigData(base64_error, " (a Secret's data is base64: put plain text under "
                                                          "stringData)"),
                       "stringData": ConfigData(), "type": Str(), "immutable": Bool()}, _check_secret)


# ---------------------------------------------------------------------------------- env


def _env_prefix(s: str) -> str:
    return env_name(s) if s else s


KEY_SELECTOR = Obj({"name": Str(), "key": Str(config_key), "optional": Bool()}, required=("name", "key"))
_REF = Obj({"name": Str(), "optional": Bool()}, required=("name",))


def _one_env_source(entry: Checked) -> None:
    given = [k for k in ("configMapRef", "secretRef") if k in entry]
    if not given:
        entry.here.error('Invalid value: "": must specify one of: `configMapRef` or `secretRef`')
    elif len(given) > 1:
        entry.here.error('Invalid value: "": may not have more than one field specified at a time')


ENV_FROM = Obj({"prefix": Str(_env_prefix), "configMapRef": _REF, "secretRef": _REF}, post=_one_env_source)

# ---------------------------------------------------------------------------------- volumes


class Mode(Type):
    """A file mode (defaultMode, an item's mode): 0 to 0777."""

    def convert(self, value: Any, at: At) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            return at.error(f"expected an integer, got {describe(value)}")
        if not 0 <= value <= 0o777:
            return at.error(f"Invalid value: {value}: must be a number between 0 and 0777 (octal), both inclusive")
        return value


MODE = Mode()
KEY_TO_PATH = Obj({"key": Str(), "path": Str(local_path), "mode": MODE}, required=("key", "path"))

# The pod fields a downwardAPI volume file can hold (validateDownwardAPIVolumeFile).
DOWNWARD_FIELDS = ("metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid")
_SUBSCRIPTED = re.compile(r"metadata\.(labels|annotations)\['([^']+)'\]")


def downward_field(s: str) -> str:
    if s in DOWNWARD_FIELDS or _SUBSCRIPTED.fullmatch(s):
        return s
    raise Invalid(f"Unsupported value: {s!r}: supported values: "
                  + ", ".join(f'"{f}"' for f in DOWNWARD_FIELDS))


def _downward_source(item: Checked) -> None:
    if "fieldRef" not in item.ats and "resourceFieldRef" not in item.ats:
        item.here.error("Required value: one of fieldRef and resourceFieldRef is required")


DOWNWARD_FILE = Obj({
    "path": Str(local_path), "mode": MODE,
    "fieldRef": Obj({"fieldPath": Str(downward_field), "apiVersion": IGNORE}, required=("fieldPath",)),
    "resourceFieldRef": Ignore(warning="ignored: kubenet-lab has no resource limits; this file is not written"),
}, required=("path",), post=_downward_source)

HOST_PATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice")
# The volume types the lab sets up (model.objects.VOLUME_KINDS) ...
VOLUME_TYPES = {
    "emptyDir": Obj({"medium": OneOf("", "Memory", refused={
                        "HugePages": "kubenet-lab has no huge pages: use medium \"\" or Memory"}),
                     "sizeLimit": Either(Int(0), Str())}),
    "configMap": Obj({"name": Str(), "items": ListOf(KEY_TO_PATH), "defaultMode": MODE, "optional": Bool()},
                     required=("name",)),
    "secret": Obj({"secretName": Str(), "items": ListOf(KEY_TO_PATH), "defaultMode": MODE, "optional": Bool()},
                  required=("secretName",)),
    "downwardAPI": Obj({"items": ListOf(DOWNWARD_FILE), "defaultMode": MODE}),
    # noted, so that the whole input can say whether the Cluster config allows it (manifests.build)
    "hostPath": Noted("hostPath", Obj({"path": Str(), "type": OneOf(*HOST_PATH_TYPES)}, required=("path",))),
}
# ... and those it stands in for with an empty directory: nothing of the storage they name is here.
AS_EMPTY_DIR = ("persistentVolumeClaim", "projected", "csi", "ephemeral", "nfs", "iscsi", "gitRepo", "image",
                "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "fc", "flexVolume", "flocker",
                "gcePersistentDisk", "glusterfs", "photonPersistentDisk", "portworxVolume", "quobyte", "rbd",
                "scaleIO", "storageos", "vsphereVolume")


class AsEmptyDir(Type):
    """A volume type the lab has nothing for: accepted, with a warning, as an empty directory."""

    def __init__(self, kind: str):
        self.kind = kind

    def convert(self, value: Any, at: At) -> Any:
        if not isinstance(value, dict):
            return at.error(f"expected a map, got {describe(value)}")
        what = {"persistentVolumeClaim": "its claim's data",
                "projected": "the service account token, ConfigMaps and Secrets it projects",
                "ephemeral": "its claim's data"}.get(self.kind, "the storage it names")
        at.warn(f"not modelled: kubenet-lab has no {self.kind} volumes; the pod gets an empty directory "
                f"(as an emptyDir) instead, without {what}, gone with the pod")
        return {"asEmptyDir": self.kind}


def _one_volume_type(volume: Checked) -> None:
    given = [k for k in (*VOLUME_TYPES, *AS_EMPTY_DIR) if k in volume.ats]
    if not given:
        volume.here.error("Required value: must specify a volume type")
    elif len(given) > 1:
        volume.at(given[1]).error("Forbidden: may not specify more than 1 volume type")


VOLUME = Obj({"name": Str(dns_label), **VOLUME_TYPES, **{k: AsEmptyDir(k) for k in AS_EMPTY_DIR}},
             required=("name",), post=_one_volume_type)


def _claim_template(claim: Checked) -> None:
    claim.here.warn("not modelled: kubenet-lab has no PersistentVolumes; each pod gets an empty directory "
                    "(as an emptyDir) for this claim instead, gone with the pod")


CLAIM_TEMPLATE = Obj({"apiVersion": IGNORE, "kind": IGNORE, "spec": IGNORE, "status": IGNORE,
                      "metadata": Obj({"name": Str(dns_label), "labels": IGNORE, "annotations": IGNORE},
                                      required=("name",))}, required=("metadata",), post=_claim_template)


def _check_mount(mount: Checked) -> None:
    if not mount.get("mountPath", "x"):
        mount.at("mountPath").error("Required value")
    elif ".." in mount.get("mountPath", "").split("/"):  # validatePathNoBacksteps
        mount.at("mountPath").error(f'Invalid value: "{mount["mountPath"]}": must not contain \'..\'')
    if "subPath" in mount and "subPathExpr" in mount:
        mount.at("subPathExpr").error("Invalid value: \"" + mount["subPathExpr"] + "\": subPathExpr and subPath "
                                      "are mutually exclusive")


VOLUME_MOUNT = Obj({
    "name": Str(), "mountPath": Str(), "readOnly": Bool(), "subPath": Str(local_path),
    "subPathExpr": Str(), "mountPropagation": OneOf("None", "HostToContainer", "Bidirectional"),
    "recursiveReadOnly": OneOf("Disabled", "IfPossible", "Enabled"),
}, required=("name", "mountPath"), post=_check_mount)


def check_mount_paths(container: Checked) -> None:
    """A mountPath once per container (validateVolumeMounts: `must be unique`)."""
    seen: set[str] = set()
    for mount in container.get("volumeMounts", []):
        path = mount.get("mountPath")
        if path in seen:
            mount.at("mountPath").error(f'Invalid value: "{path}": must be unique')
        seen.add(path)
    for mount in container.get("volumeMounts", []):
        if "subPathExpr" in mount:
            mount.at("subPathExpr").warn("not modelled: subPathExpr is not expanded; the whole volume is mounted")


def check_volume_refs(spec: Checked, claims: Iterable[str] = ()) -> None:
    """Volume names once per pod (`Duplicate value`), and every volumeMount naming one of them
    or of `claims` (a StatefulSet's volumeClaimTemplates) (`Not found`), as the API server checks them."""
    names: set[str] = set(claims)
    for volume in spec.get("volumes", []):
        if volume["name"] in names:
            volume.at("name").error(f'Duplicate value: "{volume["name"]}"')
        names.add(volume["name"])
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in names:
                mount.at("name").error(f'Not found: "{mount["name"]}"')


def volume_kind(volume: Checked) -> tuple[str, Checked]:
    """(the model's kind of a checked volume, its source's fields)."""
    for kind in VOLUME_TYPES:
        if kind in volume:
            return kind, volume[kind]
    return "emptyDir", Checked(volume.here)
