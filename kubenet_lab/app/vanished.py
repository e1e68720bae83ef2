"""`python3 -m kubenet_lab.app.vanished --lab LAB NS/NAME...`: the supervisor's call when pods'
network namespaces went by hand (their containers already stopped): the lab changed under its
lock so that each is made anew, as Kubernetes replaces them: a ReplicaSet's or
ReplicationController's pod by a new pod with a new name, any other pod under its own name with
a new address (see change.let_go). Prints the pods made anew."""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import LabError
from ..fabric import state
from ..plan.naming import check_lab_name
from . import change


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m kubenet_lab.app.vanished",
                                     description="Make anew the pods whose network namespace is gone (the "
                                                 "supervisor's call).")
    parser.add_argument("--lab", required=True)
    parser.add_argument("pods", nargs="+", metavar="NS/NAME")
    args = parser.parse_args(argv)
    try:
        check_lab_name(args.lab)
        if not os.path.exists(state.plan_path(args.lab)):  # the lab went meanwhile: nothing to make anew
            print("lab gone: nothing to do")
            return 0
        result = change.remake(args.lab, args.pods)
    except (LabError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(", ".join(result.lines) or "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
