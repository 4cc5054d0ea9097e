"""The DALI backends: dali-cpu on real JPEGs (crops, shards, bad files, resume), the fall-back line, and
dali-gpu on a real card (marked device)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.config import TrainConfig, dali_note, parse_args
from engine.data import (
    BadImageWarning,
    BatchPlan,
    ImageBatches,
    Loader,
    TrainTransform,
    ValTransform,
    build_train_loader,
    build_val_loader,
    load_split,
)
from engine.data.testing import make_image_folder
from engine.data.transforms import sample_rng
from engine.events import EXIT_STOPPED, iter_records
from tests.conftest import run_engine

pytest.importorskip("nvidia.dali")
from engine.data.dali import DaliBatches, DaliLoader, aa_draws, missing  # noqa: E402

CLASSES = 3
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """3 classes, 6 train and 3 val JPEGs each, 48×40 px."""
    return make_image_folder(tmp_path / "data", {"train": 6, "val": 3}, num_classes=CLASSES, size=(48, 40))


def cfg_for(data: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), data_backend="dali-cpu", num_classes=CLASSES, image_size=32, batch_size=4,
                workers=1, seed=3)  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def source(folder: Path, train: bool = True, augmentation=None, seed: int = 3) -> DaliBatches:
    samples = load_split(str(folder), "train" if train else "val", CLASSES)
    return DaliBatches(samples, train, 32, 37, "bilinear", augmentation, seed, "dali-cpu", 8, 1)


# --- the same decisions as the own pipeline ---------------------------------------------------------


@pytest.mark.parametrize("augmentation", [None, "autoaugment"])
def test_the_same_seed_gives_the_same_crops_across_a_resume(folder: Path, augmentation) -> None:
    src = source(folder, augmentation=augmentation)
    src.fetch(0, [0])  # builds the pipeline, which fixes AutoAugment's policy shape
    plan = TrainTransform(32, "bilinear", augmentation).plan(40, 48, sample_rng(3, 2, 5))
    inputs = src._inputs(2, 5)
    assert inputs["anchor"].tolist() == [plan.left, plan.top]
    assert inputs["shape"].tolist() == [plan.width, plan.height]
    assert int(inputs["mirror"]) == int(plan.flip)
    if augmentation:  # AutoAugment's draws come from the sample's seed too, not DALI's generator
        assert int(inputs["aa_sub"]) == aa_draws(plan.aa_seed, *src._policy)[0]
    # a loader resumed at iteration 2 hands out exactly the straight run's batches 2, 3, …
    samples = load_split(str(folder), "train", CLASSES)

    def loader() -> DaliLoader:
        plan = BatchPlan(len(samples), 4, 0, 1, shuffle=True, seed=3, drop_last=True)
        out = DaliLoader(source(folder, augmentation=augmentation), plan, prefetch=2)
        out.set_epoch(1)
        return out

    straight = list(loader())
    resumed = loader()
    resumed.set_start_iteration(2)
    tail = list(resumed)
    assert len(tail) == len(straight) - 2 and resumed.state_dict() == {"epoch": 1, "iteration": 4}
    for a, b in zip(straight[2:], tail):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


@pytest.mark.parametrize("train", [True, False])
def test_dali_cpu_images_are_the_own_pipelines_crops(folder: Path, train: bool) -> None:
    samples = load_split(str(folder), "train" if train else "val", CLASSES)
    transform = TrainTransform(32) if train else ValTransform(32, 37)
    own = ImageBatches(samples, transform, 32, 3).fetch(4, range(8))
    dali = source(folder, train=train).fetch(4, range(8))
    assert dali.images.dtype == torch.uint8 and dali.images.shape == own.images.shape == (8, 3, 32, 32)
    assert dali.images.is_contiguous(memory_format=torch.channels_last)  # as the own batches are
    assert torch.equal(dali.labels, own.labels)
    # the same window and flip: only the resamplers' rounding differs (a wrong crop differs by tens)
    assert (dali.images.float() - own.images.float()).abs().mean() < 2.0


def test_ranks_shard_exactly_and_validation_counts_every_image_once(folder: Path) -> None:
    val = [build_val_loader(cfg_for(folder), r, 2, False) for r in range(2)]
    assert all(isinstance(v, DaliLoader) for v in val)
    counts = [sum(len(b) for b in v) for v in val]
    assert counts == [5, 4] and sum(counts) == 9  # 9 images, no padding, no duplicates
    train = [build_train_loader(cfg_for(folder), r, 2, False) for r in range(2)]
    for t in train:
        t.set_epoch(0)
    seen = [[int(i) for _, idx in t.plan for i in idx] for t in train]
    assert not set(seen[0]) & set(seen[1]) and len(seen[0]) == len(seen[1]) == 8  # drop_last: 2 of 4


def test_undecodable_files_are_dropped_and_counted(folder: Path) -> None:
    samples = load_split(str(folder), "train", CLASSES)
    Path(samples.path(1)).write_bytes(b"not a jpeg at all")  # caught before DALI: no header
    good = Path(samples.path(2)).read_bytes()
    Path(samples.path(3)).write_bytes(good[:200] + b"\x00" * 50)  # a JPEG header, then garbage
    src = source(folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batch = src.fetch(0, range(6))
    assert batch.skipped == 2 and len(batch) == 4 and batch.images.shape == (4, 3, 32, 32)
    assert {Path(p).name for p in batch.bad_files} == {Path(samples.path(1)).name, Path(samples.path(3)).name}
    assert any(issubclass(w.category, BadImageWarning) for w in caught)
    assert len(src.fetch(0, range(4, 8))) == 4  # the pipeline was rebuilt after DALI's error


# --- where the package is absent --------------------------------------------------------------------


def test_a_missing_package_is_one_line_and_the_own_pipeline_runs(folder: Path, monkeypatch, capsys) -> None:
    from engine.train import main

    monkeypatch.setitem(sys.modules, "nvidia.dali", None)  # `import nvidia.dali` now fails
    why = missing("dali-cpu")
    assert why and "pip install 'rn50tui[dali]'" in why
    assert "cambricon.dali" in (missing("dali-mlu") or "")
    note = dali_note(parse_args([str(folder), "--data-backend", "dali-cpu"]), why)
    assert note and note.startswith("--data-backend dali-cpu: nvidia.dali is not installed")
    assert dali_note(parse_args([str(folder)]), why) is None
    loader = build_train_loader(cfg_for(folder), 0, 1, False)
    assert type(loader) is Loader and isinstance(loader.source, ImageBatches)
    argv = [str(folder), "--data-backend", "dali-cpu", "--device", "cpu", "--image-size", "32", "-b", "4",
            "-j", "0", "--num-classes", str(CLASSES), "--epochs", "1", "--prof", "1", "--workspace",
            str(folder.parent / "ws"), "--raport-file", "raport.json", "--no-checkpoints"]  # fmt: skip
    assert main(argv) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "dali" in line.lower()]
    assert len(lines) == 1 and "rn50tui[dali]" in lines[0] and "own pipeline runs instead" in lines[0]


# --- end to end -------------------------------------------------------------------------------------

E2E = ["--data-backend", "dali-cpu", "--device", "cpu", "--image-size", "32", "-b", "4", "-j", "1",
       "--seed", "1", "--num-classes", "4", "--raport-file", "raport.json"]  # fmt: skip


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory) -> Path:
    return make_image_folder(
        tmp_path_factory.mktemp("dali") / "imagenet", {"train": 6, "val": 2}, num_classes=4, size=(64, 56)
    )


@pytest.mark.slow
def test_dali_cpu_trains_validates_stops_and_resumes_like_a_straight_run(tmp_path: Path, jpegs: Path) -> None:
    common = [str(jpegs), *E2E, "--epochs", "2", "--lr", "0.01", "--warmup", "1", "-p", "2"]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    out = run_engine([*common, "--workspace", str(straight)], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    first = run_engine([*common, "--workspace", str(stopped)], cwd=tmp_path, RN50TUI_STOP_AFTER_ITERS="4")
    assert first.returncode == EXIT_STOPPED, first.stderr
    mid = torch.load(stopped / "checkpoint.pth.tar", weights_only=False)
    assert (mid["epoch"], mid["iteration"]) == (0, 4)  # 6 iterations per epoch: stopped inside the first
    resume = ["--resume", str(stopped / "checkpoint.pth.tar")]
    out = run_engine([*common, "--workspace", str(stopped), *resume], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "dali" not in out.stderr.lower()  # DALI ran: no fall-back line
    a = torch.load(straight / "checkpoint.pth.tar", weights_only=False)
    b = torch.load(stopped / "checkpoint.pth.tar", weights_only=False)
    assert a["epoch"] == b["epoch"] == 2
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    last = [r.data for r in iter_records(straight / "raport.json") if r.phase == "epoch"][-1]
    again = [r.data for r in iter_records(stopped / "raport.json") if r.phase == "epoch"][-1]
    assert again["val.top1"] == last["val.top1"] and again["val.loss"] == pytest.approx(last["val.loss"])


@pytest.mark.slow
def test_dali_cpu_run_counts_a_bad_image_and_the_verdict_judges_it(tmp_path: Path, jpegs: Path) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(jpegs, data)
    (data / "train" / "class_0" / "0_0.JPEG").write_bytes(b"not a jpeg at all")
    base = [str(data), *E2E, "--epochs", "1", "--training-only"]
    ws = tmp_path / "ws"
    out = run_engine([*base, "--max-bad-fraction", "0.1", "--workspace", str(ws)], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "0_0.JPEG" in out.stderr
    summary = [r for r in iter_records(ws / "raport.json") if r.phase == "summary"][0].data
    assert summary["data.skipped_images"] == 1
    strict = ["--max-bad-fraction", "0.001", "-p", "100", "--workspace", str(tmp_path / "strict")]
    out = run_engine([*base, *strict], cwd=tmp_path)
    assert out.returncode == 1 and "could not be read" in out.stderr


@pytest.mark.slow
@pytest.mark.ddp
def test_two_gloo_ranks_validate_every_image_exactly_once(tmp_path: Path) -> None:
    """Two ranks' validation of a 2-epoch run equals one process evaluating the same checkpoint: the
    9 images are split 5 + 4, none twice, none missed."""
    from tests.engine.test_ddp import run, torchrun

    data = make_image_folder(tmp_path / "d", {"train": 4, "val": 3}, num_classes=CLASSES, size=(48, 40))
    args = [str(data), *E2E, "--num-classes", str(CLASSES), "--epochs", "1", "-p", "1"]
    ws = tmp_path / "ddp"
    out = run(torchrun(2, [*args, "--workspace", str(ws)], tmp_path), tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    ddp = [r.data for r in iter_records(ws / "raport.json") if r.phase == "epoch"][-1]
    ev = tmp_path / "eval"
    one = run_engine([*args, "--evaluate", "--resume", str(ws / "checkpoint.pth.tar"), "--workspace", str(ev)],
                     cwd=tmp_path)  # fmt: skip
    assert one.returncode == 0, one.stderr
    summary = [r for r in iter_records(ev / "raport.json") if r.phase == "summary"][0].data
    assert summary["val.top1"] == pytest.approx(ddp["val.top1"])
    assert summary["val.loss"] == pytest.approx(ddp["val.loss"], rel=1e-4)
    assert round(summary["val.top1"] * 9 / 100, 6) == round(summary["val.top1"] * 9 / 100)  # k of 9


# --- on a CUDA card ---------------------------------------------------------------------------------


@pytest.mark.device
def test_dali_gpu_decodes_on_the_card_the_same_crops(folder: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("dali-gpu needs a CUDA card")
    loader = build_train_loader(cfg_for(folder, data_backend="dali-gpu"), 0, 1, False)
    assert isinstance(loader, DaliLoader)
    loader.set_epoch(0)
    batch = next(iter(loader))
    assert batch.images.is_cuda and batch.images.dtype == torch.uint8
    cpu = build_train_loader(cfg_for(folder), 0, 1, False)
    cpu.set_epoch(0)
    ref = next(iter(cpu))
    assert torch.equal(batch.labels.cpu(), ref.labels)
    assert (batch.images.cpu().float() - ref.images.float()).abs().mean() < 3.0  # nvJPEG vs libjpeg
    assert np.isfinite(batch.images.cpu().float().mean().item())
