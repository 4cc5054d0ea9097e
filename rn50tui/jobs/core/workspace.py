"""A job's workspace folder and the files in it, named in one place, and the one reader of a growing log.

ws = Workspace(job.workspace)      # or job.files
ws.raport, ws.checkpoint, ws.log("stderr"), ws.checkpoints()
tail = LogTail(ws.log("stdout"))   # read() → the bytes written since the last read
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Optional

RAPORT_FILE = "raport.json"  # the engine's --raport-file, relative to its --workspace
CHECKPOINT_FILE = "checkpoint.pth.tar"  # the engine's rolling checkpoint
LOG_STREAMS = ("stdout", "stderr", "supervisor")  # the engine's two streams, then its supervisor's log


@dataclass(frozen=True)
class Workspace:
    """The folder a job's attempts run in (`runs/<id>/` unless the user chose one)."""

    root: Path

    def __init__(self, root: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def raport(self) -> Path:
        return self.root / RAPORT_FILE

    @property
    def checkpoint(self) -> Path:
        return self.root / CHECKPOINT_FILE

    def log(self, stream: str) -> Path:
        """stdout.log, stderr.log or supervisor.log; ValueError names the streams otherwise."""
        if stream not in LOG_STREAMS:
            raise ValueError(f"unknown log {stream!r}: use one of {', '.join(LOG_STREAMS)}")
        return self.root / f"{stream}.log"

    def checkpoints(self) -> Iterator[Path]:
        """Every checkpoint file in the folder (the rolling one, model_best, per-epoch ones)."""
        try:
            yield from self.root.glob("*.pth.tar")
        except OSError:
            return


def holds_run_files(folder: str | os.PathLike[str]) -> bool:
    """True if `folder` holds an engine run's files (its report, a checkpoint or a job log): a new job
    writing there would overwrite them and read the old report as its own."""
    ws = Workspace(folder)
    if not ws.root.is_dir():
        return False
    if ws.raport.exists() or any(ws.log(s).exists() for s in LOG_STREAMS):
        return True
    return next(ws.checkpoints(), None) is not None


class LogTail:
    """Reads a growing file from where the last read stopped (the CLI's `logs -f`, the app's log tab, the
    supervisor's last lines of stderr).

    `start`: the byte offset to begin at; None begins near the end (the last `tail_bytes`, from a line
    start). A file that shrank (replaced) is read again from its start.
    """

    def __init__(self, path: Path, start: Optional[int] = 0, tail_bytes: int = 64 * 1024) -> None:
        self.path = path
        self.offset = start
        self.tail_bytes = tail_bytes

    def read(self, partial: bool = False) -> bytes:
        """What was written since the last read: whole lines only, unless `partial` (the writer is done)."""
        try:
            with open(self.path, "rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                if self.offset is None or self.offset > size:
                    self.offset = self._line_start_near_end(fh, size) if self.offset is None else 0
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return b""
        end = len(chunk) if partial else chunk.rfind(b"\n") + 1  # a line being written waits otherwise
        self.offset += end
        return chunk[:end]

    def read_text(self, partial: bool = False) -> str:
        return self.read(partial).decode("utf-8", errors="replace")

    def _line_start_near_end(self, fh: IO[bytes], size: int) -> int:
        offset = max(0, size - self.tail_bytes)
        if offset:
            fh.seek(offset)
            offset += len(fh.readline())
        return offset


def last_lines(data: bytes, n: int) -> bytes:
    """The last `n` lines of `data` (none for n <= 0)."""
    return b"".join(data.splitlines(keepends=True)[-n:]) if n > 0 else b""
