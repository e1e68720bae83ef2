"""`python3 -m kubenet_lab.readiness --lab LAB`, the pods not ready as a JSON list on stdin:
how the supervisor has every node's rules follow readiness (see app.sync_readiness). A process
of its own, under the lab's lock like any command; prints which nodes' rules changed."""
from __future__ import annotations

import argparse
import json
import sys

from . import app
from .errors import LabError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python3 -m {__name__}", description=__doc__.split("\n")[0])
    parser.add_argument("--lab", required=True)
    args = parser.parse_args(argv)
    try:
        not_ready = frozenset(str(k) for k in json.load(sys.stdin))
        changed = app.sync_readiness(args.lab, not_ready)
    except (LabError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print("lab gone: nothing to do" if changed is None else f"rules changed on: {', '.join(changed) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
