"""The new-job form's logic without widgets: field values → a checked `Request`, or messages per field.

The job manager's own check (`rn50tui.jobs.submission.plan`) has the last word; the field checks before it
only say *which* field is wrong, so the form can mark it while the user types.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from engine.device_kind import CARD_KINDS, KINDS
from rn50tui.jobs.core.errors import JobsError, SubmitError
from rn50tui.jobs.core.options import Option
from rn50tui.jobs.core.userconfig import parse_cmd
from rn50tui.jobs.executors import DEFAULT_EXECUTOR, Executor, get_executor
from rn50tui.jobs.policy.notify import resolve_hook
from rn50tui.jobs.policy.stall import ON_STALL
from rn50tui.jobs.presets import PRESETS, Preset
from rn50tui.jobs.submission import MAX_SWEEP_JOBS, Request, parse_sweep, plan, sweep_points, with_point

DEVICES = ("auto", *KINDS)
PRECISIONS = ("amp", "fp32")
# The submit request's field a SubmitError names → the form's input that shows it.
REQUEST_FIELDS = {"preset": "preset", "data": "data", "cards": "cards", "device": "device",
                  "checkpoint": "extra", "engine_flags": "extra", "notify_cmd": "notify_cmd", "after": "after",
                  "priority": "priority", "sweep": "sweep"}  # fmt: skip


@dataclass(frozen=True)
class FormValues:
    """What the form's fields hold, as typed (strings; empty means "the preset's default")."""

    preset: str = "demo"
    name: str = ""
    data: str = ""
    cards: str = ""
    device: str = "auto"
    precision: str = "fp32"
    batch_size: str = ""
    epochs: str = ""
    lr: str = ""
    extra: str = ""
    executor: str = DEFAULT_EXECUTOR  # a name of rn50tui.jobs.executors.EXECUTORS
    options: dict[str, str] = field(default_factory=dict)  # the executor's option fields (form_options)
    notify_cmd: str = ""  # the job's own hook, split like a shell line (empty: the config file's)
    on_stall: str = "notify"  # notify | cancel
    after: str = ""  # the jobs it waits for: `12,13`
    priority: str = ""  # an integer (empty: 0)
    sweep: str = ""  # `lr=1.024,2.048 wd=3.05e-5,1e-4`: one job per combination
    sweep_parallel: str = ""  # at most this many of the sweep at once (empty: no limit)


@dataclass(frozen=True)
class Verdict:
    """The form's state: a request ready to submit, or what is wrong with which field."""

    request: Optional[Request]
    errors: dict[str, str]  # field name → message; "form" for what no single field explains
    notify_cmd: Optional[list[str]] = None  # the hook's argv (None: the config file's)
    on_stall: Optional[str] = None
    queue: dict[str, Any] = field(default_factory=dict)  # after, priority, sweep, parallel (submit's)

    @property
    def ok(self) -> bool:
        return self.request is not None and not self.errors

    def message(self) -> str:
        return "\n".join(self.errors.values())


def defaults(preset_name: str) -> FormValues:
    """The fields a preset fills in when chosen."""
    preset = PRESETS[preset_name]
    flags = preset.flags
    return FormValues(
        preset=preset_name,
        cards=str(preset.cards),
        device=preset.device or "auto",
        precision="amp" if "--amp" in flags else "fp32",
        batch_size=_flag(flags, "-b", "--batch-size") or "",
        epochs=_flag(flags, "--epochs") or "",
        lr=_flag(flags, "--lr") or "",
    )


def check(values: FormValues, capacity: dict[str, int], cwd: Optional[Path] = None) -> Verdict:
    """Field checks first (so the right field turns red), then the job manager's own plan()."""
    errors: dict[str, str] = {}
    preset = PRESETS.get(values.preset)
    if preset is None:
        return Verdict(None, {"preset": f"unknown preset {values.preset!r}"})
    errors.update(_check_data(values, preset, cwd))
    errors.update(_check_numbers(values))
    flags: list[str] = []
    try:
        flags = shlex.split(values.extra)
    except ValueError as exc:
        errors["extra"] = f"engine flags: {exc}"
    hook = None
    try:
        hook = parse_cmd(values.notify_cmd) if values.notify_cmd.strip() else None
        hook = resolve_hook(hook, cwd or Path.cwd()) if hook else None  # as the manager will at submit
    except ValueError as exc:
        errors["notify_cmd"] = f"notify command: {exc}"
    if values.on_stall not in ON_STALL:
        errors["on_stall"] = f"on stall: one of {', '.join(ON_STALL)}, not {values.on_stall!r}"
    queue = _check_queue(values, errors)
    if errors:
        return Verdict(None, errors)
    errors.update(_check_options(values))
    if errors:
        return Verdict(None, errors)
    request = to_request(values, preset, flags)
    runner = get_executor(request.executor)
    if runner.options:
        errors.update(_check_executor(runner, request))
    if runner.host_cards:
        errors.update(_check_cards(request, preset, capacity))
    if errors:
        return Verdict(None, errors)
    try:
        base = plan(request, capacity, cwd)
        for key, flag, swept in parse_sweep(queue["sweep"]):  # each value as the engine's parser reads it
            for value in swept:
                try:
                    plan(with_point(request, base.name, [(key, flag, value)]), capacity, cwd)
                except SubmitError as exc:
                    raise SubmitError(f"--sweep {key}={value}: {exc}", "sweep") from None
        if len(sweep_points(parse_sweep(queue["sweep"]))) > MAX_SWEEP_JOBS:
            raise SubmitError(f"a sweep of more than {MAX_SWEEP_JOBS} jobs: use the CLI's --yes", "sweep")
    except SubmitError as exc:
        return Verdict(None, {REQUEST_FIELDS.get(exc.field or "", "form"): str(exc)})
    return Verdict(request, {}, hook, values.on_stall, queue)


def _check_queue(values: FormValues, errors: dict[str, str]) -> dict[str, Any]:
    """The after, priority, sweep and sweep-parallel fields as submit takes them; errors by field."""
    queue: dict[str, Any] = {"after": [], "priority": 0, "sweep": [], "parallel": None}
    parts = [p.strip() for p in values.after.replace(" ", ",").split(",") if p.strip()]
    if any(not p.isdigit() for p in parts):
        errors["after"] = "after: job ids, e.g. 12,13"
    else:
        queue["after"] = [int(p) for p in parts]
    try:
        queue["priority"] = int(values.priority) if values.priority.strip() else 0
    except ValueError:
        errors["priority"] = f"priority: an integer, not {values.priority!r}"
    queue["sweep"] = values.sweep.split()
    try:
        parse_sweep(queue["sweep"])
    except SubmitError as exc:
        errors["sweep"] = str(exc)
    if values.sweep_parallel.strip():
        text = values.sweep_parallel.strip()
        if not text.isdigit() or int(text) < 1 or not queue["sweep"]:
            errors["sweep_parallel"] = "sweep parallel: a whole number of at least 1, with a sweep"
        else:
            queue["parallel"] = int(text)
    return queue


def to_request(values: FormValues, preset: Preset, extra: list[str]) -> Request:
    """The request the fields describe: the preset plus the engine flags of the fields that differ."""
    flags: list[str] = []
    for flag, value in (("-b", values.batch_size), ("--epochs", values.epochs), ("--lr", values.lr)):
        if value.strip() and value.strip() != (_flag(preset.flags, flag) or ""):
            flags += [flag, value.strip()]
    flags += _warmup_within(values.epochs, preset)
    if values.precision == "amp" and "--amp" not in preset.flags:
        flags.append("--amp")
    if values.precision == "fp32" and "--amp" in preset.flags:
        flags.append("--no-amp")  # later flags win: the preset stays the preset
    fields = form_options(values.executor)
    options = {o.name: o.parse(values.options.get(o.name, "")) for o in fields} or None
    return Request(
        preset=preset.name, name=values.name.strip() or None, cards=int(values.cards) if values.cards.strip() else None,
        device=None if values.device == "auto" else values.device, data=values.data.strip() or None,
        engine_flags=tuple(flags + extra), executor=values.executor, nodes=(options or {}).get("nodes") or 1,
        executor_options=options,
    )  # fmt: skip


def form_options(executor: str) -> list[Option]:
    """The form's fields of an executor: its declared options, less the flag-only ones."""
    try:
        return [o for o in get_executor(executor).options if o.in_form]
    except JobsError:
        return []


def _check_options(values: FormValues) -> dict[str, str]:
    errors = {}
    for o in form_options(values.executor):
        try:
            o.parse(values.options.get(o.name, ""))
        except ValueError as exc:
            errors[o.name] = str(exc)
    return errors


def _check_executor(runner: Executor, request: Request) -> dict[str, str]:
    """The executor's own check of its options (its tools present, the values over its config file
    valid); a cluster's own verdict comes on submit."""
    try:
        runner.prepare(dict(request.executor_options or {}))
    except SubmitError as exc:
        text = str(exc)
        named = {o.name for o in runner.options}
        field = exc.field if exc.field in named else next(
            (o.name for o in runner.options if f"{o.flag} " in text), "executor")  # fmt: skip
        return {field: text}
    return {}


def _warmup_within(epochs: str, preset: Preset) -> list[str]:
    """Fewer epochs than the preset's warm-up: shorten the warm-up so the run is still valid."""
    warmup = _flag(preset.flags, "--warmup")
    if not (epochs.strip().isdigit() and warmup and warmup.isdigit()):
        return []
    n = int(epochs.strip())
    return ["--warmup", str(max(0, n - 1))] if 0 < n <= int(warmup) else []


def _check_data(values: FormValues, preset: Preset, cwd: Optional[Path]) -> dict[str, str]:
    text = values.data.strip()
    if not text:
        return (
            {"data": f"preset {preset.name} needs a dataset directory (with train/ and val/)"}
            if preset.needs_data
            else {}
        )
    path = (Path(cwd or os.getcwd()) / os.path.expanduser(text)).resolve()
    if not path.is_dir():
        return {"data": f"dataset directory {path} does not exist"}
    return {}


def _check_numbers(values: FormValues) -> dict[str, str]:
    errors = {}
    for name, text, kind in (("cards", values.cards, int), ("batch_size", values.batch_size, int),
                             ("epochs", values.epochs, int), ("lr", values.lr, float)):  # fmt: skip
        if not text.strip():
            continue
        try:
            number = kind(text.strip())
        except ValueError:
            errors[name] = f"{name.replace('_', ' ')} must be a{'n integer' if kind is int else ' number'}"
            continue
        if number <= 0 and name != "lr" or number < 0:
            errors[name] = f"{name.replace('_', ' ')} must be positive"
    return errors


def _check_cards(request: Request, preset: Preset, capacity: dict[str, int]) -> dict[str, str]:
    """More cards than the host has, said before submitting (plan() says it too, in the same words)."""
    cards = request.cards if request.cards is not None else preset.cards
    device = request.device or preset.device or next((k.value for k in CARD_KINDS if capacity.get(k)), "cpu")
    have = (os.cpu_count() or 1) if device == "cpu" else capacity.get(device, 0)
    if cards > have:
        unit = "cores" if device == "cpu" else f"{device} card(s)"
        return {"cards": f"the job wants {cards} {device} card(s); this host has {have} {unit}"}
    return {}


def _flag(flags: tuple[str, ...] | list[str], *names: str) -> Optional[str]:
    """The value of the last of `names` in flags."""
    found = None
    for i, token in enumerate(flags):
        if token in names and i + 1 < len(flags):
            found = flags[i + 1]
    return found
