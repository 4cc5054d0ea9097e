"""An executor's options, declared once: the CLI's flags, the new-job form's fields and the checks all
come from the declaration (as submitit's executors validate their own parameters and harlequin's adapters
declare the options its CLI turns into flags).

    Option("nodes", int, "nodes, each running --cards processes", default=1, check=at_least(1))

becomes `rn50tui submit --nodes N` (under `--executor NAME`'s group), the form's "nodes" field, and a
SubmitError naming the flag when the value is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional

from rn50tui.jobs.core.errors import SubmitError

Check = Callable[[Any], Optional[str]]  # a value → what is wrong with it (None: nothing)


@dataclass(frozen=True)
class Option:
    """One option of an executor."""

    name: str  # the Python name; the flag is --name-with-dashes
    type: type  # int, float or str: what the flag and the form field parse
    help: str
    default: Any = None  # what applies when it is not given (None: the executor's config decides)
    check: Optional[Check] = None
    metavar: Optional[str] = None
    label: Optional[str] = None  # the form field's label (default: the name in words)
    in_form: bool = True  # False: a flag only (a site setting rarely changed per job)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def title(self) -> str:
        """The form field's label."""
        return self.label or self.name.replace("_", " ")

    @property
    def placeholder(self) -> str:
        """What an empty form field means."""
        return "config file's" if self.default is None else str(self.default)

    def parse(self, text: str) -> Any:
        """A form field's text as a value (None when empty); ValueError says what it must be."""
        text = text.strip()
        if not text:
            return None
        try:
            return self.type(text)
        except ValueError:
            kind = "an integer" if self.type is int else "a number" if self.type is float else "text"
            raise ValueError(f"{self.title} must be {kind}") from None

    def problem(self, value: Any) -> Optional[str]:
        """What is wrong with a given value, naming the flag (None: fine, or not given)."""
        if value is None or self.check is None:
            return None
        wrong = self.check(value)
        return f"{self.flag} {wrong}" if wrong else None


def at_least(low: float) -> Check:
    return lambda v: None if v >= low else f"must be at least {low}, got {v}"


def matches(pattern: str, what: str) -> Check:
    compiled = re.compile(pattern)
    return lambda v: None if compiled.match(str(v)) else f"{v!r} {what}"


def check_values(options: Iterable[Option], values: Mapping[str, Any]) -> None:
    """SubmitError (its `field`: the option's name) for the first given value its option refuses."""
    for option in options:
        wrong = option.problem(values.get(option.name))
        if wrong:
            raise SubmitError(wrong, field=option.name)
