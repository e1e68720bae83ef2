"""kernel.files.makedirs_beneath (a missing emptyDir subPath made by the supervisor, as root, in
a directory containers write): a link a container plants as a component, before or while it
runs, never leads it to create or chmod anything outside the volume."""
from __future__ import annotations

import errno
import os
import stat

import pytest

from kubenet_lab.kernel import files
from kubenet_lab.kernel.files import makedirs_beneath


@pytest.fixture
def layout(tmp_path):
    vol, outside = tmp_path / "vol", tmp_path / "outside"
    vol.mkdir()
    outside.mkdir(mode=0o700)
    (outside / "secret").write_text("host only")
    os.chmod(outside / "secret", 0o600)
    return vol, outside


def modes(path) -> dict[str, int]:
    return {str(p): stat.S_IMODE(os.lstat(p).st_mode) for p in [path, *path.rglob("*")]}


def test_missing_components_are_made_with_the_mode(layout):
    vol, _ = layout
    makedirs_beneath(str(vol), "a/b/c", 0o777)
    assert (vol / "a" / "b" / "c").is_dir()
    assert {stat.S_IMODE(os.stat(vol / p).st_mode) for p in ("a", "a/b", "a/b/c")} == {0o777}
    (vol / "a" / "keep").mkdir(mode=0o750)
    makedirs_beneath(str(vol), "a/keep/d", 0o777)  # an existing directory keeps its mode
    assert stat.S_IMODE(os.stat(vol / "a" / "keep").st_mode) == 0o750


def test_the_last_component_may_be_an_existing_file(layout):
    vol, _ = layout
    (vol / "app.conf").write_text("level=debug\n")
    os.chmod(vol / "app.conf", 0o640)
    makedirs_beneath(str(vol), "app.conf", 0o777)
    assert (vol / "app.conf").read_text() == "level=debug\n"
    assert stat.S_IMODE(os.stat(vol / "app.conf").st_mode) == 0o640
    with pytest.raises(NotADirectoryError):  # but not a file in the middle
        makedirs_beneath(str(vol), "app.conf/x", 0o777)


@pytest.mark.parametrize("planted", ["dir", "file"])
@pytest.mark.parametrize("sub", ["escape", "escape/x", "escape/x/y"])
def test_a_planted_link_is_never_followed(layout, planted, sub):
    vol, outside = layout
    target = outside if planted == "dir" else outside / "secret"
    os.symlink(str(target), vol / "escape")
    before = modes(outside)
    with pytest.raises(OSError) as e:
        makedirs_beneath(str(vol), sub, 0o777)
    assert e.value.errno in (errno.ELOOP, errno.ENOTDIR)
    assert modes(outside) == before  # nothing made there, nothing chmodded


def test_a_link_swapped_in_after_mkdir_is_not_followed(layout, monkeypatch):
    """The race: the container renames the directory just made away and puts a link to a host
    file in its place before the mode is set."""
    vol, outside = layout
    real_mkdir = os.mkdir

    def racing_mkdir(name, mode=0o777, *, dir_fd=None):
        real_mkdir(name, mode, dir_fd=dir_fd)
        os.rename(name, name + ".moved", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.symlink(str(outside / "secret"), name, dir_fd=dir_fd)

    monkeypatch.setattr(files.os, "mkdir", racing_mkdir)
    before = modes(outside)
    with pytest.raises(OSError) as e:
        makedirs_beneath(str(vol), "x/y", 0o777)
    assert e.value.errno in (errno.ELOOP, errno.ENOTDIR)
    assert modes(outside) == before
    assert not (vol / "x.moved" / "y").exists()


def test_dot_dot_is_refused(layout):
    vol, outside = layout
    with pytest.raises(OSError):
        makedirs_beneath(str(vol), "../outside/new", 0o777)
    assert not (outside / "new").exists()
