"""A miniature ImageNet in both downloaded forms, built once per session, and a prepare runner."""

from __future__ import annotations

import io
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from engine.data.prepare import miniature
from tests.conftest import ROOT, engine_env


@pytest.fixture(scope="session")
def mini_data() -> dict:
    return miniature.images(classes=4, per_class=5, val_per_class=2, size=(48, 40))


@pytest.fixture(scope="session")
def official(tmp_path_factory, mini_data) -> Path:
    return miniature.make_official(tmp_path_factory.mktemp("official"), mini_data)


@pytest.fixture(scope="session")
def kaggle(tmp_path_factory, mini_data) -> Path:
    return miniature.make_kaggle(tmp_path_factory.mktemp("kaggle"), mini_data)


def cli(*args: str) -> tuple[int, str, str]:
    """`rn50tui ARGS` in this process: (exit status, stdout, stderr)."""
    from rn50tui.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def cli_process(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`rn50tui ARGS` in its own process (a kill -9 must not take the test with it)."""
    return subprocess.run([sys.executable, "-m", "rn50tui", *args], cwd=ROOT, env=engine_env(**env),
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` by relative path, with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
