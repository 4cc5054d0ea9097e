"""The rest of upstream's recipe: mixup, the EMA of the weights, AutoAugment, interpolation, early stopping,
and the port's DALI backend names — each against a hand computation or a real run of the Trainer."""

from __future__ import annotations

import io
import random
import statistics
import sys

import pytest
import torch
import torch.nn.functional as F

from engine.assemble import build_trainer
from engine.config import DALI_BACKENDS, ConfigError, dali_note, parse_args
from engine.data import normalize
from engine.data.transforms import Crop, TrainTransform, ValTransform, sample_rng
from engine.distributed import DistInfo
from engine.ema import EMA, ema_decay, select_weights
from engine.events import EventWriter, iter_records
from engine.mixup import draw, mix, soft_targets
from engine.train import main

TINY = ["--data-backend", "synthetic", "--device", "cpu", "--image-size", "32", "-b", "8", "-j", "0",
        "--num-classes", "4", "--synthetic-size", "16", "--seed", "3", "--lr", "0.05", "-p", "1"]  # fmt: skip


def trainer_of(tmp_path, *flags: str, raport: bool = False):
    cfg = parse_args([*TINY, "--workspace", str(tmp_path), "--raport-file", "raport.json", *flags])
    writer = EventWriter(tmp_path / "raport.json" if raport else None, echo=io.StringIO())
    trainer, ckpt = build_trainer(cfg, dist=DistInfo(), writer=writer)
    if ckpt is not None:  # as engine.train._run: the checkpoint loads into the built trainer
        trainer.load_state_dict(ckpt, cfg.resume)
    return trainer


# -- mixup ----------------------------------------------------------------------------------------


def test_mixup_draws_follow_beta_and_depend_on_the_position_only():
    alpha = 0.2
    lams = [draw(alpha, 8, 1, 0, it, 0).lam for it in range(4000)]
    assert statistics.fmean(lams) == pytest.approx(0.5, abs=0.03)
    assert statistics.pvariance(lams) == pytest.approx(1 / (4 * (2 * alpha + 1)), rel=0.08)  # Beta(α, α)
    assert sum(lam < 0.1 for lam in lams) / len(lams) > 0.3  # α < 1: most mass near 0 and 1
    a, b = draw(alpha, 8, 1, 2, 5, 0), draw(alpha, 8, 1, 2, 5, 0)
    assert a.lam == b.lam and torch.equal(a.perm, b.perm)  # a resumed run draws the same
    assert draw(alpha, 8, 1, 2, 5, 1).lam != a.lam  # each rank its own
    assert sorted(a.perm.tolist()) == list(range(8))


def test_mixup_mixes_images_and_smoothed_targets_as_the_draw_says():
    x = torch.randn(6, 3, 4, 4)
    y = torch.tensor([0, 1, 2, 3, 0, 2])
    d = draw(0.4, 6, 7, 1, 3, 0)
    mixed, targets = mix(x.clone(), y, d, num_classes=4, smoothing=0.1)
    for i in range(6):
        j = int(d.perm[i])
        torch.testing.assert_close(mixed[i], d.lam * x[i] + (1 - d.lam) * x[j])
        hand = [0.025] * 4
        hand_j = [0.025] * 4
        hand[int(y[i])] += 0.9
        hand_j[int(y[j])] += 0.9
        expected = torch.tensor([d.lam * a + (1 - d.lam) * b for a, b in zip(hand, hand_j)])
        torch.testing.assert_close(targets[i], expected)
    torch.testing.assert_close(targets.sum(1), torch.ones(6))
    assert torch.equal(soft_targets(y, 4, 0.0).argmax(1), y)


def test_train_step_loss_is_the_soft_target_loss_by_hand(tmp_path):
    trainer = trainer_of(tmp_path, "--mixup", "0.2", "--label-smoothing", "0.1")
    loader = trainer.train_loader
    loader.set_epoch(1)
    batch = next(iter(loader))
    x = normalize(batch.images.clone(), trainer.memory_format)
    d = draw(0.2, len(batch), 3, 1, 2, 0)  # seed 3, epoch 1, iteration 2, rank 0
    x_hand = d.lam * x + (1 - d.lam) * x[d.perm]
    onehot = F.one_hot(batch.labels, 4).float() * 0.9 + 0.1 / 4
    t_hand = d.lam * onehot + (1 - d.lam) * onehot[d.perm]
    trainer.model.train()
    with torch.no_grad():
        logits = trainer.model(x_hand)  # train-mode BN: batch statistics, the same in the step below
    by_hand = -(t_hand * torch.log_softmax(logits, 1)).sum(1).mean()
    # upstream's NLLMultiLabelSmooth on the mixed one-hot targets is the same number
    mixed_onehot = d.lam * F.one_hot(batch.labels, 4).float() + (1 - d.lam) * F.one_hot(
        batch.labels[d.perm], 4
    )
    logp = torch.log_softmax(logits, 1)
    upstream = (0.9 * (-logp * mixed_onehot).sum(1) + 0.1 * (-logp.mean(1))).mean()
    loss = trainer.train_step(batch, boundary=True, position=(1, 2))
    # two forward passes of ResNet-50 in fp32 differ by ~2e-5 relative where oneDNN picks other kernels
    torch.testing.assert_close(loss, by_hand, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(loss, upstream, rtol=1e-4, atol=1e-6)


# -- EMA ------------------------------------------------------------------------------------------


def test_ema_equals_a_hand_computed_average_after_k_sgd_steps():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten())
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ema = EMA(model, 0.99)
    hand = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    for step in range(7):
        model(torch.randn(5, 3, 6, 6)).square().mean().backward()
        opt.step()
        opt.zero_grad()
        ema.update()
        d = min(0.99, (1 + step) / (10 + step))
        hand = {k: d * v + (1 - d) * model.state_dict()[k] for k, v in hand.items()}
    for key, value in hand.items():
        torch.testing.assert_close(ema.module.state_dict()[key], value, msg=key)
    assert int(ema.module.state_dict()["1.num_batches_tracked"]) == 7
    assert not torch.equal(ema.module.state_dict()["0.weight"], model.state_dict()["0.weight"])


@pytest.mark.slow
def test_trainer_moves_the_ema_once_per_optimizer_step_under_accumulation(tmp_path):
    decay, k = 0.9, 3
    trainer = trainer_of(tmp_path, "--use-ema", str(decay), "--optimizer-batch-size", "16")
    model = trainer.model
    name = "fc.weight"
    hand = model.state_dict()[name].clone()
    hand_bn = model.state_dict()["bn1.running_mean"].clone()
    loader = trainer.train_loader
    loader.set_epoch(0)
    batches = iter(loader)
    for step in range(k):
        for micro in range(2):  # two mini-batches per optimizer step: the EMA moves once
            trainer.train_step(next(batches), boundary=micro == 1)
            if micro == 0:
                assert trainer.recipe.ema.updates == step
        d = ema_decay(decay, step)
        hand = d * hand + (1 - d) * model.state_dict()[name]
        hand_bn = d * hand_bn + (1 - d) * model.state_dict()["bn1.running_mean"]
        loader.set_epoch(step + 1)
        batches = iter(loader)
    ema = trainer.recipe.ema
    assert ema.updates == k
    assert [ema_decay(decay, n) for n in range(3)] == [0.1, 2 / 11, 3 / 12]  # upstream's warm-up
    torch.testing.assert_close(ema.module.state_dict()[name], hand)
    torch.testing.assert_close(ema.module.state_dict()["bn1.running_mean"], hand_bn)
    assert not torch.equal(ema.module.state_dict()[name], model.state_dict()[name])
    assert torch.equal(
        ema.module.state_dict()["bn1.num_batches_tracked"], model.state_dict()["bn1.num_batches_tracked"]
    )
    state = trainer.state_dict(1, 0)
    assert state["ema_updates"] == k and all(
        type(v) is torch.Tensor for v in state["state_dict_ema"].values()
    )


def test_ema_state_survives_a_weights_only_round_trip_and_loads_exactly(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ema = EMA(model, 0.5)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update()
    torch.save({"state_dict_ema": ema.state_dict(), "ema_updates": ema.updates}, tmp_path / "c.pth")
    saved = torch.load(tmp_path / "c.pth", weights_only=True)
    other = EMA(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2)), 0.5)
    other.load_state_dict(saved["state_dict_ema"], saved["ema_updates"])
    assert other.updates == 1
    for key, value in ema.module.state_dict().items():
        assert torch.equal(other.module.state_dict()[key], value)


def test_weights_choice_best_takes_the_better_recorded_top1():
    ckpt = {"state_dict": {"w": 1}, "state_dict_ema": {"w": 2}, "prec1": 50.0, "prec1_ema": 60.0}
    assert select_weights(ckpt, "best", "c")[1] == "ema"
    assert select_weights({**ckpt, "prec1_ema": 40.0}, "best", "c")[1] == "model"
    assert select_weights({**ckpt, "prec1_ema": 40.0}, "ema", "c") == ({"w": 2}, "ema")
    assert select_weights({"state_dict": {"w": 1}}, "best", "c")[1] == "model"
    with pytest.raises(Exception, match="no EMA weights.*--weights model"):
        select_weights({"state_dict": {"w": 1}}, "ema", "c")


# -- AutoAugment and interpolation ----------------------------------------------------------------


def test_autoaugment_is_deterministic_under_a_seed_and_changes_the_crop():
    img = torch.randint(0, 256, (3, 120, 160), dtype=torch.uint8)
    aa = TrainTransform(32, augmentation="autoaugment")
    plain = TrainTransform(32)

    def run(transform, seed: int, index: int) -> torch.Tensor:
        rng = sample_rng(seed, 0, index)
        return transform(img, transform.plan(120, 160, rng))

    torch.manual_seed(123)
    first = [run(aa, 5, i) for i in range(12)]
    torch.manual_seed(999)  # the global generator plays no part
    again = [run(aa, 5, i) for i in range(12)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert all(t.dtype == torch.uint8 and t.shape == (3, 32, 32) for t in first)
    differs = sum(not torch.equal(a, run(plain, 5, i)) for i, a in enumerate(first))
    assert differs >= 6  # most samples get at least one of the policy's operations
    other_seed = [run(aa, 6, i) for i in range(12)]
    assert any(not torch.equal(a, b) for a, b in zip(first, other_seed))


def test_bicubic_interpolation_is_used_by_both_transforms():
    img = torch.randint(0, 256, (3, 90, 70), dtype=torch.uint8)
    crop = Crop(5, 5, 60, 50)
    assert not torch.equal(TrainTransform(32, "bicubic")(img, crop), TrainTransform(32)(img, crop))
    assert not torch.equal(ValTransform(32, 37, "bicubic")(img, crop), ValTransform(32, 37)(img, crop))
    assert parse_args([*TINY, "--interpolation", "bicubic"]).interpolation == "bicubic"


# -- early stopping, flags ------------------------------------------------------------------------


def test_early_stopping_stops_at_the_right_epoch_and_says_why(tmp_path):
    trainer = trainer_of(tmp_path, "--epochs", "10", "--early-stopping-patience", "3", raport=True)
    top1 = iter([10.0, 20.0, 15.0, 20.0, 19.0, 30.0, 31.0])  # best at epoch 2; 3, 4, 5 do not beat it
    trained = []

    def fake_epoch(epoch, start_iter):
        trained.append(epoch + 1)
        from engine.trainer import EpochOutcome

        return EpochOutcome({"train.loss": 1.0}, 2, stopped=False)

    trainer.train_epoch = fake_epoch
    trainer.validate = lambda epoch, model=None, prefix="val": {f"{prefix}.top1": next(top1)}
    assert trainer.fit(0, 0) == 0
    trainer.writer.close()
    assert trained == [1, 2, 3, 4, 5]
    recs = list(iter_records(tmp_path / "raport.json"))
    (early,) = [r.data for r in recs if r.event == "early_stop"]
    assert (early["epoch"], early["best_epoch"], early["patience"]) == (5, 2, 3)
    (end,) = [r.data for r in recs if r.event == "run_end"]
    assert end["status"] == "completed" and end["epoch"] == 5
    assert "not improved for 3 epochs" in end["reason"] and "best 20.00 at epoch 2" in end["reason"]
    ckpt = torch.load(tmp_path / "checkpoint.pth.tar", weights_only=False)
    assert (ckpt["epoch"], ckpt["best_epoch"]) == (5, 2)


def test_an_absent_dali_backend_warns_once_and_runs_the_engine_pipeline(tmp_path, capsys, monkeypatch):
    from engine.data.testing import make_image_folder

    backend = "dali-mlu"
    monkeypatch.setitem(sys.modules, "cambricon.dali", None)  # absent even on a Cambricon host
    data = make_image_folder(tmp_path / "d", {"train": 8, "val": 4}, num_classes=2, size=(40, 40))
    for name in DALI_BACKENDS:  # the line names the missing piece; a present backend has none
        note = dali_note(parse_args([str(data), "--data-backend", name]), "x is not installed")
        assert note and note.startswith(f"--data-backend {name}: x is not installed")
        assert dali_note(parse_args([str(data), "--data-backend", name]), None) is None
    assert dali_note(parse_args(TINY), "x") is None
    argv = [str(data), "--data-backend", backend, "--device", "cpu", "--image-size", "32", "-b", "4",
            "-j", "0", "--num-classes", "2", "--epochs", "1", "--prof", "1", "--workspace",
            str(tmp_path / "ws"), "--raport-file", "raport.json", "--no-checkpoints"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "DALI" in line or "dali" in line]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: --data-backend {backend}")
    assert "cambricon.dali" in warnings[0] and "own pipeline runs instead" in warnings[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--mixup", "-0.1"], "--mixup must be"),
        (["--use-ema", "1.5"], "--use-ema must be a decay"),
        (["--early-stopping-patience", "0"], "--early-stopping-patience must be"),
        (["--early-stopping-patience", "2", "--training-only"], "needs validation"),
    ],
)
def test_recipe_flags_refuse_values_that_cannot_work(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse_args([*TINY, *argv])


def test_defaults_leave_the_90_epoch_recipe_unchanged():
    cfg = parse_args(TINY)
    assert (cfg.mixup, cfg.use_ema, cfg.augmentation, cfg.interpolation) == (0.0, None, None, "bilinear")
    assert cfg.early_stopping_patience == -1 and cfg.weights == "best"
    rng = random.Random(0)
    assert TrainTransform(32).plan(100, 100, rng) == TrainTransform(32).plan(100, 100, random.Random(0))


def test_evaluate_loads_the_weights_asked_for(tmp_path):
    from engine.model import build_model

    model = build_model("resnet50", "classic", 4)
    weights = model.state_dict()
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in weights.items()}
    ckpt = tmp_path / "c.pth.tar"
    torch.save(
        {"epoch": 1, "state_dict": weights, "state_dict_ema": ema, "prec1": 30.0, "prec1_ema": 40.0}, ckpt
    )
    for choice, expected in (("best", ema), ("ema", ema), ("model", weights)):
        trainer = trainer_of(tmp_path, "--evaluate", "--resume", str(ckpt), "--weights", choice)
        assert trainer.recipe.weights_from == ("model" if expected is weights else "ema")
        assert torch.equal(trainer.model.state_dict()["fc.weight"], expected["fc.weight"])
        assert trainer.recipe.ema is None  # evaluation keeps no average of its own


def test_a_loader_that_breaks_during_a_stop_stops_the_epoch_where_it_was(tmp_path):
    """A Ctrl-C can reach a loader worker before it ignores signals: the loader then fails. That is a
    stop at the batch reached, never the epoch's end (which would checkpoint the epoch as done)."""
    import signal

    trainer = trainer_of(tmp_path)
    loader, batches = trainer.train_loader, []

    def breaking():
        for i, batch in enumerate(iter(loader)):
            if i == 1:
                trainer.stop.signum = signal.SIGINT
                raise RuntimeError("DataLoader worker (pid 123) exited unexpectedly")
            batches.append(batch)
            yield batch

    trainer.train_loader = type("Breaking", (), {"set_epoch": loader.set_epoch, "__len__": loader.__len__,
                                                 "set_start_iteration": loader.set_start_iteration,
                                                 "__iter__": lambda self: breaking()})()  # fmt: skip
    outcome = trainer.train_epoch(0, 0)
    assert outcome.stopped and outcome.iterations_done == 1 == len(batches) < len(loader)


def test_a_step_that_does_not_fit_the_card_says_to_lower_the_batch(tmp_path, monkeypatch, capsys):
    """The error a card raises (torch.cuda.OutOfMemoryError; torch_mlu words it "MLU out of memory"),
    raised here by a stand-in step: the fix, not a traceback."""
    from engine.trainer import Trainer

    def too_big(self, *args, **kwargs):
        raise torch.cuda.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total)"
        )

    monkeypatch.setattr(Trainer, "train_step", too_big)
    code = main([*TINY, "--workspace", str(tmp_path), "--raport-file", "raport.json", "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "error: out of memory at batch 8 per card (CUDA out of memory. Tried to allocate 2.00 GiB" in err
    assert "pass a smaller -b, with --optimizer-batch-size" in err and "or --amp" in err
    errors = [r.data for r in iter_records(tmp_path / "raport.json") if r.event == "error"]
    assert errors[-1]["message"].startswith("out of memory at batch 8 per card")
