"""The user's config file: `$XDG_CONFIG_HOME/rn50tui/config.toml` (else ~/.config/rn50tui/config.toml).

Every part of rn50tui reads it through :func:`load_tables` and takes its own table: `[slurm]`
(rn50tui/jobs/slurm/options.py), `[busy]` (rn50tui/jobs/policy/busy.py) and `[notify]`, read here:

    [notify]
    cmd = ["notify-send", "rn50tui"]   # or a string, split as a shell would, but never run by one
    timeout_s = 30                     # a hook still running then is killed
    bell = true                        # the terminal app rings the bell on a notification

A missing file is an empty config; a broken one raises UserConfigError naming the file and the problem.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rn50tui.jobs.core.errors import JobsError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - python 3.9/3.10
    import tomli as tomllib

CONFIG_ENV = "RN50TUI_CONFIG"  # an explicit path (tests, several setups side by side)
DEFAULT_HOOK_TIMEOUT_S = 30.0


class UserConfigError(JobsError):
    """The config file cannot be read or has a wrong value."""


@dataclass(frozen=True)
class NotifyConfig:
    cmd: Optional[list[str]] = None
    timeout_s: float = DEFAULT_HOOK_TIMEOUT_S
    bell: bool = False


def config_path(env: Optional[dict[str, str]] = None) -> Path:
    """$RN50TUI_CONFIG, else $XDG_CONFIG_HOME/rn50tui/config.toml, else ~/.config/rn50tui/config.toml."""
    env = dict(os.environ) if env is None else env
    explicit = env.get(CONFIG_ENV)
    if explicit:
        return Path(explicit)
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "rn50tui" / "config.toml"


def load_tables(path: Optional[Path] = None) -> dict[str, Any]:
    """The whole file as a dict ({} when there is none)."""
    path = path or config_path()
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise UserConfigError(f"{path} is not valid TOML ({exc}); fix or remove it") from None
    except OSError as exc:
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
