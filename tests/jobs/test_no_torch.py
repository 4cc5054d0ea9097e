"""The job manager and the CLI never import torch or textual (the CLI must start fast)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import cli_env

ROOT = Path(__file__).resolve().parents[2]
# Every module of the job service, found on disk: a module added or moved is covered without a list to keep.
MODULES = [
    ".".join(
        p.relative_to(ROOT).with_suffix("").parts[:-1]
        if p.name == "__init__.py"
        else p.relative_to(ROOT).with_suffix("").parts
    )
    for p in sorted((ROOT / "rn50tui" / "jobs").rglob("*.py"))
] + ["rn50tui.cli"]


def test_job_manager_modules_import_neither_torch_nor_textual():
    code = (
        "import importlib, sys\n"
        f"for m in {MODULES!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'textual', 'torchvision'))\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=60
    )
    assert proc.returncode == 0, proc.stderr
