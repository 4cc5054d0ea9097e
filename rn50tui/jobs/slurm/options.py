"""A Slurm job's options: flags over the user's config file over the defaults.

The config file is the user's (rn50tui/jobs/core/userconfig.py: `$XDG_CONFIG_HOME/rn50tui/config.toml`, else
`~/.config/rn50tui/config.toml`); its `[slurm]` table:

    [slurm]
    partition = "mlu"
    account = "vision"
    gres = "mlu"            # some sites: "gpu:mlu370"
    time = "24:00:00"
    sbatch_args = ["--qos=normal"]
    poll_interval = 10      # seconds between the watcher's squeue calls
    grace = 120             # seconds before the time limit the engine gets SIGTERM to checkpoint
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Optional

from rn50tui.jobs.core.errors import SubmitError
from rn50tui.jobs.core.options import Option, at_least, check_values, matches
from rn50tui.jobs.core.userconfig import UserConfigError, config_path, load_tables

_WORD = r"^[A-Za-z0-9_.,:+-]+$"  # partition, account, gres: names Slurm itself accepts
_TIME = re.compile(r"^(\d+-)?\d+(:\d+){0,2}$|^\d+$")
_NAME = "is not a Slurm name (letters, digits, _ . , : + -)"

# The options a user gives per job (flags, form fields); the config file's [slurm] table sets them too,
# with the site settings below them in SlurmOptions.
OPTIONS = (
    Option("nodes", int, "nodes, each running --cards processes", default=1, check=at_least(1)),
    Option("partition", str, "Slurm partition", check=matches(_WORD, _NAME)),
    Option("account", str, "Slurm account", check=matches(_WORD, _NAME), in_form=False),
    Option("time", str, "time limit, e.g. 24:00:00; the engine checkpoints before it", metavar="LIMIT",
           label="time limit", check=lambda v: None if _TIME.match(v) else
           f"{v!r}: use Slurm's form, e.g. 24:00:00, 90 (minutes) or 1-12:00:00"),
    Option("gres", str, "the cards' gres name (some sites: gpu:mlu370)", default="mlu", metavar="NAME",
           check=matches(_WORD, _NAME), in_form=False),
    Option("auto_resume", int, "resubmit a job stopped by its time limit or preemption, up to N times",
           default=0, metavar="N", label="auto-resume",
           check=lambda v: None if v >= 0 else f"must be 0 or more, got {v}"),
)  # fmt: skip


@dataclass(frozen=True)
class SlurmOptions:
    nodes: int = 1
    partition: Optional[str] = None
    account: Optional[str] = None
    time: Optional[str] = None
    gres: str = "mlu"
    sbatch_args: list[str] = field(default_factory=list)
    auto_resume: int = 0
    poll_interval: float = 10.0
    grace: int = 120
    sample_interval: float = 5.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SlurmOptions:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def checked(self) -> SlurmOptions:
        """Self, or SubmitError naming the bad value and what Slurm accepts."""
        check_values(OPTIONS, asdict(self))
        limit = time_limit_s(self.time) if self.time else None
        if limit is not None and self.grace >= limit:
            raise SubmitError(f"--time {self.time} leaves no time to train: the engine is asked to stop {self.grace} s"
                              " before the limit (grace in the config file); give a longer --time or a smaller grace")  # fmt: skip
        if self.poll_interval <= 0 or self.grace < 0:
            raise SubmitError("slurm poll_interval must be > 0 and grace >= 0 (see the config file)")
        return self


def time_limit_s(text: str) -> int:
    """Slurm's time forms in seconds: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S."""
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if days:
        hours, minutes, seconds = (parts + [0, 0])[:3]
    elif len(parts) == 3:
        hours, minutes, seconds = parts
    else:
        hours, (minutes, seconds) = 0, (parts + [0])[:2]
    return ((int(days or 0) * 24 + hours) * 60 + minutes) * 60 + seconds


def load_config(path: Optional[Path] = None) -> dict[str, Any]:
    """The `[slurm]` table of the user's config file ({} when there is no file)."""
    path = path or config_path()
    try:
        table = load_tables(path).get("slurm", {})
    except UserConfigError as exc:
        raise SubmitError(str(exc)) from None
    if not isinstance(table, dict):
        raise SubmitError(f"{path}: [slurm] must be a table")
    known = {f.name for f in fields(SlurmOptions)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise SubmitError(
            f"{path}: unknown [slurm] key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return table


def resolve(flags: dict[str, Any], path: Optional[Path] = None) -> SlurmOptions:
    """Defaults, then the config file, then the flags that were given (None = not given)."""
    options = SlurmOptions.from_dict(load_config(path))
    given = {k: v for k, v in flags.items() if v is not None}
    return replace(options, **given).checked()


OPTIONS_FILE = "slurm/options.json"  # in the job's workspace: every attempt's batch script uses them


def save(workspace: Path, options: SlurmOptions) -> None:
    path = Path(workspace) / OPTIONS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(options.to_dict(), indent=1) + "\n")


def load(workspace: Path) -> SlurmOptions:
    try:
        return SlurmOptions.from_dict(json.loads((Path(workspace) / OPTIONS_FILE).read_text()))
    except FileNotFoundError:
        return SlurmOptions()
