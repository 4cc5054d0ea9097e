"""The one exception a prepare or a check raises for bad input: its message is one line (the file, the fix)."""

from __future__ import annotations


class PrepareError(Exception):
    """Input that cannot be prepared (a missing, truncated or mismatched file; a DEST that cannot take it)."""
