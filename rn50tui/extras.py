"""Optional packages (pyproject's extras): find one at run time, or refuse with the pip command that adds it."""

from __future__ import annotations

import importlib.util

from rn50tui.jobs.core.errors import JobsError


class MissingExtra(JobsError):
    """A command needs a package of an optional extra that is not installed; the message names the fix."""


def require(module: str, extra: str, what: str) -> None:
    """Raise MissingExtra unless `module` can be imported: `what` (e.g. "rn50tui metrics") needs `extra`."""
    if importlib.util.find_spec(module) is None:
        raise MissingExtra(f"{what} needs the {module} package: pip install 'rn50tui[{extra}]'")
