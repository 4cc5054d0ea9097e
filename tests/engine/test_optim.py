import math

import pytest
from torch import nn

from engine.config import parse_args
from engine.model import build_model
from engine.optim import build_optimizer, lr_at, parameter_groups


def cfg(*argv):
    return parse_args(["--data-backend", "synthetic", *argv])


def test_bn_parameters_get_no_weight_decay_unless_asked():
    model = build_model("resnet50", "classic", 10)
    bn, rest = parameter_groups(model, 3e-5, bn_weight_decay=False)
    n_bn = sum(2 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert len(bn["params"]) == n_bn == 106 and bn["weight_decay"] == 0.0
    assert rest["weight_decay"] == 3e-5 and len(rest["params"]) == 161 - 106
    ids = {id(p) for p in bn["params"]}
    assert id(model.layer1[0].downsample[1].weight) in ids  # BN of the shortcut, whose name has no "bn"
    bn2, rest2 = parameter_groups(model, 3e-5, bn_weight_decay=True)
    assert not bn2["params"] and len(rest2["params"]) == 161


def test_sgd_follows_the_flags():
    opt = build_optimizer(
        build_model("resnet50", "classic", 10), cfg("--mom", "0.875", "--nesterov", "--lr", "2.048")
    )
    g = opt.param_groups[1]
    assert g["momentum"] == 0.875 and g["nesterov"] and g["lr"] == 2.048


def test_warmup_is_linear_per_iteration_and_reaches_base():
    c = cfg("--lr", "2.048", "--warmup", "8", "--epochs", "90", "--lr-schedule", "cosine")
    assert lr_at(c, 0, 0, 100) == pytest.approx(2.048 / 800)
    assert lr_at(c, 7, 99, 100) == pytest.approx(2.048)
    assert lr_at(c, 3, 50, 100) < lr_at(c, 3, 51, 100)


def test_cosine_decays_from_base_to_end_lr():
    c = cfg("--lr", "1.0", "--warmup", "2", "--epochs", "12", "--lr-schedule", "cosine", "--end-lr", "0.01")
    assert lr_at(c, 2, 0, 10) == pytest.approx(1.0)
    assert lr_at(c, 7, 0, 10) == pytest.approx(0.01 + 0.5 * (1 + math.cos(math.pi * 0.5)) * 0.99)
    assert lr_at(c, 11, 9, 10) == pytest.approx(0.01, abs=1e-3)


def test_step_schedule_drops_tenfold_at_30_60_80():
    c = cfg("--lr", "0.1", "--lr-schedule", "step", "--epochs", "90")
    assert [lr_at(c, e, 0, 10) for e in (0, 29, 30, 60, 80)] == pytest.approx([0.1, 0.1, 0.01, 0.001, 0.0001])


def test_linear_schedule_ends_at_end_lr():
    c = cfg("--lr", "0.5", "--lr-schedule", "linear", "--epochs", "10")
    assert lr_at(c, 5, 0, 10) == pytest.approx(0.25)
    assert lr_at(c, 9, 10, 10) == pytest.approx(0.0)


def test_a_run_no_longer_than_its_warmup_warms_up_throughout_and_says_so():
    from engine.config import warmup_note

    short = cfg("--lr", "2.048", "--warmup", "8", "--epochs", "2")  # the seed's preset, shortened
    iters = 10
    lrs = [lr_at(short, e, i, iters) for e in range(2) for i in range(iters)]
    assert lrs == sorted(lrs) and math.isclose(lrs[-1], 2.048 * 2 / 8)  # still rising at the end
    assert "the whole run warms up" in warmup_note(short) and "25% of --lr" in warmup_note(short)
    assert warmup_note(cfg("--warmup", "1", "--epochs", "2")) is None


def test_a_diverged_loss_is_named_with_the_lr_scaling_rule():
    from engine.optim import diverged, divergence_warning

    assert diverged(float("nan"), 1000) and diverged(float("inf"), 10) and diverged(31.5, 2)
    assert not diverged(6.9, 1000) and not diverged(0.7, 2)  # chance level of 1000 classes is ln(1000) ≈ 6.9
    text = divergence_warning(31.48, "epoch 1, iteration 2", cfg("--lr", "0.1", "-b", "8"), 8)
    assert "--lr 0.1 is high for a global batch of 8" in text and "(--lr 0.008 here)" in text
