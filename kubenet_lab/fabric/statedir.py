"""Where a lab's state lives: /run/kubenet-lab/<lab>, or under $KUBENET_LAB_STATE_ROOT.

Standard library only: the command's warm-process client (warm/client.py) finds the lab's
socket with it before anything else is imported; fabric/state.py keeps the files there.
"""
from __future__ import annotations

import os

ROOT_ENV = "KUBENET_LAB_STATE_ROOT"
DEFAULT_ROOT = "/run/kubenet-lab"


def state_root() -> str:
    return os.environ.get(ROOT_ENV, DEFAULT_ROOT)


def state_dir(lab: str) -> str:
    return os.path.join(state_root(), lab)
