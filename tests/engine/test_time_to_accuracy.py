"""Issue 27 in the engine's parts: the resize schedule, time to accuracy, the input-bound verdict, the feed
estimate. The end-to-end runs are in tests/engine/test_time_to_accuracy_e2e.py."""

from __future__ import annotations

import pytest

from engine.bench.feed import FeedEstimate, estimate, published_card_ips
from engine.config import ConfigError, parse_args
from engine.data import BatchPlan, ImageBatches, Loader, load_split
from engine.data.synthetic import SyntheticImages
from engine.data.testing import make_image_folder
from engine.data.transforms import TrainTransform
from engine.progress import InputWatch, RunClock, best_score, format_duration, target_reason
from engine.schedule import CropSizes, ResizeSchedule, ScheduleError


def test_the_crop_grows_in_steps_of_32_between_the_two_epochs_counted_from_1():
    s = ResizeSchedule.parse("160:192:66:77")
    sizes = [s.size_at(e) for e in range(88)]  # loaders count epochs from 0
    assert sizes[:66] == [160] * 66 and sizes[76:] == [192] * 12
    assert set(sizes) == {160, 192} and sizes == sorted(sizes)
    ramp = ResizeSchedule.parse("64:192:1:5")
    assert [ramp.size_at(e) for e in range(6)] == [64, 96, 128, 160, 192, 192]


@pytest.mark.parametrize("text", ["160:192:66", "150:192:1:2", "160:192:5:2", "160:192:0:2", "a:b:c:d"])
def test_a_bad_resize_schedule_is_refused_before_any_work(text, tmp_path):
    with pytest.raises(ScheduleError):
        ResizeSchedule.parse(text)
    with pytest.raises(ConfigError, match="--resize-schedule"):
        parse_args(["--data-backend", "synthetic", "--resize-schedule", text])


def test_validation_crops_the_epochs_training_size_unless_val_image_size_says():
    ramp = ResizeSchedule.parse("32:64:1:2")
    assert CropSizes(224, ramp).val_at(0) == (32, 37) and CropSizes(224, ramp).val_at(1) == (64, 73)
    assert CropSizes(224, ramp, 256).val_at(0) == (256, 293)
    assert CropSizes(224).val_at(5) == (224, 256)  # today's rule without a schedule


def test_target_top1_needs_validation_and_a_percentage():
    for argv in (
        ["--target-top1", "0"],
        ["--target-top1", "101"],
        ["--target-top1", "50", "--training-only"],
    ):
        with pytest.raises(ConfigError, match="--target-top1"):
            parse_args(["--data-backend", "synthetic", *argv])
    assert parse_args(["--data-backend", "synthetic", "--target-top1", "75.9"]).target_top1 == 75.9


def test_image_batches_follow_the_epoch_size_without_being_told(tmp_path):
    root = make_image_folder(tmp_path, {"train": 2}, num_classes=2, size=(80, 80))
    samples = load_split(str(root), "train", 2)
    crops = CropSizes(32, ResizeSchedule.parse("32:64:1:2"))
    source = ImageBatches(samples, TrainTransform(32), 32, 0, lambda e: (crops.train_at(e),) * 2)
    assert source.fetch(0, [0, 1]).images.shape[-2:] == (32, 32)
    assert source.fetch(1, [0, 1]).images.shape[-2:] == (64, 64)
    synthetic = SyntheticImages(4, 2, 32, 0, "train", lambda e: (crops.train_at(e),) * 2)
    assert synthetic.fetch(1, [0, 1]).images.shape[-2:] == (64, 64)
    loader = Loader(source, BatchPlan(len(source), 2, 0, 1, shuffle=True, seed=0), 0, 2, False)
    loader.set_epoch(1)  # a resumed epoch: the size comes from the epoch alone
    assert next(iter(loader)).images.shape[-2:] == (64, 64)


def test_the_best_of_model_and_ema_is_the_score_and_the_target_says_when_and_how_long():
    assert best_score({"val.top1": 70.0, "val_ema.top1": 76.0}) == 76.0
    assert best_score({}) is None
    reason = target_reason(75.9, 76.0, 37, 4 * 3600 + 12 * 60)
    assert reason == "reached 76.0% top-1 at epoch 37 after 4h12m of training"
    assert target_reason(75.9, 75.8, 37, 10.0) is None and target_reason(None, 99.0, 1, 1.0) is None
    assert format_duration(42) == "42s" and format_duration(200) == "3m20s"


def test_the_clock_records_each_new_best_and_its_state_survives_a_checkpoint():
    clock = RunClock(train_seconds=100.0)
    first = clock.after_validation(1, {"val.top1": 30.0})
    assert first is not None and first["train_seconds"] == 100.0 and len(first["history"]) == 1
    clock.train_seconds = 250.0
    assert clock.after_validation(2, {"val.top1": 29.0}) is None  # not a new best
    assert clock.after_validation(3, {"val.top1": 20.0, "val_ema.top1": 40.0})["top1"] == 40.0
    again = RunClock()
    again.load_state_dict(clock.state_dict())
    assert again == clock
    old = RunClock()
    old.load_state_dict({"epoch": 3})  # a checkpoint of before issue 27
    assert old.train_seconds == 0.0 and old.history == []


def test_an_epoch_above_ten_percent_waiting_is_input_bound_until_one_is_not():
    watch = InputWatch(workers=5)
    assert watch.after_epoch(0.05) is None
    event, data = watch.after_epoch(0.38)
    assert event == "input_bound" and data["workers"] == 5
    assert data["message"] == (
        "input-bound: the cards waited for data 38% of each step; more loader workers (-j, now 5), a "
        "resized dataset, or fewer cards per host"
    )
    assert watch.after_epoch(0.2)[0] == "input_bound"
    assert watch.after_epoch(0.02) == ("compute_bound", {"ratio": 0.02, "threshold": 0.1})
    assert watch.after_epoch(0.02) is None and watch.after_epoch(None) is None


def test_the_feed_estimate_counts_cores_times_per_core_rate_over_a_cards_rate():
    est = estimate({1: 100.0, 4: 360.0}, card_ips=300.0, cores=10)
    assert est == FeedEstimate(10, 90.0, 300.0, "--card-ips")
    assert est.cards == pytest.approx(3.0)
    assert est.line().startswith("this host feeds 3.0 cards at 300 img/s each (10 cores × 90 img/s per core")
    ips, source = published_card_ips()
    assert ips == 1156 and "published" in source  # NVIDIA's V100 32GB AMP figure
    assert estimate({2: 100.0}).card_ips == 1156


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")
def test_bench_data_ends_with_how_many_cards_this_host_feeds(capsys):
    from engine.bench.__main__ import main

    args = [
        "data",
        "--images",
        "8",
        "--image-size",
        "32",
        "--source-size",
        "48x48",
        "-b",
        "4",
        "--repeat",
        "1",
    ]
    assert main([*args, "--workers", "1", "--card-ips", "100"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("this host feeds ") and " cards at 100 img/s each (" in last
    assert "img/s per core" in last and "card rate: --card-ips" in last
