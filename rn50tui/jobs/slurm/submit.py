"""The Slurm side of `rn50tui submit --executor slurm`: everything refused before a row is written."""

from __future__ import annotations

from typing import Any

from rn50tui.jobs.core.errors import SubmitError
from rn50tui.jobs.slurm import commands, script
from rn50tui.jobs.slurm.options import SlurmOptions, resolve

UNREACHABLE = (
    "configuration source",
    "Unable to contact slurm controller",
    "Connection refused",
    "Zero Bytes",
)


def prepare(flags: dict[str, Any]) -> SlurmOptions:
    """The job's options (flags over the config file); SubmitError without Slurm or on a bad value."""
    absent = commands.missing()
    if absent:
        raise SubmitError(absent)
    return resolve(flags)


def check_fits(name: str, device: str, cards: int, options: SlurmOptions) -> None:
    """`sbatch --test-only`: Slurm's own verdict (partition, account, cards per node) before queueing."""
    probe = script.Attempt(0, 1, name, script.Path("."), device, cards, ())
    argv = [
        a
        for a in script.sbatch_argv(probe, options)
        if not a.startswith(("--chdir=", "--output=", "--error="))
    ]
    try:
        commands.run(["sbatch", "--test-only", *argv, "--wrap=true"])
    except commands.SlurmError as exc:
        text = str(exc).removeprefix("sbatch failed: ")
        if any(n in text for n in UNREACHABLE):
            raise SubmitError(
                f"cannot reach the Slurm controller ({text}): check SLURM_CONF and `sinfo`"
            ) from None
        raise SubmitError(f"Slurm would never run this job: {text}") from None
