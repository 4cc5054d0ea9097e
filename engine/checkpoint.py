"""Checkpoints: atomic save, keep-last-N, best model, strict resume, and the port's files.

The dict keeps the port's keys (`epoch`, `arch`, `state_dict`, `best_prec1`, `optimizer`, `amp`: the
GradScaler's state) so files load on either side, and adds what exact resume needs: `rng` and
`iteration` (the position inside the epoch `epoch` after a stop on a signal; 0 at an epoch's end).
Format 1 also kept the scaler under `scaler`; readers accept both.

Loading runs no code. Every value is a tensor or a plain type (`Checkpointer.save` refuses anything
else), so files load with `torch.load(weights_only=True)`, which unpickles no classes or functions; the
port's files and torchvision's weights load that way too, so nothing needs allow-listing with
`torch.serialization.add_safe_globals`. A file that still wants a class or function unpickled is refused
unless the user passes `--trust-checkpoint`.
"""

from __future__ import annotations

import errno
import os
import random
import re
import shutil
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import torch

from engine.config import TrainConfig
from engine.diskspace import MiB, free_bytes

FORMAT_VERSION = 2  # 2: the scaler under `amp` alone, the MLU's RNG state kept
BEST_FILENAME = "model_best.pth.tar"
TRUST_FLAG = "--trust-checkpoint"
PLAIN_TYPES = (torch.Tensor, str, int, float, bool, type(None))
TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(
    r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[a-z0-9_]+\.tmp$"
)  # .checkpoint.pth.tar.PID.XXXX.tmp
_LEGACY_TEMP_NAME = re.compile(r"^\..+\.pth\.tar\.[a-z0-9_]{8}\.tmp$")  # before the pid was in the name
LEGACY_TEMP_AGE_S = 600.0  # a temp of the old naming untouched this long has no writer left


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used for this run; the message says why and what to pass."""


class CheckpointWriteError(RuntimeError):
    """A checkpoint that could not be written (full disk, quota, I/O error); the last complete one stays."""


_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def _replacing(path: Path, need: int) -> Iterator[Path]:
    """A temp file beside `path` that replaces it, fsynced, when the block succeeds; removed otherwise.

    A failed write of about `need` bytes is a CheckpointWriteError that names the disk's free space.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # the writer's pid in the name: a temp whose writer is gone (killed mid-save) is known to be stale
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, (OSError, RuntimeError)) and not isinstance(exc, CheckpointError):
            raise write_error(path, exc, need) from exc
        raise
    _fsync_dir(path.parent)


def write_error(path: Path, exc: BaseException, need: int) -> CheckpointWriteError:
    """What a user needs of a failed checkpoint write: where, why, how much room, and the fix.

    torch's zip writer reports a full disk as "unexpected pos" or "file write failed", never ENOSPC, so
    the free space (read after the partial file is gone) decides whether the disk was the cause.
    """
    free = free_bytes(path.parent)
    full = (isinstance(exc, OSError) and exc.errno in _SPACE_ERRNOS) or (free is not None and free < need)
    cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    why = "the disk is full" if full else cause
    room = f"{free / MiB:.0f} MiB free there" if free is not None else "free space unknown"
    fix = ("free space there or pass --workspace on a disk with room" if full
           else "check the disk and its permissions, or pass --workspace elsewhere")  # fmt: skip
    kept = f"the earlier {path.name} is untouched" if path.exists() else f"no partial {path.name} was left"
    return CheckpointWriteError(
        f"could not write checkpoint {path}: {why} (it needs about {need / MiB:.0f} MiB; {room}); {fix}. "
        f"Nothing was overwritten: {kept}"
    )


def state_bytes(obj: Any) -> int:
    """The bytes of every tensor in `obj`: torch.save writes them uncompressed, so about a file's size."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(state_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(state_bytes(v) for v in obj)
    return 0


def stale_temps(folder: Path, now: Optional[float] = None) -> list[Path]:
    """The checkpoint temp files in `folder` that no live process writes (left by a kill during a save)."""
    now = time.time() if now is None else now
    found = []
    for entry in folder.iterdir() if folder.is_dir() else ():
        m = _TEMP_NAME.match(entry.name)
        if m is not None:
            if not _pid_alive(int(m.group("pid"))):
                found.append(entry)
        elif _LEGACY_TEMP_NAME.match(entry.name):
            try:
                if now - entry.stat().st_mtime > LEGACY_TEMP_AGE_S:
                    found.append(entry)
            except FileNotFoundError:
                continue
    return sorted(found)


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete stale_temps(folder) (a killed save can leave ~190 MB); return what was removed."""
    removed = []
    for path in stale_temps(folder):
        try:
            path.unlink()
        except FileNotFoundError:  # another process cleaned it first
            continue
        removed.append(path)
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def save_atomic(obj: Any, path: Path) -> None:
    """Write to a temp file beside `path`, fsync, rename: a crash never leaves a torn checkpoint."""
    with _replacing(path, state_bytes(obj)) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)


def copy_atomic(src: Path, dst: Path) -> None:
    with _replacing(dst, src.stat().st_size) as tmp:
        shutil.copyfile(src, tmp)


def _device_rng(device_kind: str) -> Any:
    """torch.cuda or torch.mlu where it can save and restore its generator; None on CPU."""
    mod = getattr(torch, device_kind, None) if device_kind in ("cuda", "mlu") else None
    return mod if hasattr(mod, "get_rng_state") else None


def rng_state(device_kind: str) -> dict[str, Any]:
    """Every generator resume needs, as tensors and tuples of ints (plain types: no pickled classes)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    mod = _device_rng(device_kind)
    if mod is not None:
        state[device_kind] = mod.get_rng_state()
    return state


def restore_rng(state: Optional[dict[str, Any]], device_kind: str) -> None:
    if not state:
        return
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    mod = _device_rng(device_kind)
    if mod is not None and device_kind in state:
        mod.set_rng_state(state[device_kind])


def check_plain(value: Any, where: str = "checkpoint") -> None:
    """Raise TypeError naming the first value that is not a tensor or a plain type (it would need
    unpickling, so `weights_only=True` could not load the file)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where} has a key of type {type(k).__name__}: {k!r}")
            check_plain(v, f"{where}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_plain(v, f"{where}[{i}]")
    elif not isinstance(value, PLAIN_TYPES):
        raise TypeError(f"{where} is a {type(value).__module__}.{type(value).__qualname__}, not a plain type")


class Checkpointer:
    """Saves every piece of training state in one file; rank 0 alone writes (`enabled`)."""

    def __init__(self, cfg: TrainConfig, enabled: bool) -> None:
        self.cfg = cfg
        self.enabled = enabled and cfg.save_checkpoints
        self.path = cfg.workspace_path(cfg.checkpoint_filename)
        self.keep = cfg.gather_checkpoints

    def save(self, state: dict[str, Any], is_best: bool = False, end_of_epoch: bool = True,
             saved: Optional[Callable[[Path], None]] = None) -> Optional[Path]:  # fmt: skip
        """Write the rolling checkpoint, call `saved` with it, then copy it (model_best, per-epoch)."""
        if not self.enabled:
            return None
        state = {**state, "format_version": FORMAT_VERSION}
        check_plain(state)  # what cannot load with weights_only=True is never written
        save_atomic(state, self.path)
        if saved is not None:  # reported before the copies: if one fails (a full disk), resume still has it
            saved(self.path)
        if is_best:
            copy_atomic(self.path, self.path.with_name(BEST_FILENAME))
        if end_of_epoch and self.keep > 0:
            self._gather(state["epoch"])
        return self.path

    def space_note(self, need: int) -> Optional[str]:
        """A warning when the workspace's disk cannot hold this run's checkpoints of `need` bytes each."""
        files = 3 + self.keep  # checkpoint, model_best, a save's temp file, the per-epoch copies kept
        free = free_bytes(self.path.parent)
        if not self.enabled or free is None or free >= need * files:
            return None
        return (
            f"{self.path.parent} has {free / MiB:.0f} MiB free, but this run's checkpoints need about "
            f"{need * files / MiB:.0f} MiB ({files} files of {need / MiB:.0f} MiB at once): free space there or "
            "pass --workspace on a disk with room, or a checkpoint will fail"
        )

    def _gather(self, epoch: int) -> None:
        """Keep `checkpoint-<epoch>.pth.tar` for the last N epochs."""
        copy_atomic(self.path, self.path.with_name(f"checkpoint-{epoch}.pth.tar"))
        pattern = re.compile(r"checkpoint-(\d+)\.pth\.tar$")
        backups = sorted(
            (int(m.group(1)), p) for p in self.path.parent.iterdir() if (m := pattern.match(p.name))
        )
        for _, old in backups[: max(0, len(backups) - self.keep)]:
            old.unlink(missing_ok=True)


def load_checkpoint(path: str, trust: bool = False) -> dict[str, Any]:
    """Read a checkpoint onto the CPU without running code from it (`trust`: unpickle anything).

    An unreadable file, or one that needs unpickling when not trusted, is a CheckpointError.
    """
    if not Path(path).is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist (a missing checkpoint is never a fresh start)"
        )
    warn_if_weights_only_is_unsafe()
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=not trust)
    except Exception as exc:  # torch raises many kinds for a torn or foreign file
        code = None if trust else _needs_unpickling(exc)
        if code is not None:
            raise CheckpointError(
                f"checkpoint {path} wants {code} unpickled, which can run any code: if you trust where "
                f"the file comes from, pass {TRUST_FLAG}"
            ) from None
        raise CheckpointError(
            f"checkpoint {path} is not a readable checkpoint (corrupt or truncated){_last_good_copy(path)}"
        ) from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint {path} is not a checkpoint dict")
    if "state_dict" not in ckpt and all(isinstance(k, str) and "." in k for k in ckpt):
        ckpt = {"state_dict": ckpt}  # a bare state_dict (torchvision weights) is accepted as weights only
    return ckpt


def _last_good_copy(path: str) -> str:
    """The words "; the last good copy is …" naming the newest other checkpoint beside `path` whose zip is whole."""
    here = Path(path).resolve()
    copies = [p for p in here.parent.glob("*.pth.tar") if p != here and zipfile.is_zipfile(p)]
    if not copies:
        return ""
    newest = max(copies, key=lambda p: p.stat().st_mtime)
    return f"; the last good copy is {newest}: pass --resume {newest}"


def _needs_unpickling(exc: BaseException) -> Optional[str]:
    """The class or function a weights-only load refused, or None when the file is simply unreadable.

    torch words it "Unsupported global: GLOBAL io.open", "Unsupported class io.open" (torch 2.1) or
    "Trying to call reduce for unrecognized function"; a torn file gives "Unsupported operand".
    """
    text = str(exc)
    if "WeightsUnpickler" not in text and "Weights only load failed" not in text:
        return None
    m = re.search(r"(?:GLOBAL|Unsupported class|unrecognized function)\s+<?([\w.]+)", text)
    return m.group(1) if m else None  # else a torn file ("Unsupported operand"): nothing to trust


_warned_unsafe_torch = False
SAFE_WEIGHTS_ONLY = (2, 6)  # CVE-2025-32434: weights_only=True could still run code before torch 2.6


def torch_version() -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", torch.__version__)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def warn_if_weights_only_is_unsafe() -> None:
    """Say once per process that this torch's weights-only loader is not a safe boundary."""
    global _warned_unsafe_torch
    if _warned_unsafe_torch or torch_version() >= SAFE_WEIGHTS_ONLY:
        return
    _warned_unsafe_torch = True
    warnings.warn(
        f"torch {torch.__version__} is older than 2.6: torch.load(weights_only=True) there can still be "
        "made to run code by a crafted file (CVE-2025-32434); load checkpoints only from sources you "
        "trust, or use an image with torch >= 2.6",
        stacklevel=3,
    )


def arch_of(ckpt: dict[str, Any]) -> tuple[Optional[str], Optional[str], Optional[int]]:
    """(arch, model config, classes) from either side's `arch` key: a string or the port's tuple."""
    arch = ckpt.get("arch")
    if isinstance(arch, (tuple, list)):
        padded = list(arch) + [None] * (3 - len(arch))
        classes = padded[2] if isinstance(padded[2], int) else None
        return padded[0], padded[1], classes
    return (arch if isinstance(arch, str) else None), None, None


def check_resume(ckpt: dict[str, Any], cfg: TrainConfig, path: str) -> None:
    """Refuse a checkpoint of another architecture or class count, or a schedule already finished."""
    arch, _, classes = arch_of(ckpt)
    if arch is not None and arch != cfg.arch:
        raise CheckpointError(f"{path} holds a {arch} model, but --arch is {cfg.arch}")
    fc = ckpt.get("state_dict", {}).get("fc.weight", ckpt.get("state_dict", {}).get("module.fc.weight"))
    found = classes if classes is not None else (int(fc.shape[0]) if fc is not None else None)
    if found is not None and found != cfg.num_classes:
        raise CheckpointError(
            f"{path} has {found} classes, but --num-classes is {cfg.num_classes}: pass --num-classes {found}"
        )
    epoch = int(ckpt.get("epoch", 0))
    if finished_schedule(ckpt, cfg) and cfg.resume_finished != "complete":
        raise CheckpointError(
            f"{path} already finished {epoch} epochs and --epochs is {cfg.epochs}: pass --epochs N with "
            f"N > {epoch} to train further, or --evaluate to validate it"
        )


def finished_schedule(ckpt: dict[str, Any], cfg: TrainConfig) -> bool:
    """The checkpoint was taken at the end of the schedule's last epoch (validated and saved)."""
    return not cfg.evaluate and int(ckpt.get("epoch", 0)) >= cfg.epochs and int(ckpt.get("iteration", 0)) == 0
