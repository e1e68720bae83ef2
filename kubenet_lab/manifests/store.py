"""The objects a lab holds, as the API server holds them: each stored under its identity (kind,
namespace, name), in the order it arrived, with the place it was written. `up` replaces them all;
`apply` adds and changes (a later copy of an object wins, as kubectl apply applies files in
order); `delete` removes; `scale` edits one field. The model is always built from the whole
store again (manifests.load.model_of), so every check runs on what the lab would then be."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable, Sequence

from ..model.objects import RESOURCE_NAMES
from .fields import At, LList, LMap
from .schema import KINDS

Key = tuple[str, str, str]  # (kind, namespace or "" for a cluster-scoped kind, name)



@dataclass(frozen=True)
class Stored:
    """One object of the lab: its raw document and where it was written."""

    kind: str
    namespace: str
    name: str
    data: Any
    file: str
    line: int
    path: str = ""

    @property
    def key(self) -> Key:
        return (self.kind, self.namespace, self.name)

    @property
    def ref(self) -> str:
        """kubectl's `deployment.apps/web`."""
        return f"{RESOURCE_NAMES.get(self.kind, self.kind.lower())}/{self.name}"

    def at(self, sink) -> At:
        return At(sink, self.file, self.line, self.path)


def identify(raw: Any) -> Key | None:
    """An object's identity from its raw document; None when it has none that can be read (the
    builder then says what is wrong with it) or is of a kind the lab does not model."""
    if not isinstance(raw, dict):
        return None
    kind = raw.get("kind")
    spec = KINDS.get(kind) if isinstance(kind, str) else None
    if spec is None:
        return None
    if kind == "Cluster":  # one per lab, whatever its name
        return ("Cluster", "", "")
    meta = raw.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        return None
    namespace = meta.get("namespace", "default") if spec.namespaced else ""
    return (kind, namespace if isinstance(namespace, str) else "default", meta["name"])


def flatten(docs: Iterable[tuple[Any, At]]) -> list[tuple[Any, At]]:
    """`kind: List` items as documents of their own (where `get -o yaml` output is applied)."""
    out = []
    for raw, at in docs:
        if isinstance(raw, dict) and raw.get("kind") == "List" and isinstance(raw.get("items"), list):
            items = raw["items"]
            base = at.child("items", raw.lines.get("items") if isinstance(raw, LMap) else None)
            out += flatten((item, base.item(i, items.lines[i] if isinstance(items, LList) else None))
                           for i, item in enumerate(items))
        else:
            out.append((raw, at))
    return out


def stored(docs: Iterable[tuple[Any, At]]) -> list[Stored]:
    """The identifiable objects of `docs`, in order (others are the builder's to report)."""
    out = []
    for raw, at in flatten(docs):
        key = identify(raw)
        if key is not None:
            out.append(Stored(*key, raw, at.file, at.line, at.path))
    return out


def merge(held: Sequence[Stored], new: Sequence[Stored]) -> tuple[list[Stored], list[str]]:
    """`held` with `new` applied in order: a new object is added at the end, a changed one keeps
    its place. A name given twice in `new` is applied twice, the later copy winning, as kubectl
    apply does; a warning says so."""
    out = {s.key: s for s in held}
    first: dict[Key, Stored] = {}
    warnings = []
    for s in new:
        if s.key in first:
            was = first[s.key]
            warnings.append(f"{s.file}:{s.line}: {s.ref} is also at {was.file}:{was.line}; both are applied in "
                            f"order, so this later one wins")
        first.setdefault(s.key, s)
        out[s.key] = s
    return list(out.values()), warnings


def without(held: Sequence[Stored], keys: Iterable[Key]) -> list[Stored]:
    gone = set(keys)
    return [s for s in held if s.key not in gone]


def find(held: Sequence[Stored], kind: str, namespace: str, name: str) -> Stored | None:
    key = (kind, "" if kind in ("Node", "Namespace", "Cluster") else namespace, name)
    return next((s for s in held if s.key == key), None)


def edited(s: Stored, path: Sequence[str], value: Any) -> Stored:
    """A copy of `s` with the field at `path` (keys from the top) set to `value`: what `scale`,
    `label` and `set image` write. Maps on the way are made when missing."""
    def put(node: Any, keys: Sequence[str]) -> Any:
        copy = LMap(getattr(node, "line", s.line))
        if isinstance(node, dict):
            copy.update(node)
            copy.lines.update(getattr(node, "lines", {}))
        key = keys[0]
        if len(keys) == 1:
            copy[key] = value
        else:
            copy[key] = put(copy.get(key) if isinstance(copy.get(key), dict) else None, keys[1:])
        copy.lines.setdefault(key, copy.line)
        return copy
    return replace(s, data=put(s.data, list(path)))
