"""What the engine's commands print besides their records: their own warnings as one plain line."""

from __future__ import annotations

import warnings
from pathlib import Path

ENGINE_DIR = str(Path(__file__).resolve().parent)
_default_format = warnings.formatwarning


def _format(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001 (warnings' own signature)
    ours = str(filename).startswith(ENGINE_DIR) or category.__module__.startswith("engine.")
    if ours:  # the message says it all, no source line to quote
        return f"warning: {message}\n"
    return _default_format(message, category, filename, lineno, line)


def plain_warnings() -> None:
    """Print the engine's warnings (a skipped image, the AMP fallback) as `warning: …`, one line each;
    other libraries' warnings keep Python's form (their file and line say where to look)."""
    warnings.formatwarning = _format
