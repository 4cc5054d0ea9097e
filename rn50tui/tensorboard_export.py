"""`rn50tui export JOB --format tensorboard`: a job's stored metrics as TensorBoard event files.

For runs that never wrote their own (Slurm runs, runs from before the engine wrote them, runs without the
tensorboard package): the same scalars as the engine's files, from the same mapping
(:func:`engine.tensorboard.scalars`), each at the wall time of its record. The run goes in
`OUT/<id>-<name>/`, so `tensorboard --logdir OUT` shows every exported job as a run named after it.

The files are written with tensorboard's own EventFileWriter and its protobuf classes, not torch's
SummaryWriter: rn50tui never imports torch (the CLI must start fast, and a client may have no torch).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Optional

from engine.tensorboard import scalars
from rn50tui.extras import require

EVENT_FILE_GLOB = "events.out.tfevents.*"


def run_name(job_id: int, name: str) -> str:
    """`12-demo`: the job's id and name, made safe as one folder name."""
    return f"{job_id}-{re.sub(r'[^A-Za-z0-9._-]+', '_', name).strip('_') or 'job'}"


def export_job(jm: Any, job_id: int, out: str | os.PathLike[str], attempt: Optional[int] = None) -> Path:
    """Write job `job_id`'s scalars under `out`/<id>-<name>/ and return that folder.

    An earlier export of the job in that folder is replaced, so exporting twice never doubles the curves.
    """
    require("tensorboard", "tensorboard", "rn50tui export --format tensorboard")
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    job = jm.get_job(job_id)
    logdir = Path(out) / run_name(job.id, job.name)
    logdir.mkdir(parents=True, exist_ok=True)
    for old in logdir.glob(EVENT_FILE_GLOB):  # only the event files of an earlier export
        old.unlink()
    writer = EventFileWriter(str(logdir))
    try:
        for row in jm.metrics(job_id, attempt=attempt):
            step = [row.epoch, row.iteration] if row.phase == "train" else [row.epoch]
            if None in step:
                continue
            for tag, value, x in scalars(row.phase, step, row.values, job.iters_per_epoch):
                summary = Summary(value=[Summary.Value(tag=tag, simple_value=value)])
                writer.add_event(Event(wall_time=row.time, step=x, summary=summary))
    finally:
        writer.close()
    return logdir
