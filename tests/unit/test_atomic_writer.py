"""runtime.sandbox.write_files, kubelet's atomic writer for configMap, secret and downwardAPI
volumes: a new version directory, `..data` switched to it, the old one removed. `..data` is
trusted only when it names a version directory of the volume itself: a `..data` pointing
elsewhere is neither read nor removed."""
from __future__ import annotations

import os

import pytest

from kubenet_lab.runtime.sandbox import DATA, write_files

FILES = {"color": (b"red", 0o644), "ui/theme": (b"dark", 0o600)}


def versions(vol) -> list[str]:
    return sorted(e for e in os.listdir(vol) if e.startswith("..") and e != DATA)


def test_a_new_version_replaces_the_old_one(tmp_path):
    vol = tmp_path / "vol"
    write_files(str(vol), FILES)
    first = os.readlink(vol / DATA)
    assert versions(vol) == [first] and (vol / "color").read_bytes() == b"red"
    assert os.readlink(vol / "color") == f"{DATA}/color"
    write_files(str(vol), FILES)  # unchanged: left alone
    assert os.readlink(vol / DATA) == first
    write_files(str(vol), {"color": (b"blue", 0o644)})
    second = os.readlink(vol / DATA)
    assert second != first and versions(vol) == [second]
    assert (vol / "color").read_bytes() == b"blue" and not os.path.lexists(vol / "ui")


@pytest.fixture
def planted(tmp_path):
    """A volume written once, then its `..data` replaced by a link of someone else's making;
    `outside` a directory holding exactly the volume's files (so that trusting it would look current)."""
    vol, outside = tmp_path / "vol", tmp_path / "outside"
    write_files(str(vol), FILES)
    outside.mkdir()
    (outside / "ui").mkdir()
    (outside / "color").write_bytes(b"red")
    (outside / "ui" / "theme").write_bytes(b"dark")
    os.chmod(outside / "ui" / "theme", 0o600)

    def plant(target: str) -> None:
        os.unlink(vol / DATA)
        os.symlink(target, vol / DATA)
    return vol, outside, plant


@pytest.mark.parametrize("target", ["ABS", "../outside", "..", "..link", "..file"])
def test_a_planted_data_link_is_neither_read_nor_removed(planted, target):
    vol, outside, plant = planted
    os.symlink(str(outside), vol / "..link")
    (vol / "..file").write_text("x")
    plant(str(outside) if target == "ABS" else target)
    write_files(str(vol), FILES)
    now = os.readlink(vol / DATA)
    assert now not in ("..", "..link", "..file") and "/" not in now and (vol / now).is_dir()
    assert (vol / "color").read_bytes() == b"red" and (vol / "ui" / "theme").read_bytes() == b"dark"
    assert (outside / "color").read_bytes() == b"red" and (outside / "ui" / "theme").read_bytes() == b"dark"
    assert vol.parent.is_dir() and vol.is_dir() and (vol / "..file").exists()


def test_a_link_inside_the_version_is_not_read(planted, tmp_path):
    vol, outside, _ = planted
    version = os.readlink(vol / DATA)
    os.unlink(vol / version / "color")
    os.symlink(str(outside / "color"), vol / version / "color")  # same content, through a link
    write_files(str(vol), FILES)
    assert os.readlink(vol / DATA) != version and not (vol / version).exists()
    assert (outside / "color").read_bytes() == b"red"
