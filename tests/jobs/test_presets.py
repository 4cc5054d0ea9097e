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
