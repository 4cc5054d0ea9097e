"""The job manager and the CLI never import torch or textual (the CLI must start fast)."""

from __future__ import annotations

import subprocess
import sys

from .conftest import cli_env

MODULES = ["rn50tui.jobs." + m for m in ("store", "states", "errors", "capacity", "procs", "presets", "submission",
           "launcher", "report", "lifecycle", "view", "scheduler", "reconcile", "supervisor", "manager")] + ["rn50tui.cli"]  # fmt: skip


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
