"""Datasets, transforms, decoding, corrupt files, normalisation and synthetic data of engine.data."""

from __future__ import annotations

import io
import math
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.config import ConfigError, TrainConfig
from engine.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BadImageWarning,
    SyntheticImages,
    TrainTransform,
    ValTransform,
    build_train_loader,
    build_val_loader,
    load_split,
    normalize,
    sample_crop,
    synthetic_sizes,
)
from engine.data.decode import jpeg_size, load_image, read_bytes
from engine.data.testing import make_image_folder, render_image
from engine.data.transforms import Crop, sample_rng

CLASSES = 3
# torchvision 0.29 deprecates its decoders in favour of TorchCodec; PIL takes over once they are gone
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """3 classes, 6 train and 3 val JPEGs each, 48×40 px."""
    return make_image_folder(tmp_path / "data", {"train": 6, "val": 3}, num_classes=CLASSES, size=(48, 40))


def cfg_for(data: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), num_classes=CLASSES, image_size=32, batch_size=4, workers=0, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def all_batches(loader) -> list:
    return list(iter(loader))


# --- datasets --------------------------------------------------------------------------------------


def test_image_folder_labels_are_sorted_class_folders(folder: Path) -> None:
    samples = load_split(str(folder), "train", CLASSES)
    assert len(samples) == 18 and samples.classes == ["class_0", "class_1", "class_2"]
    for i in range(len(samples)):
        assert Path(samples.path(i)).parent.name == f"class_{samples.labels[i]}"


@pytest.mark.parametrize("prefix", ["train/", ""])
def test_list_file_defines_the_samples(folder: Path, prefix: str) -> None:
    # labels deliberately differ from the folder order: the list wins over the tree
    lines = [f"{prefix}class_{k}/{k}_{i}.JPEG {2 - k}\n" for k in range(CLASSES) for i in range(2)]
    (folder / "train.txt").write_text("".join(lines))
    samples = load_split(str(folder), "train", CLASSES)
    assert len(samples) == 6
    for i in range(6):
        path = Path(samples.path(i))
        assert path.is_file() and samples.labels[i] == 2 - int(path.parent.name[-1])


def test_list_file_errors_name_file_and_line(folder: Path) -> None:
    listing = folder / "train.txt"
    listing.write_text("train/class_0/0_0.JPEG 0\ntrain/class_0/0_1.JPEG\n")
    with pytest.raises(ConfigError, match=r"train\.txt:2"):
        load_split(str(folder), "train", CLASSES)
    listing.write_text("train/class_0/0_0.JPEG 0\ntrain/class_0/0_1.JPEG 7\n")
    with pytest.raises(ConfigError, match=r"train\.txt:2.*label 7"):
        load_split(str(folder), "train", CLASSES)
    listing.write_text("elsewhere/x.JPEG 0\n")
    with pytest.raises(ConfigError, match=r"train\.txt:1"):
        load_split(str(folder), "train", CLASSES)
    listing.write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        load_split(str(folder), "train", CLASSES)


def test_too_many_classes_and_empty_split_are_errors(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--num-classes 3"):
        build_train_loader(cfg_for(folder, num_classes=2, topk=1), 0, 1, False)
    empty = tmp_path / "empty"
    (empty / "train" / "a").mkdir(parents=True)
    with pytest.raises(ConfigError, match="no images"):
        load_split(str(empty), "train", 10)


# --- batches ---------------------------------------------------------------------------------------


def test_train_and_val_batches_shapes_dtype_labels(folder: Path) -> None:
    cfg = cfg_for(folder)
    train = build_train_loader(cfg, 0, 1, False)
    assert len(train) == 4 and train.num_samples == 18  # the short last batch is dropped, as the recipe's
    batches = all_batches(train)
    assert [len(b) for b in batches] == [4, 4, 4, 4]
    for b in batches:
        assert b.images.dtype == torch.uint8 and b.images.shape[1:] == (3, 32, 32)
        assert b.labels.dtype == torch.int64 and b.skipped == 0
    labels = torch.cat([b.labels for b in batches]).tolist()  # 16 of the 18, each image at most once
    assert (
        len(labels) == 16
        and all(labels.count(k) <= 6 for k in range(CLASSES))
        and set(labels) <= set(range(CLASSES))
    )
    assert torch.cat([b.images for b in batches]).float().std() > 5  # real pixels, not a constant
    val = all_batches(build_val_loader(cfg, 0, 1, False))
    assert [b.images.shape for b in val] == [(4, 3, 32, 32), (4, 3, 32, 32), (1, 3, 32, 32)]
    assert torch.cat([b.labels for b in val]).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_val_transform_is_resize_then_center_crop() -> None:
    img = torch.arange(60 * 80, dtype=torch.float32).reshape(1, 60, 80).expand(3, -1, -1).to(torch.uint8)
    out = ValTransform(32, 37)(img.contiguous(), Crop(0, 0, 60, 80))
    assert out.shape == (3, 32, 32) and out.dtype == torch.uint8


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_transforms_give_torchvision_pixels_on_a_decoders_hwc_buffer(interpolation: str) -> None:
    """The channels-last fast path changes no pixel: RandomResizedCrop + flip and Resize + CenterCrop,
    down- and up-sampling, on a 3×H×W view of an H×W×3 buffer (how decoders hand images over)."""
    import torchvision.transforms.v2.functional as F

    hwc = torch.from_numpy(np.array(render_image(1, 0, 120, 90)))  # 90×120×3, as a decoder writes it
    img = hwc.permute(2, 0, 1)
    mode = F.InterpolationMode(interpolation)
    train = TrainTransform(40, interpolation)
    rng = random.Random(5)
    for _ in range(12):
        plan = train.plan(90, 120, rng)
        out = train(img, plan)
        want = F.resized_crop(
            img, plan.top, plan.left, plan.height, plan.width, [40, 40], mode, antialias=True
        )
        want = F.horizontal_flip(want) if plan.flip else want
        assert torch.equal(out, want), plan
        assert out.permute(1, 2, 0).is_contiguous() or plan.height == plan.width == 40  # H×W×C memory
    val = ValTransform(32, 37, interpolation)(img, Crop(0, 0, 90, 120))
    want = F.center_crop(F.resize(img, [37], mode, antialias=True), [32, 32])
    assert val.shape == (3, 32, 32) and torch.equal(val, want)


def test_batches_are_channels_last_and_normalise_without_a_layout_copy(folder: Path) -> None:
    """Workers collate into one N×H×W×3 shared buffer; the batch is its channels-last N×3×H×W view."""
    in_process = all_batches(build_train_loader(cfg_for(folder), 0, 1, False))
    from_workers = all_batches(build_train_loader(cfg_for(folder, workers=2), 0, 1, False))
    for a, b in zip(in_process, from_workers, strict=True):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
        assert b.images.is_contiguous(memory_format=torch.channels_last) and not b.images.is_contiguous()
    images = from_workers[0].images
    x = normalize(images, "nhwc")
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(normalize(images, "nchw"), x)


def test_collate_keeps_the_layout_most_images_have() -> None:
    """A batch is packed in its images' own layout (a copy each, never a transpose): channels-last from the
    resize, channels-first where AutoAugment's ops made most of them so; the pixels are the same."""
    from engine.data.batch import collate

    first = [torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8) for _ in range(3)]
    last = [img.permute(1, 2, 0).contiguous().permute(2, 0, 1) for img in first]
    mostly_first = collate([first[0], first[1], last[2]], [0, 1, 2], 8, []).images
    mostly_last = collate([last[0], first[1], last[2]], [0, 1, 2], 8, []).images
    assert mostly_first.is_contiguous() and not mostly_last.is_contiguous()
    assert mostly_last.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(mostly_first, torch.stack(first)) and torch.equal(mostly_last, torch.stack(first))


def test_crop_parameters_stay_in_the_recipe_ranges() -> None:
    rng = random.Random(0)
    height, width = 375, 500
    scales, ratios = [], []
    for _ in range(3000):
        c = sample_crop(height, width, rng)
        assert c.top >= 0 and c.left >= 0 and c.top + c.height <= height and c.left + c.width <= width
        scales.append(c.height * c.width / (height * width))
        ratios.append(c.width / c.height)
    assert 0.08 * 0.97 <= min(scales) < 0.12 and 0.9 < max(scales) <= 1.0
    assert 0.75 * 0.98 <= min(ratios) < 0.8 and 1.25 < max(ratios) <= 4 / 3 * 1.02
    flips = [TrainTransform(32).plan(height, width, rng).flip for _ in range(2000)]
    assert 0.45 < sum(flips) / len(flips) < 0.55


def test_crop_falls_back_to_a_centered_crop_for_extreme_shapes() -> None:
    c = sample_crop(10, 1000, random.Random(1), scale=(0.99, 1.0))
    assert c.height == 10 and c.width == round(10 * 4 / 3) and c.left == (1000 - c.width) // 2


def test_augmentation_depends_on_seed_epoch_and_index_only() -> None:
    draw = lambda s, e, i: TrainTransform(32).plan(375, 500, sample_rng(s, e, i))  # noqa: E731
    assert draw(0, 1, 5) == draw(0, 1, 5)
    assert len({draw(0, e, 5) for e in range(8)}) == 8
    assert draw(0, 1, 5) != draw(0, 1, 6) and draw(0, 1, 5) != draw(1, 1, 5)


# --- decoding --------------------------------------------------------------------------------------


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_size_reads_the_frame_header(tmp_path: Path, progressive: bool) -> None:
    path = tmp_path / "a.jpg"
    render_image(0, 0, 70, 30).save(path, "JPEG", progressive=progressive)
    assert jpeg_size(read_bytes(str(path))) == (30, 70)
    assert jpeg_size(b"\x89PNG\r\n\x1a\n") is None and jpeg_size(b"\xff\xd8garbage") is None


def test_reduced_size_decode_matches_full_decode(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    render_image(1, 2, 800, 600, grain=2.0).save(path, "JPEG", quality=95)
    transform = TrainTransform(64)
    plan = Crop(100, 150, 400, 500, flip=True)
    assert transform.reduction(600, 800, plan) == 4
    full = Image.open(path).convert("RGB")
    reference = transform(torch.from_numpy(np.array(full)).permute(2, 0, 1), plan)
    planned = _PlannedTransform(transform, plan)
    reduced = load_image(str(path), planned, random.Random(0))
    assert reduced.shape == reference.shape == (3, 64, 64)
    assert (reduced.float() - reference.float()).abs().mean() < 4.0


class _PlannedTransform(TrainTransform):
    """A train transform whose random plan is fixed, to compare decoders on the same crop."""

    def __init__(self, inner: TrainTransform, plan: Crop) -> None:
        super().__init__(inner.size)
        self._plan = plan

    def plan(self, height: int, width: int, rng: random.Random) -> Crop:
        return self._plan


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_grayscale_and_cmyk_jpegs_decode_to_rgb(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "odd.jpg"
    render_image(0, 0, 40, 40).convert(mode).save(path, "JPEG")
    out = load_image(str(path), ValTransform(32, 37), random.Random(0))
    assert out.shape == (3, 32, 32) and out.dtype == torch.uint8


def test_png_dataset_loads(tmp_path: Path) -> None:
    root = make_image_folder(
        tmp_path / "png", {"train": 2, "val": 1}, num_classes=2, size=(40, 36), fmt="PNG"
    )
    batch = next(iter(build_train_loader(cfg_for(root, num_classes=2, topk=1), 0, 1, False)))
    assert batch.images.shape == (4, 3, 32, 32) and batch.skipped == 0


def test_corrupt_and_missing_images_are_skipped_and_counted(folder: Path) -> None:
    bad = folder / "train" / "class_1" / "1_0.JPEG"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg" * 10)
    (folder / "train" / "class_2" / "2_0.JPEG").write_bytes(b"")
    truncated = folder / "train" / "class_2" / "2_1.JPEG"
    truncated.write_bytes(truncated.read_bytes()[:300])
    loader = build_train_loader(cfg_for(folder, batch_size=18), 0, 1, False)
    with pytest.warns(BadImageWarning) as caught:
        (batch,) = all_batches(loader)
    named = [Path(str(w.message).split(":")[0]).name for w in caught if w.category is BadImageWarning]
    assert sorted(named) == ["1_0.JPEG", "2_0.JPEG", "2_1.JPEG"]
    assert batch.skipped == 3 and len(batch) == 15 and batch.images.shape[0] == 15
    assert {Path(p).name for p in batch.bad_files} == {"1_0.JPEG", "2_0.JPEG", "2_1.JPEG"}
    loader.set_epoch(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BadImageWarning)  # once per file, not every epoch
        (batch,) = all_batches(loader)
    assert batch.skipped == 3


# --- normalisation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last, "nhwc"])
def test_normalize_values_and_memory_format(fmt) -> None:
    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    out = normalize(images, fmt)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(out, (images.float() / 255 - mean) / std, rtol=1e-5, atol=1e-5)
    assert out.dtype == torch.float32
    want = torch.contiguous_format if fmt is torch.contiguous_format else torch.channels_last
    assert out.is_contiguous(memory_format=want)
    if want is torch.channels_last:
        assert not out.is_contiguous()


# --- synthetic -------------------------------------------------------------------------------------


def test_synthetic_loader_needs_no_data_and_is_deterministic() -> None:
    cfg = TrainConfig(data_backend="synthetic", num_classes=10, image_size=32, batch_size=8, workers=0)
    assert synthetic_sizes(cfg, 2) == (640, 160)
    loader = build_train_loader(cfg, 1, 2, False)
    assert len(loader) == 40 and loader.num_samples == 320
    b = next(iter(loader))
    assert (
        b.images.dtype == torch.uint8 and b.images.shape == (8, 3, 32, 32) and b.labels.dtype == torch.int64
    )
    again = SyntheticImages(640, 10, 32, 0, "train")
    idx = loader.plan.indices(0)[:8]
    assert torch.equal(again.render(idx), b.images) and torch.equal(again.labels(idx), b.labels)
    val = build_val_loader(cfg, 0, 2, False)
    assert val.dataset_size == 160 and val.num_samples == 80
    assert not torch.equal(SyntheticImages(64, 10, 32, 0, "val").render([0]), again.render([0]))


def test_synthetic_classes_are_separable() -> None:
    """Nearest class mean on 4×4-pooled pixels is almost perfect: a network learns these quickly."""
    train, val = SyntheticImages(400, 20, 32, 0, "train"), SyntheticImages(100, 20, 32, 0, "val")
    pool = lambda x: torch.nn.functional.avg_pool2d(x.float(), 8).flatten(1)  # noqa: E731
    xs, ys = pool(train.render(range(400))), train.labels(range(400))
    means = torch.stack([xs[ys == c].mean(0) for c in range(20)])
    xv, yv = pool(val.render(range(100))), val.labels(range(100))
    predicted = torch.cdist(xv, means).argmin(1)
    assert (predicted == yv).float().mean() > 0.95


def test_generated_jpegs_are_photo_sized() -> None:
    buf = io.BytesIO()
    render_image(3, 5, 500, 375, grain=16.0).save(buf, "JPEG", quality=90)
    assert 50_000 < len(buf.getvalue()) < 150_000
    assert math.isclose(len(buf.getvalue()) / 85_000, 1.0, rel_tol=0.5)
