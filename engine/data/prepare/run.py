"""`prepare(SRC, DEST)`: the source detected and checked, DEST claimed, classes written in parallel by a
process pool (a class a task; each worker reads its class's bytes from the archive itself, see sources.py),
then the lists and the manifest written last, atomically.

A rerun after Ctrl-C, kill -9 or a full disk skips the classes already renamed into place; what it
writes is byte-for-byte what an uninterrupted run writes (no timestamps, fixed encoder settings).
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Optional

from engine.data.prepare import write
from engine.data.prepare.errors import PrepareError
from engine.data.prepare.sources import Data, Source, detect
from engine.diskspace import MiB, free_bytes

FORMAT = 1
STATE = ".prepare"  # DEST's working folder: the run's identity and one report per finished class
VAL_PARTIAL = ".val.partial"
VAL_BATCH = 64  # val images per pool task
DIE_AFTER_ENV = "RN50TUI_PREPARE_DIE_AFTER"  # tests: SIGKILL this process after N train classes
SLOW_ENV = "RN50TUI_PREPARE_SLOW_S"  # tests: sleep this long after each train class (a job to watch)

Say = Callable[[str], None]
# (bytes done, bytes in all, images written): over every attempt, after each class or val batch
OnProgress = Callable[[int, int, int], None]


def prepare(src: Path, dest: Path, jobs: int, resize: Optional[int], say: Say, bar: bool,
            on_progress: Optional[OnProgress] = None) -> dict[str, Any]:  # fmt: skip
    """Write DEST from SRC (see the module docstring); returns the manifest. PrepareError on bad input.
    `bar`: a rich progress bar (a terminal); `on_progress`: told the progress (a job's report)."""
    src, dest = src.resolve(), dest.resolve()
    if dest == src or src in dest.parents:
        raise PrepareError(f"DEST {dest} is inside SRC {src}: choose a folder outside the source")
    source = detect(src)
    say(f"source: {source.form} in {src} ({len(source.names)} classes, {len(source.val_wnid)} val images)")
    identity = {"format": FORMAT, "form": source.form, "source": str(src), "resize": resize}
    done = _claim(dest, identity)
    if done is not None:
        say(f"{dest} is already prepared from this source: nothing to do")
        return done
    state = dest / STATE
    finished = _finished_classes(dest, state)
    val_done = (dest / "val").is_dir() and (state / "val.json").is_file()
    _check_space(dest, source, finished, val_done, resize, say)
    if finished:
        say(f"resuming: {len(finished)} of {len(source.names)} train classes already written")
    t0 = time.monotonic()
    total = write.Report()
    todo = _todo(source, finished, val_done)
    everything = sum(source.train_sizes.values()) + source.val_size
    already = (everything - todo, _images_done(state, finished, val_done))
    pool_of = worker_pool(jobs, torch=resize is not None)
    with pool_of as pool, _progress(bar, todo, on_progress, everything, already) as advance:
        try:
            total.add(_train(pool, jobs, source, dest, finished, resize, state, advance))
            if not val_done:
                total.add(_val(pool, jobs, source, dest, resize, state, advance))
        except OSError as e:
            raise _disk_error(e, dest) from e
    manifest = _finish(dest, source, identity, state)
    _say_rate(say, total, time.monotonic() - t0, manifest)
    return manifest


def _claim(dest: Path, identity: dict[str, Any]) -> Optional[dict[str, Any]]:
    """Check DEST can take this run; the finished manifest when it already holds exactly this one."""
    if dest.exists() and not dest.is_dir():
        raise PrepareError(f"DEST {dest} is a file: choose a folder")
    manifest, run = dest / "manifest.json", dest / STATE / "run.json"
    if manifest.is_file():
        m = json.loads(manifest.read_text())
        if m.get("identity") == identity and not run.exists():
            return m
        raise PrepareError(f"DEST {dest} already holds a dataset prepared from {m.get('identity', {}).get('source')}"
                           f" ({manifest}): choose an empty folder, or remove that one")  # fmt: skip
    if run.is_file():
        if json.loads(run.read_text()) != identity:
            raise PrepareError(f"DEST {dest} holds an unfinished prepare of another source or --resize ({run}): "
                               "rerun that command, or choose an empty folder")  # fmt: skip
        return None
    if dest.is_dir() and any(os.scandir(dest)):
        first = sorted(os.listdir(dest))[0]
        raise PrepareError(f"DEST {dest} is not empty (it holds {first}): choose an empty folder")
    try:
        (dest / STATE).mkdir(parents=True, exist_ok=True)
        write.atomic_write(run, json.dumps(identity, sort_keys=True).encode())
    except OSError as e:
        raise PrepareError(
            f"cannot write DEST {dest} ({e.strerror or e}): choose a folder you can write to"
        ) from e
    return None


def _finished_classes(dest: Path, state: Path) -> set[str]:
    """Train classes renamed into place with their report; stale temp folders are removed."""
    train = dest / "train"
    if not train.is_dir():
        return set()
    found = set()
    for e in os.scandir(train):
        if e.name.endswith(write.PARTIAL):
            shutil.rmtree(e.path)
        elif e.is_dir() and (state / f"train-{e.name}.json").is_file():
            found.add(e.name)
    return found


def _check_space(dest: Path, source: Source, finished: set[str], val_done: bool, resize: Optional[int],
                 say: Say) -> None:  # fmt: skip
    need = sum(s for w, s in source.train_sizes.items() if w not in finished) + (
        0 if val_done else source.val_size
    )
    if resize is not None:
        need = int(need * min(1.0, (resize / 375) ** 2))  # 375: a typical ImageNet shorter side; an estimate
    free = free_bytes(dest)
    say(f"needs about {need / MiB:,.1f} MiB in {dest}; {free / MiB if free is not None else 0:,.1f} MiB free")
    if free is not None and free < need:
        raise PrepareError(f"DEST {dest} has {free / MiB:,.0f} MiB free but this needs about {need / MiB:,.0f} MiB: "
                           "free space or choose another disk")  # fmt: skip


def _todo(source: Source, finished: set[str], val_done: bool) -> int:
    return sum(s for w, s in source.train_sizes.items() if w not in finished) + (
        0 if val_done else source.val_size
    )


def _images_done(state: Path, finished: set[str], val_done: bool) -> int:
    """Images written by earlier attempts (the finished classes' reports)."""
    names = [f"train-{w}.json" for w in finished] + (["val.json"] if val_done else [])
    total = 0
    for name in names:
        try:
            total += int(json.loads((state / name).read_text()).get("images", 0))
        except (OSError, ValueError):
            continue
    return total


def _train(pool: Any, jobs: int, source: Source, dest: Path, finished: set[str], resize: Optional[int],
           state: Path, advance: Callable[[int, int], None]) -> write.Report:  # fmt: skip
    die_after = int(os.environ.get(DIE_AFTER_ENV, "0"))
    slow = float(os.environ.get(SLOW_ENV, "0"))
    total = write.Report()
    (dest / "train").mkdir(exist_ok=True)
    tasks = (
        (write.write_class, (dest, "train", w, d, resize, state)) for w, d in source.train_classes(finished)
    )
    for count, report in enumerate(_bounded(pool, tasks, 2 * jobs), 1):
        total.add(report)
        advance(report.bytes_in, report.images)
        if die_after and count >= die_after:
            os.kill(os.getpid(), signal.SIGKILL)
        if slow:
            time.sleep(slow)
    return total


def _val(pool: Any, jobs: int, source: Source, dest: Path, resize: Optional[int], state: Path,
         advance: Callable[[int, int], None]) -> write.Report:  # fmt: skip
    tmp = dest / VAL_PARTIAL
    shutil.rmtree(tmp, ignore_errors=True)
    for wnid in sorted(set(source.val_wnid.values())):
        (tmp / wnid).mkdir(parents=True)
    total = write.Report()
    tasks = ((_write_val, (b, tmp, resize)) for b in _batches(source.val_images(), source.val_wnid))
    for report in _bounded(pool, tasks, 2 * jobs):
        total.add(report)
        advance(report.bytes_in, report.images)
    write.atomic_write(state / "val.json", json.dumps(total.to_json(), sort_keys=True).encode())
    os.rename(tmp, dest / "val")  # every val class appears at once
    return total


def _batches(
    images: Iterable[tuple[str, Data]], wnid_of: dict[str, str]
) -> Iterator[list[tuple[str, str, Data]]]:
    batch: list[tuple[str, str, Data]] = []
    for name, data in images:
        batch.append((wnid_of[name], name, data))
        if len(batch) == VAL_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_val(batch: list[tuple[str, str, Data]], tmp: Path, resize: Optional[int]) -> write.Report:
    total = write.Report()
    for wnid, name, data in batch:
        total.add(write.write_images([(name, data)], tmp / wnid, f"val/{wnid}", resize))
    return total


def _bounded(
    pool: Any, tasks: Iterable[tuple[Callable[..., Any], tuple[Any, ...]]], limit: int
) -> Iterator[Any]:
    """Results of `tasks` run on `pool`, at most `limit` in flight (bounds the bytes held in memory)."""
    pending: list[Any] = []
    for fn, args in tasks:
        pending.append(pool.apply_async(fn, args))
        while len(pending) >= limit or (pending and pending[0].ready()):
            yield pending.pop(0).get()
    while pending:
        yield pending.pop(0).get()


@contextmanager
def worker_pool(jobs: int, torch: bool = False) -> Iterator[Any]:
    """`jobs` worker processes. They need no torch (verify_rgb is PIL's); `torch`: they decode pixels with
    the engine's full decoder (--resize), so import it here once, before the fork, not in every worker."""
    if torch:
        from engine.data.decode import _torchvision

        _torchvision()
    ctx = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    pool = ctx.Pool(jobs, initializer=_init_worker)
    try:
        yield pool
    except BaseException:
        pool.terminate()  # Ctrl-C or an error: stop now; the rerun removes the temp folders
        pool.join()
        raise
    pool.close()
    pool.join()


def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    for sig in (signal.SIGTERM, signal.SIGHUP):  # a handler the main process set (a job's stop) is not
        signal.signal(sig, signal.SIG_DFL)  # the workers': pool.terminate() ends them with SIGTERM
    if sys.platform == "linux":  # die with the main process (kill -9): no orphan renaming folders later
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    torch = sys.modules.get("torch")
    if torch is not None:  # one decode per worker: -j sets the parallelism
        torch.set_num_threads(1)


@contextmanager
def _progress(bar: bool, total: int, on_progress: Optional[OnProgress] = None, everything: int = 0,
              already: tuple[int, int] = (0, 0)) -> Iterator[Callable[[int, int], None]]:  # fmt: skip
    """advance(bytes, images): the bar (on a terminal) and `on_progress` (a job's report) move on."""
    done = list(already)
    if on_progress is not None:
        on_progress(done[0], everything, done[1])

    def told(nbytes: int, images: int) -> None:
        done[0] += nbytes
        done[1] += images
        if on_progress is not None:
            on_progress(done[0], everything, done[1])

    if not bar:
        yield told
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(TextColumn("preparing"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TextColumn("{task.fields[images]:,} images"), TimeRemainingColumn(), transient=True) as p:  # fmt: skip
        task = p.add_task("prepare", total=total, images=0)
        seen = [0]

        def advance(nbytes: int, images: int) -> None:
            seen[0] += images
            p.update(task, advance=nbytes, images=seen[0])
            told(nbytes, images)

        yield advance


def _disk_error(e: OSError, dest: Path) -> Exception:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        free = free_bytes(dest) or 0
        return PrepareError(f"DEST {dest} is full ({free / MiB:,.0f} MiB free): free space and run the same "
                            "command again; finished classes are kept")  # fmt: skip
    return PrepareError(
        f"cannot write DEST {dest} ({e.strerror or e}): fix it and run the same command again"
    )


def _finish(dest: Path, source: Source, identity: dict[str, Any], state: Path) -> dict[str, Any]:
    """Lists and manifest from what DEST holds, written atomically; then the working folder goes."""
    from engine.data.prepare.manifest import build_manifest, list_lines

    manifest = build_manifest(dest, source, identity, state)
    for split in ("train", "val"):
        write.atomic_write(dest / f"{split}.txt", list_lines(dest, split, sorted(source.names)).encode())
    write.atomic_write(
        dest / "manifest.json", (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    )
    shutil.rmtree(state)
    return manifest


def _say_rate(say: Say, total: write.Report, seconds: float, manifest: dict[str, Any]) -> None:
    s = max(seconds, 1e-9)
    say(f"read {total.bytes_in / MiB:,.1f} MiB, {total.images:,} images in {seconds:,.1f} s: "
        f"{total.bytes_in / MiB / s:,.1f} MiB/s, {total.images / s:,.0f} images/s; "
        f"{len(manifest['rewritten'])} rewritten, {len(manifest['dropped'])} left out (see manifest.json)")  # fmt: skip
