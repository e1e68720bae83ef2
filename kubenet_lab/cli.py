"""The `kubenet-lab` command's entry point (`kubenet-lab`, `python3 -m kubenet_lab.cli`): the lab's
warm process runs the verb when there is one (kubenet_lab.warm), else the verbs of commands.py
run here, and then start one for the next command. `main`, the click group, and the rest of
commands.py are reachable by their old names here (`from kubenet_lab.cli import main`), imported
when first asked for."""
from __future__ import annotations

import sys


def run() -> None:
    from .warm import client

    code = client.run(sys.argv)
    if code is not None:
        sys.exit(code)
    from .commands import main

    try:
        main()
    finally:
        client.start(sys.argv)


def __getattr__(name: str):
    from . import commands

    return getattr(commands, name)


if __name__ == "__main__":
    run()
