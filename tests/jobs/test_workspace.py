"""A job's files named in one place, and the one reader of a growing log."""

from __future__ import annotations

import pytest

from rn50tui.jobs.core.workspace import LogTail, Workspace, last_lines


def test_a_workspace_names_its_files(tmp_path):
    ws = Workspace(tmp_path)
    assert (ws.raport.name, ws.checkpoint.name, ws.log("stderr").name) == ("raport.json", "checkpoint.pth.tar",
                                                                           "stderr.log")  # fmt: skip
    (tmp_path / "model_best.pth.tar").write_bytes(b"x")
    ws.checkpoint.write_bytes(b"x")
    assert sorted(p.name for p in ws.checkpoints()) == ["checkpoint.pth.tar", "model_best.pth.tar"]
    with pytest.raises(ValueError, match="unknown log 'engine': use one of stdout, stderr, supervisor"):
        ws.log("engine")


def test_a_tail_returns_whole_lines_then_the_rest_when_asked(tmp_path):
    log = tmp_path / "stdout.log"
    tail = LogTail(log)
    assert tail.read() == b""  # no file yet
    log.write_bytes(b"one\ntw")
    assert tail.read() == b"one\n"  # "tw" is still being written
    with open(log, "ab") as fh:
        fh.write(b"o\nthree")
    assert tail.read() == b"two\n" and tail.read(partial=True) == b"three" and tail.read(partial=True) == b""


def test_a_tail_from_the_end_starts_at_a_line_and_a_replaced_file_is_read_again(tmp_path):
    log = tmp_path / "stdout.log"
    log.write_bytes(b"".join(b"line %d\n" % i for i in range(100)))
    tail = LogTail(log, start=None, tail_bytes=20)
    assert tail.read() == b"line 98\nline 99\n"
    log.write_bytes(b"new\n")  # shorter than what was read: a new file
    assert tail.read() == b"new\n"
    assert last_lines(b"a\nb\nc\n", 2) == b"b\nc\n" and last_lines(b"a\n", 0) == b""
