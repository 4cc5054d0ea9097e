"""The demo is the NGC recipe in miniature, and it looks healthy to the person who runs it.

The quick tests build the engine from the preset's flags and check it really trains with the recipe's
loss, optimizer and initialisation. The slow one runs the demo exactly as `rn50tui submit --preset demo`
does (the preset's own flags, a real detached supervisor, a real SQLite store) and asserts what a user
then sees: smooth training windows, a sane validation loss, and a list whose loss is the epoch's mean.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict

import pytest
import torch
from torch import nn

from engine.config import parse_args
from engine.events import EventWriter
from engine.optim import lr_at
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.presets import PRESETS

from .conftest import run_cli, wait_for

RECIPE_FIELDS = ("model_config", "label_smoothing", "momentum", "weight_decay", "bn_weight_decay", "nesterov",
                 "lr_schedule", "zero_init_residual")  # fmt: skip
DEMO_TIMEOUT = 3600  # about two minutes on two idle cores; a loaded shared machine took 52 minutes


def _cfg(preset: str, *extra: str):
    return parse_args([*PRESETS[preset].flags, *extra])


@pytest.mark.parametrize("preset", ["demo", "bench"])
def test_the_small_presets_train_with_the_ngc_recipe(preset):
    ngc, small = _cfg("ngc-fp32-90e", "--data-backend", "synthetic"), _cfg(preset)
    assert ngc.weight_decay == 1 / 32768 and ngc.momentum == 0.875 and ngc.label_smoothing == 0.1
    assert {f: getattr(small, f) for f in RECIPE_FIELDS} == {f: getattr(ngc, f) for f in RECIPE_FIELDS}


def test_the_demo_warms_up_then_follows_the_cosine_and_scales_lr_by_its_batch():
    demo = _cfg("demo")
    iters = demo.synthetic_size // demo.batch_size
    assert 0 < demo.warmup < demo.epochs
    assert lr_at(demo, 0, 0, iters) < lr_at(demo, 0, iters - 1, iters) == pytest.approx(demo.lr)
    assert lr_at(demo, demo.epochs - 1, iters - 1, iters) < 0.05 * demo.lr
    assert demo.lr <= 0.256 * demo.batch_size / 256  # never above the recipe's linear scaling


def test_the_engine_builds_the_demo_with_the_recipes_loss_optimizer_and_init():
    from engine.assemble import build_trainer
    from engine.distributed import DistInfo

    demo = _cfg("demo")
    torch.manual_seed(0)
    trainer, _ = build_trainer(
        demo, dist=DistInfo(rank=0, world_size=1, local_rank=0), writer=EventWriter(None)
    )
    assert trainer.criterion.label_smoothing == 0.1
    bn_group, rest_group = trainer.optimizer.param_groups
    assert bn_group["weight_decay"] == 0.0 and rest_group["weight_decay"] == 3.0517578125e-05
    assert all(g["momentum"] == 0.875 and not g["nesterov"] for g in trainer.optimizer.param_groups)
    bn_ids = {id(p) for p in bn_group["params"]}
    for module in trainer.model.modules():  # every BN parameter (the shortcuts' too) goes without decay
        if isinstance(module, nn.BatchNorm2d):
            assert id(module.weight) in bn_ids and id(module.bias) in bn_ids
    w = trainer.model.layer1[0].conv3.weight  # 1×1, 64 in, 256 out: fan-in and fan-out differ 4×
    assert w.std().item() == pytest.approx((2.0 / 64) ** 0.5, rel=0.05)


@pytest.mark.slow
@pytest.mark.timeout(DEMO_TIMEOUT + 60)
def test_the_demo_as_submitted_trains_smoothly_and_lists_its_last_epochs_mean_loss(jm, db_path):
    job = jm.submit(preset="demo")
    assert all(flag in job.argv for flag in PRESETS["demo"].flags)  # the preset's flags, not a copy
    done = wait_for(lambda: (j := jm.get_job(job.id)).status.terminal and j, DEMO_TIMEOUT, interval=1.0,
                    message="the demo to end")  # fmt: skip
    assert done.status is Status.COMPLETED, done.error
    windows: dict[int, list[float]] = defaultdict(list)
    epochs = []
    for row in jm.metrics(job.id):
        if row.phase == "train":
            windows[row.epoch].append(row.values["train.loss"])
        elif row.phase == "epoch":
            epochs.append(row.values)
    assert len(epochs) == _cfg("demo").epochs
    for epoch in sorted(windows)[1:]:  # after the first epoch no window spikes above 3× the epoch's start
        start = windows[epoch][0]
        assert max(windows[epoch]) <= 3 * start, (epoch, windows[epoch])
    val_loss = epochs[-1]["val.loss"]
    assert math.isfinite(val_loss) and val_loss < epochs[0]["train.loss"], [e["val.loss"] for e in epochs]
    listed = json.loads(run_cli("jobs", "list", "--json", db=db_path).stdout)
    assert listed[0]["loss"] == epochs[-1]["train.loss"]  # the last epoch's mean, not its last window
