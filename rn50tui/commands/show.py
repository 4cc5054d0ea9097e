"""`rn50tui jobs show JOB`: everything the store knows about a job, its attempts and its view."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Optional

from engine.events import readable_position
from rn50tui import time_to_accuracy
from rn50tui.commands.common import manager
from rn50tui.jobs.core.workspace import LOG_STREAMS
from rn50tui.jobs.kinds import export_info
from rn50tui.jobs.policy import stall
from rn50tui.jobs.view import JobView, ema_curve, loss_is, view
from rn50tui.timefmt import duration, local_time


def add_parser(jsub: Any, common: argparse.ArgumentParser) -> None:
    """Register `jobs show` on the `jobs` subparsers."""
    sh = jsub.add_parser("show", parents=[common], help="everything the store knows about a job",
                         description="Everything the store knows about a job.")  # fmt: skip
    sh.add_argument("job", type=int, help="job id")
    sh.add_argument("--json", action="store_true", help="one JSON object")
    sh.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    jm = manager(args)
    job = jm.get_job(args.job)
    info = job.to_dict()
    if job.checkpoint_epoch is not None:  # epochs from 1, as the records and `jobs list` count them
        info["checkpoint_epoch"], info["checkpoint_iteration"] = readable_position(
            job.checkpoint_epoch, job.checkpoint_iteration or 0
        )
    info["claims"] = [f"{c.device}:{c.card}" for c in jm.claims(job.id)]
    info["metric_rows"] = jm.metric_count(job.id)
    info.update(_loss_info(jm, job))
    info["logs"] = {stream: str(job.files.log(stream)) for stream in LOG_STREAMS}
    info["cards"] = _latest_cards(jm, job)
    from rn50tui.jobs.view import idle_mark as mark

    idle = jm.idle_cards(job.id)
    info["idle_cards"] = [
        f"{d}:{c}" + (f"@{n}" if n else "") + f" {mark(s)}" for (n, d, c), s in sorted(idle.items(), key=str)
    ] or None
    info.update(ema_curve(jm.metrics(job.id, phase="epoch")))
    now = time.time()
    v = view(job, now)  # the one view of a job (rn50tui/jobs/view.py), as the app renders it
    with_stall(info, v.mark)
    info.update(first_started_at=v.started_at, ran_s=v.ran_s, eta_s=v.eta_s)
    if v.work is not None:  # a prepare's images, MB and ETA (rn50tui/jobs/view.py)
        info["work"] = v.work
    exported = export_info(job)  # an export job: its file and the parity check's results
    if exported is not None:
        info["export"] = exported
    info["time_to_best"] = time_to_accuracy.history_of(info.get("time_to_best"))
    info["after"] = [
        {"job": d, "status": None if st is None else st.value} for d, st in jm.dependencies(job.id)
    ]
    if job.status.value == "queued":
        estimate = jm.start_estimates(now).get(job.id)
        info["waits"] = jm.wait_reason(job.id)
        info["starts"] = estimate.text if estimate is not None else "unknown: its executor's queue decides"
        info["starts_at"] = estimate.at if estimate is not None else None
    attempts = jm.attempts(job.id)
    if args.json:
        print(json.dumps({**info, "attempts": [a.to_dict() for a in attempts]}))
        return 0
    info = _readable_times(info, v, now)
    info["after"] = ", ".join(f"job {d['job']} ({d['status'] or 'removed'})" for d in info["after"]) or None
    info.pop("starts_at", None)
    info["time_to_best"] = "\n".join(time_to_accuracy.lines(info["time_to_best"])) or None
    info["attempts"] = "\n".join(_attempt_line(a, job) for a in attempts)
    if "export" in info:
        info["export"] = _export_lines(info["export"])
    width = max(len(k) for k in info)
    for key, value in info.items():
        text = (
            json.dumps(value) if isinstance(value, (list, dict)) else ("-" if value is None else str(value))
        )
        lines = text.splitlines() or [""]
        print(f"{key.ljust(width)}  {lines[0]}")
        for line in lines[1:]:
            print(f"{' ' * width}  {line}")
    return 0


def _attempt_line(attempt: Any, job: Any) -> str:
    """`  2  failed       local  started 2026-… ran 1m40s  exit 1: out of memory` (its error's first line)."""
    ended = attempt.status.value if attempt.status is not None else (
        str(job.status) if attempt.number == job.attempt else "not recorded")  # fmt: skip
    parts = [f"{attempt.number:>3}  {ended:<12}", attempt.executor]
    if attempt.started_at:
        parts.append(f"started {local_time(attempt.started_at)}")
        parts.append(f"ran {duration((attempt.finished_at or time.time()) - attempt.started_at)}")
    if attempt.resume_from:
        parts.append(f"from {attempt.resume_from}")
    if attempt.exit_code is not None:
        parts.append(f"exit {attempt.exit_code}")
    if attempt.error:
        parts.append(attempt.error.splitlines()[0])
    return "  ".join(parts)


def _export_lines(e: dict[str, Any]) -> str:
    """An export job's file and check, for people."""
    if not e.get("written"):
        return f"{e['file']} (not written yet)"
    return f"{e['file']} ({e.get('format')}, {e.get('precision')})\ncheck: {e.get('check_line')}"


def _latest_cards(jm: Any, job: Any) -> dict[str, list[str]]:
    """The last sample of each card, grouped by node ("this host" for a local job's cards)."""
    recent = jm.device_samples(job.id, since=(job.heartbeat or time.time()) - 120)
    latest = {(s.node or "this host", s.device, s.card): s for s in recent}
    grouped: dict[str, list[str]] = {}
    for (node, device, card), s in sorted(latest.items()):
        util = "-" if s.util_percent is None else f"{s.util_percent:.0f}%"
        mem = "-" if s.mem_used_mib is None else f"{s.mem_used_mib:.0f} MiB"
        grouped.setdefault(node, []).append(f"{device} {card} util {util} mem {mem}")
    return grouped


def _loss_info(jm: Any, job: Any) -> dict[str, Any]:
    """Which loss `loss` is, and the raw last window beside it, labelled (the list shows only `loss`)."""
    window, epoch = jm.last_metric(job.id, "train"), jm.last_metric(job.id, "epoch")
    means = loss_is(job, window, epoch)
    raw = window.values.get("train.loss") if window is not None else None
    where = (
        f"raw mean of the last -p window (epoch {window.epoch}, to iteration {window.iteration})"
        if raw is not None
        else None
    )
    return {"loss_is": means, "last_window_loss": raw, "last_window_is": where}


def _readable_times(info: dict[str, Any], v: JobView, now: float) -> dict[str, Any]:
    """`jobs show` for people: epoch seconds as local date-times, plus how long it waited and ran (over
    every attempt) and its ETA, from the job's view."""
    out = {k: (local_time(x, now) if k in TIME_FIELDS and x is not None else x) for k, x in info.items()}
    out.pop("ran_s", None)
    out.pop("eta_s", None)
    if info.get("started_at") and info.get("queued_at"):
        out["waited"] = duration(info["started_at"] - info["queued_at"])
    mark = info.get("stalled")
    if mark:
        what = "no training progress" if mark["kind"] == "stalled" else "supervisor hung (stale heartbeat)"
        out["stalled"] = f"{what} for {duration(mark['for_s'])}, since {local_time(mark['since'], now)}"
    if v.eta is not None:
        out["eta"] = f"{v.eta} left (ends about {local_time(now + (v.eta_s or 0), now)})"
    elif v.mark is not None and info.get("status") == "running":
        out["eta"] = "none while it makes no progress"
    if v.ran is not None:
        out["ran"] = v.ran
    return out


TIME_FIELDS = {"created_at", "queued_at", "started_at", "first_started_at", "finished_at", "updated_at", "heartbeat",
               "supervisor_started", "engine_started", "cancel_requested", "last_progress_at", "stalled_at", "eta_end"}  # fmt: skip


def with_stall(info: dict[str, Any], mark: Optional[stall.StallMark]) -> dict[str, Any]:
    """A `--json` object with its `stalled` mark (null when the job is not stalled)."""
    info["stalled"] = None if mark is None else mark.to_dict()
    return info
