"""The user's config file: `$XDG_CONFIG_HOME/rn50tui/config.toml` (else ~/.config/rn50tui/config.toml).

Each part of rn50tui reads its own table and ignores the others (Slurm defaults, …). This module reads
`[notify]`:

    [notify]
    cmd = ["notify-send", "rn50tui"]   # or a string, split as a shell would, but never run by one
    timeout_s = 30                     # a hook still running then is killed
    bell = true                        # the terminal app rings the bell on a notification

A missing file is an empty config; a broken one raises UserConfigError naming the file and the problem.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import tomllib

from rn50tui.jobs.errors import JobsError

CONFIG_ENV = "RN50TUI_CONFIG"  # an explicit path (tests, several setups side by side)
DEFAULT_HOOK_TIMEOUT_S = 30.0


class UserConfigError(JobsError):
    """The config file cannot be read or has a wrong value."""


@dataclass(frozen=True)
class NotifyConfig:
    cmd: Optional[list[str]] = None
    timeout_s: float = DEFAULT_HOOK_TIMEOUT_S
    bell: bool = False


def config_path() -> Path:
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "rn50tui" / "config.toml"


def load_tables(path: Optional[Path] = None) -> dict[str, Any]:
    """The whole file as a dict ({} when there is none)."""
    path = path or config_path()
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserConfigError(f"cannot read {path}: {exc}") from exc


def load_notify(path: Optional[Path] = None) -> NotifyConfig:
    """The `[notify]` table; other tables are not looked at."""
    path = path or config_path()
    table = load_tables(path).get("notify", {})
    if not isinstance(table, dict):
        raise UserConfigError(f"{path}: `notify` must be a table ([notify])")
    try:
        cmd = parse_cmd(table["cmd"]) if table.get("cmd") else None
        timeout = float(table.get("timeout_s", DEFAULT_HOOK_TIMEOUT_S))
    except (TypeError, ValueError) as exc:
        raise UserConfigError(f"{path}: [notify] {exc}") from exc
    return NotifyConfig(cmd=cmd, timeout_s=timeout, bell=bool(table.get("bell", False)))


def parse_cmd(value: Any) -> list[str]:
    """A hook command as an argv: a list of strings, or a string split like a shell line (no shell runs it)."""
    if isinstance(value, str):
        argv = shlex.split(value)
    elif isinstance(value, list) and all(isinstance(a, str) for a in value):
        argv = list(value)
    else:
        raise ValueError(f"cmd must be a string or a list of strings, not {value!r}")
    if not argv:
        raise ValueError("cmd is empty")
    return argv
