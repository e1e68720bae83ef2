"""The `kubenet-lab` command's entry point (`kubenet-lab`, `python3 -m kubenet_lab.cli`): it runs
the verbs of commands.py. `main`, the click group, and the rest of commands.py are reachable by
their old names here (`from kubenet_lab.cli import main`), imported when first asked for."""
from __future__ import annotations


def run() -> None:
    from .commands import main

    main()


def __getattr__(name: str):
    from . import commands

    return getattr(commands, name)


if __name__ == "__main__":
    run()
