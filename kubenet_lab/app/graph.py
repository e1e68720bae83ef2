"""`graph`: the lab's network drawn from its plan (inspect/graph.py); svg and html through
Graphviz's `dot`, which the set-up script installs."""
from __future__ import annotations

import shutil
import subprocess

from ..errors import EnvironmentProblem, InputError, LabError
from ..inspect import graph
from . import query

FORMATS = ("dot", "mermaid", "svg", "html")


def svg(dot_text: str) -> str:
    if shutil.which("dot") is None:
        raise EnvironmentProblem("dot not found: install Graphviz (apt-get install graphviz, or run setup.sh); "
                                 "-o dot and -o mermaid need nothing")
    proc = subprocess.run(["dot", "-Tsvg"], input=dot_text, capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"dot -Tsvg failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def render(lab: str, fmt: str) -> str:
    if fmt not in FORMATS:
        raise InputError(f'unable to match a printer suitable for the output format "{fmt}", '
                         f"allowed formats are: {','.join(FORMATS)}")
    plan = query.running_plan(lab)
    picture = graph.picture(plan)
    if fmt == "mermaid":
        return graph.to_mermaid(picture)
    text = graph.to_dot(picture)
    if fmt == "dot":
        return text
    drawn = svg(text)
    return drawn if fmt == "svg" else graph.to_html(plan, drawn)
