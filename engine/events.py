"""The engine's event stream: DLLogger-compatible `raport.json` lines, and the status records beside them.

This module is the one place the schema lives. It imports no torch, so the job manager can follow a
running engine's file with it.

Every line is ``DLLL {json}``. Every record has ``timestamp`` (seconds since the epoch), ``datetime``
(ISO 8601, local time), ``elapsedtime`` (seconds since this writer opened) and ``type``:

``LOG``       DLLogger's metric records: ``step`` and ``data``.
              step ``"PARAMETER"``          data = every argument of the run (once per attempt)
              step ``[epoch, it]``          training, every ``-p`` iterations; epoch is 1-based, ``it`` 1-based
              step ``[epoch, it, val_it]``  validation, every ``-p`` iterations
              step ``[epoch]``              epoch summary (train.* means, val.* exact)
              step ``[]``                   run summary
``METADATA``  ``metric`` and ``metadata`` (``{"unit": ..., "format": ...}``), once per metric per attempt.
``STATUS``    what DLLogger has no word for: ``event`` and ``data``, one of :data:`STATUS_EVENTS`.

Epochs are counted from 1 wherever a record names one, as the port's logs do. A position (the
``epoch`` / ``iteration`` of ``checkpoint``, ``stopping`` and ``run_end``, the ``start_epoch`` /
``start_iter`` of ``run_start``) is "epoch N, I iterations into it", and ``iteration`` 0 means epoch N
is done (N = 0: nothing trained yet). A checkpoint file itself keeps the port's meaning (``epoch``: the
epochs done); :func:`readable_position` and :func:`stored_position` convert between the two.

Readers (the supervisor, NGC's own parsers) ignore record types they do not know; DLLogger's tools
read ``LOG`` and ``METADATA`` only, so ``STATUS`` lines do not disturb them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Protocol, TextIO

from engine.diskspace import MiB, free_bytes

PREFIX = "DLLL "

# Exit statuses of `python -m engine.train`; the supervisor maps them to job states.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_STOPPED = 75  # sysexits EX_TEMPFAIL: stopped on a signal after a checkpoint; resume continues it

# Units and formats of the metrics the engine writes, as DLLogger METADATA records.
METRICS: dict[str, dict[str, Any]] = {
    "train.loss": {"unit": None, "format": ":>5.5f"},
    "train.top1": {"unit": "%", "format": ":>3.2f"},
    "train.total_ips": {"unit": "img/s", "format": ":>.2f"},
    "train.compute_ips": {"unit": "img/s", "format": ":>.2f"},
    "train.data_time": {"unit": "s", "format": ":>.5f"},
    "train.compute_time": {"unit": "s", "format": ":>.5f"},
    "train.lr": {"unit": None, "format": ":>.6f"},
    "train.grad_scale": {"unit": None, "format": ":>.1f"},
    "val.loss": {"unit": None, "format": ":>5.5f"},
    "val.top1": {"unit": "%", "format": ":>3.2f"},
    "val.top5": {"unit": "%", "format": ":>3.2f"},
    "val.total_ips": {"unit": "img/s", "format": ":>.2f"},
    "val.compute_ips": {"unit": "img/s", "format": ":>.2f"},
    "val.compute_latency": {"unit": "s", "format": ":>.5f"},
    "val.compute_latency_at95": {"unit": "s", "format": ":>.5f"},
    "val.compute_latency_at99": {"unit": "s", "format": ":>.5f"},
    "val.compute_latency_at100": {"unit": "s", "format": ":>.5f"},
    "data.skipped_images": {"unit": "images", "format": ":d"},
    # an epoch record's wall time, training and validation (this attempt's part of a resumed epoch)
    "epoch.time": {"unit": "s", "format": ":>.2f"},
    # an epoch record's share of step time spent waiting for the next batch (engine/tensorboard.py)
    "train.data_wait_ratio": {"unit": None, "format": ":>.3f"},
    # the run's training and validation wall time up to this epoch's end, summed over its attempts; time
    # queued, stopped, loading a checkpoint or saving one is not counted (engine/progress.py)
    "run.train_seconds": {"unit": "s", "format": ":>.1f"},
    # --use-ema: the averaged weights, validated after the trained ones (upstream's val_ema.*)
    "val_ema.loss": {"unit": None, "format": ":>5.5f"},
    "val_ema.top1": {"unit": "%", "format": ":>3.2f"},
    "val_ema.top5": {"unit": "%", "format": ":>3.2f"},
}


class TextEnum(str, Enum):
    """An enum of the contract's words: compares equal to, prints and serialises as its word."""

    def __str__(self) -> str:
        return self.value


def readable_position(epochs_done: int, iteration: int) -> tuple[int, int]:
    """(epoch from 1, iterations into it) of a checkpoint's stored (epochs done, iterations into the next)."""
    return (epochs_done + 1, iteration) if iteration else (epochs_done, 0)


def stored_position(epoch: int, iteration: int) -> tuple[int, int]:
    """The inverse of :func:`readable_position`: what the checkpoint file stores."""
    return (max(0, epoch - 1), iteration) if iteration else (epoch, 0)


class RunEnd(TextEnum):
    """How a run ended: the `status` of its STATUS run_end record (the engine writes it, readers parse it)."""

    COMPLETED = "completed"
    STOPPED = "stopped"  # on a signal, after a checkpoint: resume continues it
    FAILED = "failed"


# STATUS events and the keys their `data` must carry (more keys are allowed).
STATUS_EVENTS: dict[str, tuple[str, ...]] = {
    # config: every argument; train_iters / val_iters: iterations per epoch (0 when that phase is off)
    "run_start": ("config", "start_epoch", "epochs", "train_iters", "val_iters", "world_size", "device"),
    "epoch_start": ("epoch", "train_iters", "start_iter"),
    "checkpoint": ("path", "epoch", "iteration", "is_best"),
    # --compile: the first training step of an attempt, which compiles; train.* figures leave it out
    "compile_warmup": ("seconds", "epoch", "iteration"),
    "stopping": ("signal", "epoch", "iteration"),
    "error": ("message",),
    # what the user should act on before it fails the run (a workspace disk too small for its checkpoints)
    "warning": ("message",),
    # --early-stopping-patience: val top-1 did not improve for `patience` epochs after `best_epoch`;
    # the run_end that follows is `completed` with a `reason`
    "early_stop": ("epoch", "best_epoch", "patience"),
    # a new best val top-1 (with --use-ema: the better of the model's and the EMA's): its epoch and the
    # run's training + validation seconds so far, summed over attempts (time queued, stopped, loading or
    # saving checkpoints not counted); `history`: every best so far, [{top1, epoch, train_seconds}, …]
    "best": ("top1", "epoch", "train_seconds", "history"),
    # an epoch whose steps waited for data more than `threshold` of the time; `message` says what to do
    "input_bound": ("ratio", "workers", "threshold", "message"),
    # the first epoch at or below the threshold after an input_bound one
    "compute_bound": ("ratio", "threshold"),
    # --target-top1: the run_end that follows is `completed` with a `reason` that says when and how fast
    "run_end": ("status",),
    # a job that is not a training run (an ImageNet prepare: engine/data/prepare/__main__.py): `done` of
    # `total` bytes, `images` written so far (over every attempt); optional `images_total` (None: unknown),
    # `ips` (images/s of this attempt) and `eta_s` (seconds left at this rate)
    "work": ("done", "total", "images"),
}


class SchemaError(ValueError):
    """A record that does not follow the event schema."""


@dataclass(frozen=True)
class Record:
    """One parsed line of raport.json."""

    type: str
    timestamp: float
    step: Any = None
    data: dict[str, Any] | None = None
    event: str | None = None
    metric: str | None = None
    metadata: dict[str, Any] | None = None

    @property
    def phase(self) -> str | None:
        """'train', 'val', 'epoch', 'summary' or 'parameter' for LOG records, else None."""
        if self.type != "LOG":
            return None
        if self.step == "PARAMETER":
            return "parameter"
        return {0: "summary", 1: "epoch", 2: "train", 3: "val"}.get(len(self.step))


def validate(obj: dict[str, Any]) -> None:
    """Raise SchemaError unless `obj` is a record this schema allows."""
    for key, kind in (("timestamp", (int, float)), ("datetime", str), ("elapsedtime", (int, float))):
        if not isinstance(obj.get(key), kind):
            raise SchemaError(f"record lacks {key!r}: {obj}")
    rtype = obj.get("type")
    if rtype == "LOG":
        step, data = obj.get("step"), obj.get("data")
        if not isinstance(data, dict):
            raise SchemaError(f"LOG record without a data object: {obj}")
        if step == "PARAMETER":
            return
        if not isinstance(step, list) or len(step) > 3 or not all(isinstance(s, int) for s in step):
            raise SchemaError(f"LOG step must be 'PARAMETER' or a list of up to 3 ints: {step!r}")
        unknown = [k for k in data if k not in METRICS]
        if unknown:
            raise SchemaError(f"LOG record with metrics not in METRICS: {unknown}")
        bad = [k for k, v in data.items() if not isinstance(v, (int, float))]
        if bad:
            raise SchemaError(f"LOG record with non-numeric values: {bad}")
    elif rtype == "METADATA":
        if obj.get("metric") not in METRICS or not isinstance(obj.get("metadata"), dict):
            raise SchemaError(f"METADATA record for an unknown metric: {obj}")
    elif rtype == "STATUS":
        event, data = obj.get("event"), obj.get("data")
        if event not in STATUS_EVENTS:
            raise SchemaError(f"unknown STATUS event {event!r}")
        if not isinstance(data, dict):
            raise SchemaError(f"STATUS record without a data object: {obj}")
        missing = [k for k in STATUS_EVENTS[event] if k not in data]
        if missing:
            raise SchemaError(f"STATUS {event} lacks {missing}")
    else:
        raise SchemaError(f"unknown record type {rtype!r}")


def parse_line(line: str) -> Record | None:
    """Parse one line; None for lines that are not DLLogger records (blank, foreign, torn)."""
    line = line.strip()
    if not line.startswith(PREFIX):
        return None
    try:
        obj = json.loads(line[len(PREFIX) :])
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or "type" not in obj:
        return None
    return Record(
        type=obj["type"],
        timestamp=float(obj.get("timestamp", 0.0)),
        step=obj.get("step"),
        data=obj.get("data"),
        event=obj.get("event"),
        metric=obj.get("metric"),
        metadata=obj.get("metadata"),
    )


def read_from(path: str | os.PathLike[str], offset: int = 0) -> tuple[list[Record], int]:
    """Read the complete lines after `offset`; return the records and the offset to continue from.

    A last line without its newline is being written: it is left for the next call.
    """
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            chunk = fh.read()
    except FileNotFoundError:
        return [], offset
    end = chunk.rfind(b"\n") + 1
    records = []
    for raw in chunk[:end].decode("utf-8", errors="replace").splitlines():
        rec = parse_line(raw)
        if rec is not None:
            records.append(rec)
    return records, offset + end


def iter_records(path: str | os.PathLike[str]) -> Iterator[Record]:
    """Every record of a finished file."""
    yield from read_from(path)[0]


class ReportWriteError(RuntimeError):
    """raport.json could not be written (a full disk); the message names the file, the cause and the fix."""


class RecordSink(Protocol):
    """Something fed every record the writer writes (the TensorBoard files: engine/tensorboard.py)."""

    def record(self, rec: Record) -> None: ...

    def close(self) -> None: ...


class EventWriter:
    """Appends records to raport.json (and optionally echoes a readable line to a stream).

    Rank 0 alone writes; other ranks get a writer with ``path=None`` that drops everything.
    Each record goes to the file in one unbuffered write, so a follower sees it while the run goes on
    and a failed write leaves nothing behind in a buffer to be written twice. A record always starts a
    line: after a torn last line (a write cut short by a full disk, in this attempt or an earlier one)
    the next record begins with a newline, so it is not lost in the torn one.
    """

    def __init__(self, path: str | os.PathLike[str] | None, echo: TextIO | None = None) -> None:
        self.path = os.fspath(path) if path else None
        self._fh = open(path, "ab", buffering=0) if path else None  # noqa: SIM115 - append: resumes keep history
        self._echo = echo
        self._start = time.time()
        self._metadata_written: set[str] = set()
        self._torn = self._fh is not None and not _ends_a_line(self.path)
        self._sinks: list[RecordSink] = []

    def add_sink(self, sink: RecordSink) -> None:
        """Feed `sink` every record written from now on; closed with the writer (rank 0's only)."""
        if self._fh is not None:
            self._sinks.append(sink)

    def _write(self, obj: dict[str, Any]) -> None:
        if self._fh is None:
            return
        now = time.time()
        rec = {
            "timestamp": now,
            "datetime": datetime.fromtimestamp(now).isoformat(),
            "elapsedtime": now - self._start,
            **obj,
        }
        data = (("\n" if self._torn else "") + PREFIX + json.dumps(rec, default=_jsonable) + "\n").encode()
        try:
            while data:
                data = data[self._fh.write(data) :]
        except OSError as exc:
            self._torn = True
            raise self._write_error(exc) from exc
        self._torn = False
        if self._sinks:  # the same record, so raport.json and every sink say the same
            record = Record(rec["type"], now, rec.get("step"), rec.get("data"), rec.get("event"),
                            rec.get("metric"), rec.get("metadata"))  # fmt: skip
            for sink in self._sinks:
                sink.record(record)

    def _write_error(self, exc: OSError) -> ReportWriteError:
        free_now = free_bytes(os.path.dirname(os.path.abspath(self.path or ".")))
        free = f"; {free_now // MiB} MiB free there" if free_now is not None else ""
        return ReportWriteError(
            f"could not write the run report {self.path}: {exc.strerror or exc}{free}; free space there or "
            "pass --workspace on a disk with room (the records already written are kept)"
        )

    def parameters(self, params: dict[str, Any]) -> None:
        self._write({"type": "LOG", "step": "PARAMETER", "data": params})

    def metrics(self, step: list[int], data: dict[str, float]) -> None:
        for name in data:
            if name not in self._metadata_written:
                self._metadata_written.add(name)
                self._write({"type": "METADATA", "metric": name, "metadata": METRICS[name]})
        self._write({"type": "LOG", "step": list(step), "data": data})
        if self._echo is not None and self._fh is not None:
            label = "Summary" if not step else "Epoch" if len(step) == 1 else "Iter"
            values = " ".join(f"{k} : {_fmt(k, v)}" for k, v in data.items())
            print(f"{label}: {tuple(step)} {values}", file=self._echo, flush=True)

    def status(self, event: str, **data: Any) -> None:
        self._write({"type": "STATUS", "event": event, "data": data})
        if self._echo is not None and self._fh is not None and event != "run_start":
            print(f"[{event}] " + " ".join(f"{k}={v}" for k, v in data.items()), file=self._echo, flush=True)

    def close(self) -> None:
        for sink in self._sinks:  # first: a stop on SIGTERM ends here too, and the sink flushes its files
            sink.close()
        self._sinks = []
        if self._fh is not None:
            self._fh.close()  # unbuffered: nothing is left to flush, so closing cannot fail on a full disk
            self._fh = None


def _ends_a_line(path: str) -> bool:
    """True for an empty file or one whose last byte is a newline."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return True
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"
    except OSError:
        return True


def _fmt(name: str, value: float) -> str:
    spec = METRICS[name]["format"].lstrip(":")
    try:
        return format(value, spec)
    except ValueError:
        return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)
