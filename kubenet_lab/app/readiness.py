"""`python3 -m kubenet_lab.app.readiness --lab LAB`, the pods not ready on stdin as JSON
({"notReady": [...], "terminal": [...]}, the ended ones being no endpoints at all; or a plain
list of the pods not ready): how the supervisor has every node's rules follow readiness (see
build.sync_readiness). A process of its own, under the lab's lock like any command; prints which
nodes' rules changed."""
from __future__ import annotations

import argparse
import json
import sys

from . import build
from ..errors import LabError
from ..plan.naming import check_lab_name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m kubenet_lab.app.readiness",
                                     description="Make the lab's rules leave out the pods not ready (the "
                                                 "supervisor's call; a JSON list of ns/name on stdin).")
    parser.add_argument("--lab", required=True)
    args = parser.parse_args(argv)
    try:
        check_lab_name(args.lab)
        data = json.load(sys.stdin)
        data = {"notReady": data} if isinstance(data, list) else data
        not_ready = frozenset(str(k) for k in data.get("notReady", ()))
        terminal = frozenset(str(k) for k in data.get("terminal", ()))
        changed = build.sync_readiness(args.lab, not_ready | terminal, terminal)
        stepped = build.rollout_step(args.lab) if changed is not None else None
    except (LabError, OSError, ValueError, AttributeError) as e:  # InputError is a LabError
        print(f"error: {e}", file=sys.stderr)
        return 1
    print("lab gone: nothing to do" if changed is None else f"rules changed on: {', '.join(changed) or 'none'}"
          + ("; rollout step: " + ", ".join(stepped) if stepped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
