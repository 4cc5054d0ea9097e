"""`python -m engine.bench report --out DIR [--quick]`: the whole picture of a card in its first minutes.

On whatever device this machine has: the device-marked tests (`pytest -m device`), training throughput
(AMP + channels-last, the largest batch that fits, stepping down from 256 on out-of-memory) on
synthetic data and then on generated 500×375 JPEGs through the real input pipeline, inference latency
per batch size, peak memory, the input pipeline's images/s, the same with `--compile` where it works,
and NVIDIA's published figures for the card beside ours. Each measurement runs in its own process (an
out-of-memory or a crash ends that section, not the report); DIR/report.json and DIR/report.md are
rewritten after every section, so a report cut short when the card is taken back still says what it
found. The measuring processes' output is kept in DIR/logs/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from engine.bench.published import card_entry, inference_rows, load_published, training_rows, why_none
from engine.bench.report_md import render_markdown
from engine.bench.train import EXIT_OOM

NOT_HERE = "not available here"
ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass(frozen=True)
class Plan:
    """How much each section measures: `FULL` on a card, `QUICK` to check the report itself (~2 min, CPU)."""

    image_size: int
    batches: tuple[int, ...]  # training batch sizes to try, largest first
    iters: int
    warmup: int
    infer_batches: str
    infer_iters: int
    infer_warmup: int
    jpegs: int
    pipeline_repeat: int
    compile_infer_batches: str
    step_timeout_s: int


FULL = Plan(224, (256, 224, 192, 160, 128, 96, 64, 48, 32, 16, 8), 50, 10, "1,2,4,8,16,32,64,128,256",
            50, 10, 2048, 2, "1,32,256", 600)  # fmt: skip
QUICK = Plan(64, (8,), 3, 1, "1,2,4", 3, 1, 40, 1, "1", 300)


@dataclass
class Section:
    id: str
    title: str
    status: str = "ok"  # ok | not available here | failed
    reason: str = ""
    seconds: float = 0.0
    data: Any = None


class Report:
    """The sections measured so far, written to DIR after each one."""

    def __init__(self, out: Path, quick: bool, argv: Sequence[str]) -> None:
        self.out, self.quick, self.argv = out, quick, list(argv)
        self.sections: list[Section] = []
        self.started = time.time()
        (out / "logs").mkdir(parents=True, exist_ok=True)

    def get(self, section_id: str) -> Optional[Section]:
        return next((s for s in self.sections if s.id == section_id), None)

    def add(self, section: Section) -> None:
        self.sections.append(section)
        self.write()

    def to_dict(self) -> dict[str, Any]:
        return {
            "report_version": 1,
            "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": "python -m engine.bench report " + " ".join(self.argv),
            "quick": self.quick,
            "elapsed_s": time.time() - self.started,
            "sections": [asdict(s) for s in self.sections],
        }

    def write(self) -> None:
        data = self.to_dict()
        (self.out / "report.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        (self.out / "report.md").write_text(render_markdown(data), encoding="utf-8")


# -- running the measuring processes ------------------------------------------------------------------
def run_logged(cmd: list[str], log: Path, timeout: int) -> subprocess.CompletedProcess:
    """Run `cmd` from the repository root with this checkout first on the path; keep its output in `log`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    try:
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = subprocess.CompletedProcess(
            cmd, 124, _text(exc.stdout), _text(exc.stderr) + f"\ntimed out after {timeout} s"
        )
    log.write_text(
        f"$ {' '.join(cmd)}\n# exit {out.returncode}\n{out.stdout}\n{out.stderr}", encoding="utf-8"
    )
    return out


def _text(b: Any) -> str:
    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


def last_line(out: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in (out.stderr + "\n" + out.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:") or "Error" in ln]
    return (errors or lines or [f"exit status {out.returncode}"])[-1].strip()[:300]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def timed(section_id: str, fn: Callable[..., Section], *args: Any) -> Section:
    start = time.perf_counter()
    try:
        section = fn(*args)
    except Exception as exc:  # a report section never takes the rest of the report with it
        section = Section(section_id, section_id, "failed", f"{type(exc).__name__}: {exc}")
    section.seconds = time.perf_counter() - start
    return section


# -- sections -------------------------------------------------------------------------------------------
def probe(device: str) -> dict[str, Any]:
    """What the machine has, asked in a child process so this one holds no device memory."""
    code = (
        "import json, os, torch\n"
        "from engine.accelerator import resolve_device\n"
        f"d = resolve_device({device!r}, amp=True)\n"
        "mlu = __import__('sys').modules.get('torch_mlu')\n"
        "mod = getattr(torch, d.kind, None) if d.kind != 'cpu' else None\n"
        "print(json.dumps({'kind': d.kind, 'name': d.name, 'count': mod.device_count() if mod else 1,\n"
        "  'memory_gib': mod.get_device_properties(0).total_memory / 2**30 if mod else None,\n"
        "  'amp': str(d.amp_dtype).replace('torch.', '') if d.amp_dtype else 'off (fp32)', 'note': d.note,\n"
        "  'tuning': d.tuning, 'torch': torch.__version__,\n"
        "  'torch_mlu': getattr(mlu, '__version__', None), 'cores': len(os.sched_getaffinity(0))}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"the device probe failed: {last_line(out)}")
    info = json.loads(out.stdout.strip().splitlines()[-1])
    info["load_average"] = os.getloadavg()
    info["host"] = os.uname().nodename
    return info


def environment(dev: dict[str, Any]) -> Section:
    return Section("environment", "Machine and software", data=dev)


def device_tests(dev: dict[str, Any], report: Report, plan: Plan) -> Section:
    s = Section("device_tests", "Device tests (pytest -m device)")
    tests = ROOT / "tests"
    if not tests.is_dir():
        s.status, s.reason = NOT_HERE, "the tests/ folder is not beside engine/ (run from a checkout)"
        return s
    cmd = [sys.executable, "-m", "pytest", "-m", "device", "-q", "-p", "no:cacheprovider", str(tests)]
    out = run_logged(cmd, report.out / "logs" / "device_tests.log", 900 if plan is FULL else 300)
    summary = next(
        (ln.strip(" =") for ln in reversed(out.stdout.splitlines()) if " in " in ln), last_line(out)
    )
    s.data = {"summary": summary, "exit": out.returncode}
    if out.returncode not in (0, 5):
        s.status, s.reason = "failed", summary
    elif dev["kind"] == "cpu":
        s.reason = "the device tests skip themselves: no MLU or CUDA card here"
    return s


def bench_train_cmd(plan: Plan, dev: dict[str, Any], batch: int, log: Path, data: Optional[Path] = None,
                    workers: int = 0, compile_: bool = False) -> list[str]:  # fmt: skip
    cmd = [sys.executable, "-m", "engine.bench", "train", "-b", str(batch), "--iters", str(plan.iters),
           "--warmup", str(plan.warmup), "--image-size", str(plan.image_size), "--amp", "--memory-format",
           "nhwc", "--device", dev["kind"], "--log", str(log)]  # fmt: skip
    if data is not None:
        cmd[4:4] = [str(data)]  # the dataset root, right after the mode
        cmd += ["-j", str(workers)]
    return cmd + (["--compile"] if compile_ else [])


def find_batch(try_batch: Callable[[int], tuple[int, Optional[dict], str]], batches: Sequence[int]) -> dict:
    """Try each batch size, largest first, until one runs; out-of-memory moves on, any other failure stops."""
    attempts = []
    for batch in batches:
        code, record, why = try_batch(batch)
        attempts.append({"batch": batch, "exit": code, "result": "ok" if code == 0 else why})
        if code == 0 and record is not None:
            return {"record": record, "attempts": attempts}
        if code != EXIT_OOM:
            return {"record": None, "attempts": attempts, "error": why}
    return {
        "record": None,
        "attempts": attempts,
        "error": f"out of memory at every batch down to {batches[-1]}",
    }


def train_synthetic(dev: dict[str, Any], report: Report, plan: Plan) -> Section:
    s = Section("train_synthetic", "Training, synthetic data (AMP, channels-last)")
    log = report.out / "logs" / "train_synthetic.jsonl"

    def attempt(batch: int) -> tuple[int, Optional[dict], str]:
        out = run_logged(bench_train_cmd(plan, dev, batch, log), report.out / "logs" / f"train_b{batch}.log",
                         plan.step_timeout_s)  # fmt: skip
        rows = [r for r in read_jsonl(log) if r["batch_size"] == batch]
        return out.returncode, (rows[-1] if rows and out.returncode == 0 else None), last_line(out)

    found = find_batch(attempt, plan.batches)
    s.data = found
    if found["record"] is None:
        s.status, s.reason = "failed", found["error"]
    elif dev["kind"] == "cpu" and plan is QUICK:
        s.reason = f"--quick: {plan.image_size} px, batch {plan.batches[0]} (a card starts at 256, 224 px)"
    return s


def found_batch(report: Report, plan: Plan) -> int:
    synthetic = report.get("train_synthetic")
    record = synthetic.data.get("record") if synthetic and synthetic.data else None
    return int(record["batch_size"]) if record else plan.batches[-1]


def train_real(dev: dict[str, Any], report: Report, plan: Plan, jpegs: Path) -> Section:
    s = Section("train_real", "Training, 500×375 JPEGs through the input pipeline (AMP, channels-last)")
    batch, workers = found_batch(report, plan), max(1, dev["cores"])
    log = report.out / "logs" / "train_real.jsonl"
    out = run_logged(bench_train_cmd(plan, dev, batch, log, jpegs, workers), report.out / "logs" / "train_real.log",
                     plan.step_timeout_s)  # fmt: skip
    rows = read_jsonl(log)
    if out.returncode != 0 or not rows:
        s.status, s.reason = "failed", last_line(out)
        return s
    s.data = {**rows[-1], "jpegs": count_files(jpegs), "workers": workers}
    return s


def count_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*.JPEG"))


def infer(dev: dict[str, Any], report: Report, plan: Plan) -> Section:
    s = Section("infer", "Inference latency per batch size")
    log = report.out / "logs" / "infer.jsonl"
    cmd = [sys.executable, "-m", "engine.bench", "infer", "--batch-sizes", plan.infer_batches, "--precision",
           "fp32,amp", "--iters", str(plan.infer_iters), "--warmup", str(plan.infer_warmup), "--image-size",
           str(plan.image_size), "--memory-format", "nhwc", "--device", dev["kind"], "--json", str(log)]  # fmt: skip
    out = run_logged(cmd, report.out / "logs" / "infer.log", plan.step_timeout_s * 2)
    rows = read_jsonl(log)
    s.data = {"rows": rows}
    if out.returncode != 0:
        s.status, s.reason = "failed", last_line(out)
    return s


def input_pipeline(dev: dict[str, Any], report: Report, plan: Plan, jpegs: Path) -> Section:
    """The loader alone (no model): images/s with 1 and with all cores' workers, the port's path beside."""
    from engine.bench import data as data_bench
    from engine.data import load_split

    s = Section("input_pipeline", "Input pipeline images/s (no model)")
    workers = max(1, dev["cores"])
    args = argparse.Namespace(split="train", image_size=plan.image_size if plan is QUICK else 224,
                              batch_size=32, workers=workers, repeat=plan.pipeline_repeat)  # fmt: skip
    samples = load_split(str(jpegs), "train", num_classes=1 << 30)
    rows = [{"path": p, "workers": w, "images_per_s": r} for p, w, r in data_bench.run(samples, args)]
    s.data = {"rows": rows, "images": len(samples), "crop": args.image_size}
    return s


def peak_memory(dev: dict[str, Any], report: Report) -> Section:
    s = Section("peak_memory", "Peak device memory")
    if dev["kind"] == "cpu":
        s.status, s.reason = NOT_HERE, "a CPU has no device-memory counter (torch counts MLU and CUDA memory)"
        return s
    rows = []
    for sid in ("train_synthetic", "train_real", "compile"):
        sec = report.get(sid)
        record = _train_record(sec)
        if record and record.get("peak_memory_mib") is not None:
            rows.append(
                {"run": sec.title, "batch": record["batch_size"], "peak_mib": record["peak_memory_mib"]}
            )
    s.data = {"rows": rows, "card_gib": dev.get("memory_gib")}
    if not rows:
        s.status, s.reason = "failed", "no training run finished to read its peak from"
    return s


def _train_record(sec: Optional[Section]) -> Optional[dict]:
    if sec is None or sec.status != "ok" or not sec.data:
        return None
    data = sec.data
    return data.get("record") or data.get("train") or (data if "batch_size" in data else None)


def compiled(dev: dict[str, Any], report: Report, plan: Plan) -> Section:
    s = Section("compile", "torch.compile (--compile)")
    if dev["kind"] == "cpu" and plan is QUICK:
        s.status = NOT_HERE
        s.reason = "--quick on a CPU: compiling ResNet-50 takes minutes here (about 3 on 2 cores), more than the whole quick report"
        return s
    batch = found_batch(report, plan)
    log = report.out / "logs" / "train_compiled.jsonl"
    out = run_logged(bench_train_cmd(plan, dev, batch, log, compile_=True), report.out / "logs" / "train_compiled.log",
                     plan.step_timeout_s * 2)  # fmt: skip
    rows = read_jsonl(log)
    if out.returncode != 0 or not rows:
        s.status, s.reason = NOT_HERE, f"torch.compile did not run here: {last_line(out)}"
        return s
    ilog = report.out / "logs" / "infer_compiled.jsonl"
    cmd = [sys.executable, "-m", "engine.bench", "infer", "--compile", "--batch-sizes", plan.compile_infer_batches,
           "--precision", "amp", "--iters", str(plan.infer_iters), "--warmup", str(plan.infer_warmup),
           "--image-size", str(plan.image_size), "--memory-format", "nhwc", "--device", dev["kind"],
           "--json", str(ilog)]  # fmt: skip
    iout = run_logged(cmd, report.out / "logs" / "infer_compiled.log", plan.step_timeout_s * 2)
    s.data = {"train": rows[-1], "infer": read_jsonl(ilog)}
    if iout.returncode != 0:
        s.data["infer_error"] = last_line(iout)
    return s


def published(dev: dict[str, Any], report: Report) -> Section:
    pub = load_published()
    s = Section("published", "NVIDIA's published figures beside ours")
    card = card_entry(dev["name"], pub) if dev["kind"] == "cuda" else None
    if card is None:
        s.status, s.reason = NOT_HERE, why_none(dev["kind"], dev["name"], pub)
        s.data = {"source": pub["source"]}
        return s
    record = _train_record(report.get("train_synthetic"))
    infer_sec = report.get("infer")
    ours_infer = infer_sec.data["rows"] if infer_sec and infer_sec.data else []
    s.data = {
        "card": card["card"],
        "system": card["system"],
        "source": pub["source"],
        "training": training_rows(card, record and record["images_per_s"], record and record["batch_size"]),
        "inference": inference_rows(card, ours_infer),
    }
    return s


# -- the command ----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.bench report", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, metavar="DIR", help="where report.md, report.json and logs/ go")
    p.add_argument("--quick", action="store_true", help="shrink everything (~2 min on a 2-core CPU)")
    p.add_argument("--device", default="auto", help="mlu, cuda, cpu or auto")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = build_parser().parse_args(argv)
    plan = QUICK if a.quick else FULL
    report = Report(Path(a.out).resolve(), a.quick, argv)  # absolute: the steps run from the checkout
    dev = probe(a.device)
    report.add(environment(dev))
    print(f"report on {dev['kind']} {dev['name']} → {report.out}/report.md", flush=True)
    _add(report, timed("device_tests", device_tests, dev, report, plan))
    _add(report, timed("train_synthetic", train_synthetic, dev, report, plan))
    with tempfile.TemporaryDirectory(prefix="rn50tui-report-") as tmp:
        jpegs = _jpeg_set(Path(tmp), plan)
        _add(report, timed("train_real", train_real, dev, report, plan, jpegs))
        _add(report, timed("input_pipeline", input_pipeline, dev, report, plan, jpegs))
    _add(report, timed("infer", infer, dev, report, plan))
    _add(report, timed("compile", compiled, dev, report, plan))
    _add(report, timed("peak_memory", peak_memory, dev, report))
    _add(report, timed("published", published, dev, report))
    print(f"done in {time.time() - report.started:.0f} s: {report.out}/report.md, {report.out}/report.json")
    return 0


def _add(report: Report, section: Section) -> None:
    report.add(section)
    note = f" ({section.reason})" if section.reason else ""
    print(f"  {section.title}: {section.status}{note} [{section.seconds:.0f} s]", flush=True)


def _jpeg_set(tmp: Path, plan: Plan) -> Path:
    from engine.data.testing import make_jpeg_set

    return make_jpeg_set(tmp / "jpegs", plan.jpegs, size=(500, 375), splits=("train",))


if __name__ == "__main__":
    sys.exit(main())
