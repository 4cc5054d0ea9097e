"""bench infer's warm-up settles before it measures; the bench entry point and `bench data --images` say
and do what they are asked (fast: no model runs here)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.accelerator import resolve_device
from engine.bench import timing
from engine.bench.data import _subset
from engine.bench.infer import amp_note
from engine.data import load_split
from engine.data.testing import make_jpeg_set
from tests.conftest import engine_env


class FakeClock:
    """perf_counter for `settle`: each step advances it by the next of `costs` (the last one repeats)."""

    def __init__(self, costs: list[float]) -> None:
        self.now, self.costs, self.steps = 0.0, costs, 0

    def perf_counter(self) -> float:
        return self.now

    def step(self) -> None:
        self.now += self.costs[min(self.steps, len(self.costs) - 1)]
        self.steps += 1


def test_warm_up_runs_until_two_windows_agree(monkeypatch):
    clock = FakeClock([1.0, 0.5, 0.3, 0.2, 0.15, 0.11, 0.1, 0.1, 0.1, 0.1, 0.1])  # cold, then steady
    monkeypatch.setattr(timing.time, "perf_counter", clock.perf_counter)
    warm = timing.settle(clock.step, min_iters=1, window=2, tolerance=0.05, budget_s=60.0)
    assert (
        warm.settled and warm.iters == 9
    )  # windows (0.5,0.3) (0.2,0.15) (0.11,0.1) (0.1,0.1): the last two agree
    assert warm.label() == "9 it"


def test_warm_up_stops_at_its_budget_and_says_so(monkeypatch):
    clock = FakeClock([3.0 if i % 2 == 0 else 1.0 for i in range(100)])  # never settles
    monkeypatch.setattr(timing.time, "perf_counter", clock.perf_counter)
    warm = timing.settle(clock.step, min_iters=0, window=1, tolerance=0.05, budget_s=10.0)
    assert not warm.settled and warm.seconds >= 10.0 and warm.label().endswith("unsettled")


def test_bench_help_exits_0_and_lists_every_mode():
    out = subprocess.run([sys.executable, "-m", "engine.bench", "--help"], env=engine_env(), capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert all(f"  {mode} " in out.stdout for mode in ("data", "train", "infer", "report"))


@pytest.mark.parametrize("images", [64, 7])
def test_bench_data_uses_as_many_images_as_asked(tmp_path, images):
    root = make_jpeg_set(tmp_path, images, size=(16, 12), splits=("train",))
    samples = _subset(load_split(str(root), "train", num_classes=1 << 30), images)
    assert len(samples) == images
    assert len(set(samples.labels.tolist())) == min(images, 10)  # spread over the classes


def test_the_amp_fallback_note_speaks_of_inference_on_one_line(monkeypatch):
    monkeypatch.setattr("engine.accelerator.cpu_has_native_bf16", lambda: False)
    monkeypatch.delenv("RN50TUI_FORCE_CPU_BF16", raising=False)
    dev = resolve_device("cpu", amp=True, warn=False)
    note = amp_note(dev)
    assert note is not None and "\n" not in note and note.startswith("note: ")
    assert "training" not in note and "amp rows run in fp32" in note
