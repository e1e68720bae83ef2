"""Which pods a ReplicaSet (a Deployment's too) or a ReplicationController has: pure controller
logic over the indices their pod names are made from (see naming.generate_name).

Kubernetes draws each pod's name at random when the controller creates it; the lab derives it
from the controller and an index, so the same manifests give the same names. The indices in use
are kept with the plan's allocations: scaling up adds new ones, scaling down removes the newest
(the ReplicaSet controller deletes the youngest pods first, other things equal), and a pod that
is deleted loses its index, so its replacement gets a new one: a new name, as in Kubernetes."""
from __future__ import annotations

from typing import Mapping

from . import naming


def indices(have: tuple[int, ...] | None, next_index: int, replicas: int) -> tuple[tuple[int, ...], int]:
    """(the indices of the controller's pods, the next index never used) for `replicas` pods,
    given those it `have`s (None: a new controller) and the next unused index."""
    if have is None:  # a new controller; or one made again (its pods are new pods: new names)
        return tuple(range(next_index, next_index + replicas)), next_index + replicas
    kept = sorted(have)[:replicas]
    nxt = max([next_index, *(i + 1 for i in have)])
    while len(kept) < replicas:
        kept.append(nxt)
        nxt += 1
    return tuple(kept), nxt


def index_of(base: str, owner: str, name: str, have: tuple[int, ...]) -> int | None:
    """The index pod `name` of controller `owner` (`ns/Kind/name`) was made from, if one of `have`."""
    return next((i for i in have if naming.generate_name(base, owner, i) == name), None)


def without_index(replicas: Mapping[str, tuple[int, ...]], owner: str, index: int) -> dict[str, tuple[int, ...]]:
    return {**replicas, owner: tuple(i for i in replicas.get(owner, ()) if i != index)}
