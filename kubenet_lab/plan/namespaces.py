"""The lab's namespaces as the API server holds them: each one written, and each one an object
in it implies (kubectl create would need it first; the lab makes it), with the label
kubernetes.io/metadata.name the API server puts on every namespace."""
from __future__ import annotations

import dataclasses
from typing import Iterable

from ..model.objects import NAMESPACE_NAME_LABEL, Model, Namespace

# The namespaces every cluster has.
BUILT_IN = ("default", "kube-system")


def plan_namespaces(model: Model, used: Iterable[str]) -> tuple[Namespace, ...]:
    """Every namespace, by name: the written ones with their labels, the others (built in, or
    named by an object in `used`) with the name label alone."""
    written = {n.name: dataclasses.replace(n, origin=None) for n in model.namespace_objects}
    names = sorted({*BUILT_IN, *model.namespaces, *written, *used})
    return tuple(written.get(n) or Namespace(n, {NAMESPACE_NAME_LABEL: n}) for n in names)
