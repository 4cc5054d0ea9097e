"""Benchmarks: ``python -m engine.bench <mode> …``; each mode is a module with ``main(argv) -> int``."""

from __future__ import annotations

from typing import Optional


def check_appendable(path: Optional[str], flag: str) -> Optional[str]:
    """Why the record file `path` (of `flag`) cannot be appended to, or None: asked before a run, so a
    wrong path costs no benchmark (and no run ends in a traceback with its loader workers alive)."""
    if path is None:
        return None
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        return f"{flag} {path}: {exc.strerror}; create its folder or pass another path"
    return None
