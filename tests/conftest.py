"""Shared fixtures: the repository root, and a subprocess runner for the engine."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def engine_env(**extra: str) -> dict[str, str]:
    """The environment of an engine subprocess: this checkout first on the path, few threads."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "2")
    env.update(extra)
    return env


def run_engine(args: list[str], cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine.train", *args],
        cwd=cwd,
        env=engine_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The store the CLI finds from the test's own directory, on a host of one CPU slot and no card."""
    monkeypatch.setenv("RN50TUI_CARDS", "mlu=0,cuda=0,cpu=1")
    monkeypatch.delenv("RN50TUI_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "jobs.db"


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`rn50tui ARGS` in this process: (exit code, stdout, stderr)."""
    from rn50tui import cli

    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A job store's path in the test's own directory (the file is created on first open)."""
    return tmp_path / "jobs.db"


@pytest.fixture
def store(db_path: Path) -> Any:
    """A real SQLite job store, closed after the test."""
    from rn50tui.jobs.core.store import JobStore

    s = JobStore(db_path)
    yield s
    s.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """`small_disk(mb)`: a real filesystem of that size (tmpfs) to fill; skipped where none can be mounted."""
    mounted: list[Path] = []

    def mount(mb: int) -> Path:
        mnt = tmp_path / f"disk{len(mounted)}"
        mnt.mkdir()
        try:
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mb}m", "tmpfs", str(mnt)], check=True,
                           capture_output=True, timeout=30)  # fmt: skip
        except (OSError, subprocess.CalledProcessError) as exc:
            pytest.skip(f"cannot mount a small tmpfs here (needs root and CAP_SYS_ADMIN): {exc}")
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in mounted:
        subprocess.run(["umount", "-l", str(mnt)], check=False, timeout=30)
