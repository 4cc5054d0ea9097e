"""What the presets ask the engine for, read the way the engine reads it."""

from __future__ import annotations

from engine.config import parse_args
from rn50tui.jobs.presets import PRESETS


def test_every_amp_preset_trains_channels_last_as_upstream_does():
    amp = [p for p in PRESETS.values() if "--amp" in p.flags]
    assert "ngc-amp-90e" in {p.name for p in amp}
    for preset in amp:
        cfg = parse_args(["--data-backend", "synthetic", *preset.flags])
        assert cfg.amp and cfg.memory_format == "nhwc", preset.name


def test_fp32_presets_keep_the_default_layout():
    cfg = parse_args(["--data-backend", "synthetic", *PRESETS["ngc-fp32-90e"].flags])
    assert not cfg.amp and cfg.memory_format == "nchw"


def _ffcv_resolution(
    epoch: int, min_res: int = 160, max_res: int = 192, start: int = 65, end: int = 76
) -> int:
    """FFCV's get_resolution (train_imagenet.py), 0-based epochs, as published."""
    if epoch <= start:
        return min_res
    if epoch >= end:
        return max_res
    interp = min_res + (max_res - min_res) * (epoch - start) / (end - start)
    return int(round(interp / 32)) * 32


def test_the_ffcv_preset_ramps_the_crop_as_ffcv_does_and_says_whose_figures_these_are():
    preset = PRESETS["ffcv-rn50-88e"]
    cfg = parse_args(["--data-backend", "synthetic", *preset.flags])
    crops = cfg.crop_sizes
    assert [crops.train_at(e) for e in range(88)] == [_ffcv_resolution(e) for e in range(88)]
    assert crops.val_at(0) == (256, 293) and cfg.val_flip  # 256 px centre crop of 224/256, flip averaged
    assert (cfg.epochs, cfg.lr, cfg.label_smoothing, cfg.optimizer_batch_size) == (88, 1.7, 0.1, 4096)
    assert preset.cards == 8 and cfg.amp
    text = preset.description
    assert "libffcv/ffcv-imagenet" in text and "their published figures; not measured by rn50tui" in text
    assert "Left out: BlurPool" in text
