"""`rn50tui data prepare` against plain `tar -xf` of the same official archives, on this machine.

    python benchmarks/prepare_bench.py [--classes 20] [--per-class 100] [--val-per-class 10]
                                       [--size 500x375] [-j N] [--resize N] [--rounds 2] [--dir DIR]

Builds a synthetic archive set (ILSVRC2012_img_train.tar of per-class tars, the flat val tar and a devkit
with a real meta.mat; JPEGs of about an ImageNet photo's size and cost). The tar side extracts the
outer train tar, then every inner tar, then the val tar (what a valprep.sh does before sorting val into
folders, so it is the lower bound of the manual way); the prepare side runs the real command with
verification on (its wall time includes starting Python; the tool's own line, printed too, does not).
Rounds alternate which goes first, so drift on a shared machine hits both alike. Prints MB/s and images/s
of each, prepare/tar, and the load average before and after (on a shared machine, compare ratios).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.data.prepare import miniature  # noqa: E402


def tar_extract(src: Path, out: Path) -> float:
    """Seconds for tar -xf of the train tar, each inner tar into its class folder, and the val tar."""
    start = time.perf_counter()
    (out / "train").mkdir(parents=True)
    subprocess.run(
        ["tar", "-xf", str(src / "ILSVRC2012_img_train.tar"), "-C", str(out / "train")], check=True
    )
    for inner in sorted((out / "train").glob("*.tar")):
        folder = out / "train" / inner.stem
        folder.mkdir()
        subprocess.run(["tar", "-xf", str(inner), "-C", str(folder)], check=True)
        inner.unlink()
    (out / "val").mkdir()
    subprocess.run(["tar", "-xf", str(src / "ILSVRC2012_img_val.tar"), "-C", str(out / "val")], check=True)
    return time.perf_counter() - start


def prepare(src: Path, out: Path, jobs: int, resize: int | None) -> float:
    cmd = [sys.executable, "-m", "rn50tui", "data", "prepare", str(src), str(out), "-j", str(jobs)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    out = subprocess.run([*cmd, *(["--resize", str(resize)] if resize else [])], check=True, env=env,
                         capture_output=True, text=True)  # fmt: skip
    wall = time.perf_counter() - start
    own = re.search(
        r" in ([\d,.]+) s: ", out.stdout
    )  # the tool's own figure: without the interpreter's start
    print(f"  prepare said: {own and out.stdout[out.stdout.rfind('read ', 0, own.end()) :].splitlines()[0]}")
    return wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--classes", type=int, default=20)
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--val-per-class", type=int, default=10)
    p.add_argument("--size", default="500x375", help="WxH of the images (ImageNet's typical size)")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--resize", type=int, default=None)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp folder, removed)")
    a = p.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    work = Path(a.dir or tempfile.mkdtemp(prefix="prepare-bench-"))
    src = work / "src"
    if not src.exists():
        miniature.make_official(
            src, miniature.images(a.classes, a.per_class, a.val_per_class, (w, h), grain=16.0)
        )
    size = sum(f.stat().st_size for f in src.iterdir() if f.name.endswith(".tar"))
    images = a.classes * (a.per_class + a.val_per_class)
    print(
        f"archives: {size / 1e6:,.1f} MB, {images:,} images of {w}x{h}; -j {a.jobs}, {os.cpu_count()} cores"
    )
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    times: dict[str, list[float]] = {"tar -xf": [], "prepare": []}
    for r in range(a.rounds):
        order = ["tar -xf", "prepare"] if r % 2 == 0 else ["prepare", "tar -xf"]
        for side in order:
            out = work / f"out-{side.replace(' ', '')}"
            shutil.rmtree(out, ignore_errors=True)
            t = tar_extract(src, out) if side == "tar -xf" else prepare(src, out, a.jobs, a.resize)
            times[side].append(t)
            shutil.rmtree(out, ignore_errors=True)
    for side, ts in times.items():
        t = statistics.median(ts)
        print(f"{side:<8} {t:7.2f} s  {size / 1e6 / t:8.1f} MB/s  {images / t:9.0f} images/s  (rounds: "
              + ", ".join(f"{x:.2f}" for x in ts) + ")")  # fmt: skip
    ratio = statistics.median(times["tar -xf"]) / statistics.median(times["prepare"])
    print(f"prepare runs at {ratio:.2f}x tar's rate (goal: at least 0.8x, with verification on)")
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    if a.dir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
