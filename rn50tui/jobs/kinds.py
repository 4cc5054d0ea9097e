"""Job kinds that are not training runs: one mechanism for `prepare` (ImageNet in) and `export` (a model out).

A training, inference or benchmark job runs `python -m engine.train`; a job of one of these kinds runs
another engine entry point under the same detached supervisor, with the same cancel, resume and logs:

  prepare  python -m engine.data.prepare SRC DEST -j N [--resize N] --raport-file <workspace>/raport.json
           Its progress comes as STATUS `work` records in raport.json (engine/events.py), which the
           supervisor's follower stores (rn50tui/jobs/report.py): bytes done of all in `iteration` of
           `iters_per_epoch` (so `progress`, the list's percentage and the app's bar need nothing new),
           images/s in `ips`, the time left in `eta_end`, "images · MB" in `note`. A resume runs the same
           command: the prepare skips the classes it finished.
  export   python -m engine.export --resume CKPT --format F --out <source workspace>/export/FILE [...]
           The exported file and its sidecar FILE.json (with the parity check's results) go to the source
           job's workspace, where its Checkpoints tab lists them; the export job's own workspace holds its
           logs. It has no progress records: it is short, and its exit status says how it ended.

`plan` checks a request of these kinds (a refusal is a SubmitError, before any row is written),
`command` gives an attempt's argv (the launcher asks it first) and `ready` makes the folders an attempt
writes to (the supervisor calls it before it starts one). No torch here.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from rn50tui.jobs.core.errors import JobNotFound, SubmitError
from rn50tui.jobs.core.records import Job
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.workspace import RAPORT_FILE

KINDS = ("prepare", "export")  # the kinds this module runs (train / infer / bench: engine.train)
MODULES = {"prepare": "engine.data.prepare", "export": "engine.export"}
EXPORT_DIR = "export"  # in the source job's workspace
EXPORT_FORMATS = ("onnx", "pt2")
EXPORT_WEIGHTS = ("best", "model", "ema")
BEST_CHECKPOINT = "model_best.pth.tar"


def is_work(kind: str) -> bool:
    """True for a kind this module runs (not a training run)."""
    return kind in KINDS


def command(job: Job, python: str = sys.executable) -> list[str]:
    """The argv of one attempt of a `prepare` or `export` job (the same for every attempt)."""
    head = [python, "-m", MODULES[job.kind], *job.argv]
    if job.kind == "prepare":
        return head + ["--raport-file", str(Path(job.workspace) / RAPORT_FILE)]
    return head


def ready(job: Job) -> None:
    """What an attempt needs on disk before it starts: an export's output folder (OSError if it cannot)."""
    out = export_out(job)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)


# ------------------------------------------------------------------------------------------------ plans


@dataclass(frozen=True)
class WorkPlan:
    """A checked request of one of these kinds (what submission.Plan holds for a training run)."""

    name: str
    kind: str
    preset: Optional[str]
    argv: list[str]
    device: str
    cards: int
    workspace: Optional[str]
    executor: str = "local"


def plan(kind: str, options: Mapping[str, Any], get_job: Callable[[int], Job], cwd: Path,
         name: Optional[str] = None) -> WorkPlan:  # fmt: skip
    """Check a `prepare` or `export` request; SubmitError naming the fix."""
    if kind == "prepare":
        argv, default = _prepare_argv(options, cwd)
    elif kind == "export":
        argv, default = _export_argv(options, get_job, cwd)
    else:
        raise SubmitError(f"unknown job kind {kind!r}: use train, {', '.join(KINDS)}", "kind")
    return WorkPlan(name or default, kind, None, argv, "cpu", 1, None)


def _prepare_argv(options: Mapping[str, Any], cwd: Path) -> tuple[list[str], str]:
    src_text, dest_text = options.get("source"), options.get("target")
    if not src_text or not dest_text:
        raise SubmitError("a prepare job needs --from SRC (the ImageNet download) and --to DEST", "source")
    src, dest = (cwd / str(src_text)).resolve(), (cwd / str(dest_text)).resolve()
    if not src.exists():
        raise SubmitError(
            f"--from {src} does not exist: give the folder holding the ImageNet archives", "source"
        )
    if not src.is_dir():
        raise SubmitError(f"--from {src} is not a folder: give the folder holding the archives", "source")
    if dest == src or src in dest.parents:
        raise SubmitError(f"--to {dest} is inside --from {src}: choose a folder outside the source", "target")
    if dest.exists() and not dest.is_dir():
        raise SubmitError(f"--to {dest} is a file: choose a folder", "target")
    argv = [str(src), str(dest)]
    for flag, key in (("-j", "jobs"), ("--resize", "resize")):
        value = options.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SubmitError(f"{flag} must be a whole number of at least 1, not {value!r}", key)
            argv += [flag, str(value)]
    return argv, f"prepare {dest.name}"


def _export_argv(
    options: Mapping[str, Any], get_job: Callable[[int], Job], cwd: Path
) -> tuple[list[str], str]:
    source = options.get("source")
    try:
        source_id = int(str(source))
    except ValueError:
        raise SubmitError(
            f"--from {source!r}: an export job needs --from JOB, a training job's id", "source"
        ) from None
    try:
        src = get_job(source_id)
    except JobNotFound:
        raise SubmitError(
            f"--from {source_id}: no job {source_id} (see `rn50tui jobs list`)", "source"
        ) from None
    fmt = options.get("format") or "onnx"
    weights = options.get("weights") or "best"
    if fmt not in EXPORT_FORMATS:
        raise SubmitError(f"--format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}", "format")
    if weights not in EXPORT_WEIGHTS:
        raise SubmitError(f"--weights {weights!r}: use one of {', '.join(EXPORT_WEIGHTS)}", "weights")
    ckpt = exportable_checkpoint(src)
    half = bool(options.get("half"))
    precision = "fp16" if half else "fp32"
    out = Path(src.workspace) / EXPORT_DIR / f"resnet50-{weights}-{precision}.{fmt}"
    argv = ["--resume", ckpt, "--format", fmt, "--out", str(out), "--weights", weights]
    if half:
        argv.append("--half")
    data = options.get("data")
    if data:
        folder = (cwd / str(data)).resolve()
        if not (folder / "val").is_dir():
            raise SubmitError(
                f"--data {folder} has no val/ folder: give the dataset root the job trained on", "data"
            )
        argv += ["--data", str(folder)]
    image_size = _image_size(src.argv)
    if image_size is not None:
        argv += ["--image-size", str(image_size)]
    return argv, f"export {source_id} {fmt}"


def exportable_checkpoint(job: Job) -> str:
    """The checkpoint an export of `job` reads (its best, else its last); SubmitError naming the fix."""
    if job.kind != "train":
        raise SubmitError(f"job {job.id} is a {job.kind} job: export a training job's checkpoint", "source")
    if job.status is not Status.COMPLETED:
        fix = "wait until it completes" if job.status.active else f"`rn50tui resume {job.id}` to finish it"
        raise SubmitError(
            f"job {job.id} is {job.status.value}, not completed: {fix}, then export it", "source"
        )
    for candidate in (Path(job.workspace) / BEST_CHECKPOINT, job.last_checkpoint, job.files.checkpoint):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise SubmitError(f"job {job.id} left no checkpoint in {job.workspace}: train with checkpoints on "
                      "(no --no-checkpoints) and export that job", "source")  # fmt: skip


def _image_size(argv: list[str]) -> Optional[int]:
    """The --image-size a training job ran at, the last one given winning as in the engine's parser (None:
    the engine's default, which the export shares)."""
    size = None
    for i, token in enumerate(argv):
        flag, eq, value = token.partition("=")
        if flag == "--image-size":
            text = value if eq else (argv[i + 1] if i + 1 < len(argv) else "")
            size = int(text) if text.isdigit() else None
    return size


# ---------------------------------------------------------------------------------------------- outputs


def export_out(job: Job) -> Optional[Path]:
    """The file an export job writes (its --out), None for another kind."""
    if job.kind != "export" or "--out" not in job.argv:
        return None
    i = job.argv.index("--out")
    return Path(job.argv[i + 1]) if i + 1 < len(job.argv) else None


def read_sidecar(model: Path) -> Optional[dict[str, Any]]:
    """The sidecar JSON beside an exported file (None if absent or unreadable)."""
    try:
        return json.loads(Path(f"{model}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def check_text(check: Optional[Mapping[str, Any]]) -> str:
    """An export's parity check in one line: `max |logit diff| 2e-06 (rel 1e-07, ok) · top-1 agreement
    100.0% · val top-1 72.10% exported, 72.12% PyTorch`."""
    if not check:
        return "not checked"
    rel, tol = check.get("max_rel_diff"), check.get("tolerance")
    ok = rel is not None and tol is not None and rel <= tol
    parts = [f"max |logit diff| {check.get('max_abs_diff', float('nan')):.3g} (relative {rel:.3g}, "
             f"{'ok' if ok else 'FAILED'})" if rel is not None else "no difference measured",
             f"top-1 agreement {100 * float(check.get('top1_agreement') or 0):.1f}%"]  # fmt: skip
    if check.get("top1_exported") is not None and check.get("top1_pytorch") is not None:
        parts.append(
            f"val top-1 {check['top1_exported']:.2f}% exported, {check['top1_pytorch']:.2f}% PyTorch"
        )
    return " · ".join(parts)


@dataclass(frozen=True)
class ExportedFile:
    """One exported model in a workspace's export folder, with what its sidecar says."""

    path: Path
    size: int
    mtime: float
    format: str
    precision: str
    check: Optional[dict[str, Any]]

    @property
    def check_line(self) -> str:
        return check_text(self.check)


def exported_files(workspace: str | Path) -> list[ExportedFile]:
    """The exported models of a job (from the sidecars in `<workspace>/export/`), newest first."""
    folder = Path(workspace) / EXPORT_DIR
    found = []
    try:
        sidecars = sorted(folder.glob("*.json"))
    except OSError:
        return []
    for sidecar in sidecars:
        model = sidecar.with_name(sidecar.name[: -len(".json")])
        meta = read_sidecar(model)
        if meta is None or model.name.startswith("."):  # a staged temp file, not an export
            continue
        try:
            st = model.stat()
        except OSError:
            continue
        found.append(ExportedFile(model, st.st_size, st.st_mtime, str(meta.get("format", model.suffix[1:])),
                                  str(meta.get("precision", "")), meta.get("check")))  # fmt: skip
    return sorted(found, key=lambda f: f.mtime, reverse=True)


def export_info(job: Job) -> Optional[dict[str, Any]]:
    """What `jobs show` says of an export job: its file, and its check once the file is kept."""
    out = export_out(job)
    if out is None:
        return None
    meta = read_sidecar(out) if out.is_file() else None
    info: dict[str, Any] = {"file": str(out), "written": meta is not None}
    if meta is not None:
        info.update(format=meta.get("format"), precision=meta.get("precision"), check=meta.get("check"),
                    check_line=check_text(meta.get("check")))  # fmt: skip
    return info
