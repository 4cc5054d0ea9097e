"""rn50tui: the terminal home of ResNet-50 training jobs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__version__ = "0.1.0"

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # the folder holding engine/ and rn50tui/


def child_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with PROJECT_ROOT first on PYTHONPATH: a supervisor, engine or watcher started from a checkout
    imports this very code, installed or not."""
    out = dict(env)
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    return out
