"""`python3 -m kubenet_lab.app.balancer --lab LAB`: how the supervisor has the lab's balancer
follow its health checks (see build.sync_balancer). When the supervisor's probes find other
nodes passing a Service's health check than the balancer's table was made with, this process,
under the lab's lock like any command, probes again and makes the table anew; prints whether
it changed."""
from __future__ import annotations

import argparse
import sys

from . import build
from ..errors import LabError
from ..plan.naming import check_lab_name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m kubenet_lab.app.balancer",
                                     description="Make the lab's balancer choose the nodes that pass its health "
                                                 "checks now (the supervisor's call).")
    parser.add_argument("--lab", required=True)
    args = parser.parse_args(argv)
    try:
        check_lab_name(args.lab)
        changed = build.sync_balancer(args.lab)
    except (LabError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print("lab gone: nothing to do" if changed is None else
          "balancer's table made anew" if changed else "balancer's table unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
