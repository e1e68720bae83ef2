"""An emulated web server's files from a volume (servers.http.DefaultHttp with `static`, read by
kernel.files.read_beneath): nginx's answers, and nothing outside the volume, whatever links a
container made in it."""
from __future__ import annotations

import os

from kubenet_lab.kernel.files import read_beneath
from kubenet_lab.servers.base import ServerContext
from kubenet_lab.servers.http import DefaultHttp, Request


def get(app: DefaultHttp, path: str):
    return app.handle(Request("GET", path, "HTTP/1.1", {}, ("10.0.0.9", 5555), path=path))


def server(root) -> DefaultHttp:
    return DefaultHttp(ServerContext(hostname="web-0"), static=lambda path: read_beneath(str(root), path))


def test_files_index_redirect_forbidden_and_missing(tmp_path):
    (tmp_path / "index.html").write_text("Hello from the debian container\n")
    (tmp_path / "app.js").write_text("x()")
    (tmp_path / "docs").mkdir()
    (tmp_path / "empty").mkdir()
    (tmp_path / "docs" / "index.html").write_text("docs")
    app = server(tmp_path)
    page = get(app, "/")
    assert (page.status, page.payload(), page.headers["Content-Type"]) == (
        200, b"Hello from the debian container\n", "text/html")
    assert get(app, "/app.js").headers["Content-Type"] == "application/javascript"
    moved = get(app, "/docs")
    assert moved.status == 301 and moved.headers["Location"] == "/docs/"
    assert get(app, "/docs/").payload() == b"docs"
    assert get(app, "/empty/").status == 403  # a directory without an index, autoindex off
    missing = get(app, "/nope.html")
    assert missing.status == 404 and b"<center><h1>404 Not Found</h1></center>" in missing.payload()


def test_links_and_dot_dot_stay_inside_the_volume(tmp_path):
    root = tmp_path / "vol"
    root.mkdir()
    (tmp_path / "secret").write_text("host only")
    os.symlink(str(tmp_path / "secret"), root / "abs")
    os.symlink("../secret", root / "rel")
    app = server(root)
    for path in ("/abs", "/rel", "/../secret", "/%2e%2e/secret"):
        resp = get(app, path)
        assert resp.status == 404 and b"host only" not in resp.payload(), path
    (root / "inside").write_text("mine")
    os.symlink("/inside", root / "link")  # absolute, as the container sees it: the volume's own file
    assert get(app, "/link").payload() == b"mine"


def test_without_a_volume_the_server_answers_as_before(tmp_path):
    app = DefaultHttp(ServerContext(hostname="web-0"))
    assert get(app, "/").payload() == b"web-0\n"
