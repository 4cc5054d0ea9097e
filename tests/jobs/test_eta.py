"""The ETA model on a run of known timings: iterations, validation passes and epoch-end work all count."""

from __future__ import annotations

import pytest

from rn50tui.jobs.policy.eta import VAL_COST, EtaModel

EPOCHS, ITERS, VAL_ITERS = 3, 20, 5
PER_ITER, PER_VAL, CHECKPOINT = 1.0, 0.5, 6.0  # seconds; the val pass is 2.5 s, the epoch end 8.5 s


def run_records() -> list[tuple]:
    """The follower's rows of a run logged every 2 iterations, with its timings above."""
    rows, t = [], 0.0
    for epoch in range(1, EPOCHS + 1):
        for it in range(2, ITERS + 1, 2):
            t += 2 * PER_ITER
            rows.append((1, 1, t, epoch, it, "train", "{}"))
        for vit in range(1, VAL_ITERS + 1):
            t += PER_VAL
            rows.append((1, 1, t, epoch, vit, "val", "{}"))
        rows.append((1, 1, t, epoch, None, "epoch", "{}"))
        t += CHECKPOINT
    rows.append((1, 1, t - CHECKPOINT, None, None, "summary", "{}"))
    return rows


def predicted_end(rows: list[tuple], upto: int) -> float:
    model = EtaModel()
    model.observe([], {"epochs": EPOCHS, "iters_per_epoch": ITERS, "val_iters": VAL_ITERS})
    model.observe(rows[:upto], {})
    return model.end_time()


def test_after_an_epoch_end_the_eta_is_exact():
    rows = run_records()
    actual_end = rows[-1][2] + CHECKPOINT  # the last checkpoint follows the last epoch record
    second_epoch = next(i for i, r in enumerate(rows) if r[3] == 2 and r[5] == "train")
    for upto in (second_epoch + 3, second_epoch + 12):
        assert predicted_end(rows, upto) == pytest.approx(actual_end, rel=1e-6)


def test_before_any_validation_the_pass_is_estimated_from_the_training_rate():
    rows = run_records()
    actual_end = rows[-1][2] + CHECKPOINT
    quarter = 5  # 10 of 60 iterations, nothing but training seen
    t = rows[quarter - 1][2]
    guess = t + (EPOCHS * ITERS - 10) * PER_ITER + EPOCHS * VAL_ITERS * PER_ITER * VAL_COST
    assert predicted_end(rows, quarter) == pytest.approx(guess)
    assert predicted_end(rows, quarter) < actual_end  # the checkpoints are not known yet


def test_no_eta_until_a_rate_is_known():
    rows = run_records()
    assert predicted_end(rows, 1) is None and predicted_end(rows, 2) is not None


def test_the_run_sizes_may_come_in_a_batch_without_rows():
    rows = run_records()
    model = EtaModel()
    model.observe([], {"epochs": EPOCHS, "iters_per_epoch": ITERS, "val_iters": VAL_ITERS})  # run_start alone
    model.observe(rows[:3], {"epoch": 1, "iteration": 6})  # later batches carry no sizes
    assert model.end_time() is not None
