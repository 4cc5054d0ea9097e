"""Turn a submit request (preset, name, cards, device, data, engine flags) into a checked job plan.

Everything that can be refused is refused here, before a row is written: an unknown preset, a missing
dataset, more cards than the host has, engine flags that `engine.config` rejects. Paths are made
absolute, because the engine runs in the job's workspace, not where the user typed the command.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from engine.config import ConfigError, TrainConfig, check, parse_args
from engine.device_kind import CARD_KINDS, DeviceKind
from rn50tui.jobs.core.errors import SubmitError
from rn50tui.jobs.core.workspace import RAPORT_FILE
from rn50tui.jobs.executors import DEFAULT_EXECUTOR, EXECUTORS
from rn50tui.jobs.presets import Preset, get_preset

PATH_FLAGS = ("--resume", "--pretrained-from-file", "--pretrained-weights")
# Flags the job manager sets itself for every attempt.
MANAGED_FLAGS = ("--workspace", "--raport-file")


@dataclass(frozen=True)
class Request:
    """What a user asked for; None means "the preset's (or the host's) default"."""

    preset: Optional[str] = None
    name: Optional[str] = None
    cards: Optional[int] = None
    device: Optional[str] = None
    data: Optional[str] = None
    checkpoint: Optional[str] = None
    engine_flags: tuple[str, ...] = ()
    executor: str = DEFAULT_EXECUTOR  # where it runs (rn50tui.jobs.executors)
    nodes: int = 1  # machines the job spans (an executor for a cluster), `cards` on each
    executor_options: Optional[Mapping[str, Any]] = None  # e.g. slurm: partition, time, … (None: defaults)
    kind: Optional[str] = (
        None  # None or "train": an engine.train run; "prepare" / "export": rn50tui/jobs/kinds.py
    )
    kind_options: Optional[Mapping[str, Any]] = None  # those kinds' own: source, target, format, weights, …


@dataclass(frozen=True)
class Plan:
    """A checked job, ready to be written to the store."""

    name: str
    kind: str
    preset: Optional[str]
    argv: list[str]  # engine flags, without --workspace / --raport-file (the launcher adds those)
    device: str
    cards: int
    workspace: Optional[str]  # None: the store's default, runs/<id>
    executor: str = DEFAULT_EXECUTOR


def plan(request: Request, capacity: dict[str, int], cwd: Optional[Path] = None) -> Plan:
    """Check `request` against the presets, the engine's flags and the host's cards."""
    cwd = Path(cwd or os.getcwd())
    if request.executor not in EXECUTORS:
        raise SubmitError(
            f"unknown executor {request.executor!r}: use one of {', '.join(sorted(EXECUTORS))}", "executor"
        )
    preset = get_preset(request.preset) if request.preset else None
    flags, workspace = _split_managed(_base_flags(request, preset, cwd) + list(request.engine_flags), cwd)
    first = _parse(flags)
    device = _resolve_device(request.device, first.device, preset, capacity)
    if first.device != device:
        flags += ["--device", device]
    cards = request.cards if request.cards is not None else (preset.cards if preset else 1)
    if EXECUTORS[request.executor].host_cards:
        _check_cards(device, cards, capacity)
    elif cards < 1:
        raise SubmitError(f"--cards must be at least 1, got {cards}")
    cfg = _parse(flags)
    _check(cfg, cards * request.nodes)
    flags = _absolute_paths(flags, cfg, cwd)
    return Plan(
        name=request.name or (preset.name if preset else "custom"),
        kind=preset.kind if preset else _kind_of(cfg),
        preset=preset.name if preset else None,
        argv=flags,
        device=device,
        cards=cards,
        workspace=workspace,
        executor=request.executor,
    )


def _base_flags(request: Request, preset: Optional[Preset], cwd: Path) -> list[str]:
    flags = list(preset.flags) if preset else []
    if request.data:
        data = (cwd / request.data).resolve()
        if data.exists() and not data.is_dir():
            raise SubmitError(
                f"dataset {data} is a file: pass the directory that holds train/ and val/", "data"
            )
        if not data.is_dir():
            raise SubmitError(f"dataset directory {data} does not exist", "data")
        flags.insert(0, str(data))
    elif preset and preset.needs_data:
        raise SubmitError(
            f"preset {preset.name} needs a dataset: pass --data DIR (with train/ and val/)", "data"
        )
    if request.checkpoint:
        ckpt = (cwd / request.checkpoint).resolve()
        if ckpt.is_dir():
            raise SubmitError(
                f"checkpoint {ckpt} is a directory: pass the file (checkpoint.pth.tar)", "checkpoint"
            )
        if not ckpt.is_file():
            raise SubmitError(f"checkpoint {ckpt} does not exist", "checkpoint")
        flags += ["--resume", str(ckpt)]
    elif preset and preset.needs_checkpoint and not _has_flag(request.engine_flags, "--resume"):
        raise SubmitError(f"preset {preset.name} needs weights: pass --checkpoint PATH", "checkpoint")
    return flags


def _parse(flags: list[str]) -> TrainConfig:
    """engine.config's verdict on the flags, as a SubmitError (argparse's exit becomes a message)."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            return parse_args([*flags, "--raport-file", RAPORT_FILE])
    except ConfigError as exc:
        raise SubmitError(f"engine flags refused: {exc}", "engine_flags") from None
    except SystemExit as exc:
        lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
        reason = lines[-1].split("error: ", 1)[-1] if lines else f"argparse exited with {exc.code}"
        raise SubmitError(
            f"engine flags refused: {reason} (see python -m engine.train --help)", "engine_flags"
        ) from None


def _check(cfg: TrainConfig, cards: int) -> None:
    try:
        check(cfg, world_size=cards)
    except ConfigError as exc:
        raise SubmitError(f"engine flags refused: {exc}", "engine_flags") from None


def _resolve_device(
    asked: Optional[str], flag: str, preset: Optional[Preset], capacity: dict[str, int]
) -> str:
    for choice in (asked, flag if flag != "auto" else None, preset.device if preset else None):
        if choice:
            try:
                return DeviceKind.parse(choice).value
            except ValueError as exc:
                raise SubmitError(str(exc), "device") from None
    return next((kind.value for kind in CARD_KINDS if capacity.get(kind, 0) > 0), DeviceKind.CPU.value)


def _check_cards(device: str, cards: int, capacity: dict[str, int]) -> None:
    if cards < 1:
        raise SubmitError(f"--cards must be at least 1, got {cards}", "cards")
    if device == "cpu":
        if capacity.get("cpu", 0) < 1:
            raise SubmitError(
                "this host allows no CPU jobs (RN50TUI_CARDS / --host-cards sets cpu=0)", "device"
            )
        cores = os.cpu_count() or 1
        if cards > cores:
            raise SubmitError(
                f"a CPU job of {cards} processes needs {cards} cores; this host has {cores}", "cards"
            )
        return
    have = capacity.get(device, 0)
    if cards > have:
        hint = "" if have else " (if telemetry cannot see them, set RN50TUI_CARDS, e.g. mlu=4)"
        raise SubmitError(f"the job wants {cards} {device} card(s); this host has {have}{hint}", "cards")


def _split_managed(flags: list[str], cwd: Path) -> tuple[list[str], Optional[str]]:
    """Drop --workspace / --raport-file (the manager sets them); a --workspace becomes the job's workspace."""
    out, workspace, i = [], None, 0
    while i < len(flags):
        flag, eq, value = flags[i].partition("=")
        if flag in MANAGED_FLAGS:
            if not eq:
                i += 1
                value = flags[i] if i < len(flags) else ""
            if flag == "--workspace" and value:
                workspace = str((cwd / value).resolve())
        else:
            out.append(flags[i])
        i += 1
    return out, workspace


def _absolute_paths(flags: list[str], cfg: TrainConfig, cwd: Path) -> list[str]:
    out = list(flags)
    for i, token in enumerate(out):
        flag, eq, value = token.partition("=")
        if flag in PATH_FLAGS and eq:
            out[i] = f"{flag}={(cwd / value).resolve()}"
        elif token in PATH_FLAGS and i + 1 < len(out):
            out[i + 1] = str((cwd / out[i + 1]).resolve())
    if cfg.data and cfg.data in out:
        out[out.index(cfg.data)] = str((cwd / cfg.data).resolve())
    return out


def _has_flag(flags: tuple[str, ...] | list[str], name: str) -> bool:
    return any(t == name or t.startswith(name + "=") for t in flags)


def _kind_of(cfg: TrainConfig) -> str:
    if cfg.evaluate:
        return "infer"
    return "bench" if cfg.prof > 0 else "train"


# ----------------------------------------------------------------------------------------------- sweeps

MAX_SWEEP_JOBS = 256  # a bigger sweep needs --yes
SWEEP_KEYS = {"lr": "--lr", "wd": "--weight-decay"}  # short names; any other key is the flag itself

Axis = tuple[str, str, list[str]]  # (key as typed, engine flag, values)


def parse_sweep(specs: Sequence[str]) -> list[Axis]:
    """`lr=1.024,2.048`, `wd=3.05e-5,1e-4`, `--label-smoothing=0,0.1` → axes; SubmitError naming --sweep."""
    axes: list[Axis] = []
    for spec in specs:
        key, eq, text = spec.partition("=")
        key = key.strip()
        values = [v.strip() for v in text.split(",")] if eq else []
        if not key or not values or any(not v for v in values):
            raise SubmitError(f"--sweep {spec!r}: write KEY=V1,V2,… (e.g. lr=1.024,2.048)", "sweep")
        flag = SWEEP_KEYS.get(key, key if key.startswith("--") else f"--{key}")
        if flag in MANAGED_FLAGS:
            raise SubmitError(f"--sweep {key}: {flag} is set by the job manager, not swept", "sweep")
        if any(flag == other for _, other, _ in axes):
            raise SubmitError(f"--sweep {key}: swept twice", "sweep")
        axes.append((key.lstrip("-"), flag, values))
    return axes


def sweep_points(axes: Sequence[Axis]) -> list[list[tuple[str, str, str]]]:
    """Every combination of the axes' values: [[(key, flag, value), …], …]."""
    points: list[list[tuple[str, str, str]]] = [[]]
    for key, flag, values in axes:
        points = [[*point, (key, flag, value)] for point in points for value in values]
    return points


def with_point(request: Request, base_name: str, point: Sequence[tuple[str, str, str]]) -> Request:
    """The request of one point of a sweep: named by its values, which come last in its engine flags."""
    name = " ".join([request.name or base_name, *(f"{key}={value}" for key, _, value in point)])
    flags = tuple(request.engine_flags) + tuple(f"{flag}={value}" for _, flag, value in point)
    return dataclasses.replace(request, name=name, engine_flags=flags)
