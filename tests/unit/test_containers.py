"""The supervisor's pieces that need no namespace: container logs."""
from __future__ import annotations

from kubenet_lab.runtime.containers import LogBuffer, LogFile


def test_a_built_in_servers_log_keeps_its_last_lines_in_memory():
    log = LogBuffer()
    for i in range(LogBuffer.MAX_LINES + 5):
        log(f"line {i}")
    text = log.text()
    assert text.startswith("line 5\n") and text.endswith(f"line {LogBuffer.MAX_LINES + 4}\n")
    assert text.count("\n") == LogBuffer.MAX_LINES
    assert LogBuffer().text() == ""


def test_a_processs_log_file_never_recreates_a_removed_state_dir(tmp_path):
    log = LogFile(str(tmp_path / "lab" / "logs" / "x.log"))
    log("lost")  # the lab's directory is gone: the line is dropped, nothing is created
    assert not (tmp_path / "lab").exists() and log.text() == ""
    (tmp_path / "lab").mkdir()
    log("kept")
    assert log.text() == "kept\n"
