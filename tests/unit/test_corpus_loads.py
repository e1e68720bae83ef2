"""Real public manifests (tests/corpus/, see its README) load, each file on its own.

A file the lab cannot load yet is listed in CANNOT_LOAD with the exact error it gives today: its
test is an xfail(strict=True), so the list of what the lab rejects stays explicit, and a change
that makes such a file load fails the test until the entry is removed.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from kubenet_lab.errors import InputError
from kubenet_lab.manifests import load_model

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
GROUPS = ("apps", "dns", "services", "volumes", "workloads")
FILES = sorted(CORPUS.glob("*/*.yaml"))
SOURCE = "# source: "

# corpus-relative path -> the exact InputError the file gives today. Add an entry only for a real
# rejection, with the message `load_model` prints.
CANNOT_LOAD: dict[str, str] = {
    # fluentd's DaemonSet mounts the node's /var/log: a hostPath, refused unless the Cluster
    # config allows it (issue 11: a pasted manifest must not reach this machine's files).
    "workloads/daemonset.yaml": "daemonset.yaml:39: spec.template.spec.volumes[0].hostPath: '/var/log': a hostPath "
                                "volume would give the pod this machine's own files; kubenet-lab refuses it unless "
                                "the Cluster config (apiVersion: kubenet-lab.dev/v1alpha1, kind: Cluster) says "
                                "allowHostPath: true (or use an emptyDir)",
}


def _rel(path: Path) -> str:
    return path.relative_to(CORPUS).as_posix()


def _param(path: Path):
    rel = _rel(path)
    marks = ()
    if rel in CANNOT_LOAD:
        marks = (pytest.mark.xfail(strict=True, raises=InputError, reason=CANNOT_LOAD[rel]),)
    return pytest.param(path, id=rel, marks=marks)


def test_corpus_is_there():
    assert len(FILES) >= 32
    assert sorted({p.parent.name for p in FILES}) == sorted(GROUPS)
    assert set(CANNOT_LOAD) <= {_rel(p) for p in FILES}, "CANNOT_LOAD names a file the corpus does not have"


def test_readme_lists_every_file():
    readme = (CORPUS / "README.md").read_text(encoding="utf-8")
    listed = {line.split("`")[1] for line in readme.splitlines() if line.startswith("- `")}
    assert listed == {_rel(p) for p in FILES}


@pytest.mark.parametrize("path", [pytest.param(p, id=_rel(p)) for p in FILES])
def test_first_line_names_the_source(path: Path):
    first = path.read_text(encoding="utf-8").split("\n", 1)[0]
    assert first.startswith(SOURCE + "https://"), first


@pytest.mark.parametrize("path", [_param(p) for p in FILES])
def test_loads(path: Path):
    model = load_model([str(path)])
    # Something came of the file: an object the lab models, or a warning saying what was skipped.
    assert model.pods or model.services or model.workloads or model.warnings
    for warning in model.warnings:
        assert warning.startswith(f"{path}:"), warning
