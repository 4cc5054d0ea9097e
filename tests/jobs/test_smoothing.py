"""The smoothed training loss: an iteration-weighted moving average, independent of the log interval."""

from __future__ import annotations

import math

import pytest

from rn50tui.jobs.policy.smoothing import SMOOTHING_EPOCHS, LossSmoother


def _feed(windows: list[tuple[int, int, float]], iters: int) -> float:
    s = LossSmoother()
    for epoch, it, loss in windows:
        s.add(epoch, it, loss, iters)
    return s.value


@pytest.mark.parametrize("print_freq", [1, 2, 5])
def test_a_step_in_the_loss_decays_by_iterations_whatever_the_log_interval(print_freq):
    iters = 40
    windows = [(1, it, 1.0) for it in range(print_freq, 21, print_freq)]
    windows += [(1, it, 2.0) for it in range(20 + print_freq, 41, print_freq)]
    tau = SMOOTHING_EPOCHS * iters
    assert _feed(windows, iters) == pytest.approx(2.0 - math.exp(-20 / tau))


def test_the_average_runs_on_across_an_epoch_boundary():
    one = [(1, it, 1.0) for it in range(1, 11)] + [(2, it, 3.0) for it in range(1, 11)]
    assert _feed(one, 10) == pytest.approx(3.0 - 2.0 * math.exp(-10 / (SMOOTHING_EPOCHS * 10)))


def test_a_non_finite_average_restarts_at_the_next_finite_window():
    s = LossSmoother()
    s.add(1, 1, 1.0, 10)
    assert math.isnan(s.add(1, 2, float("nan"), 10))
    assert s.add(1, 3, 0.5, 10) == 0.5
