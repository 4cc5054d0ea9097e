"""`python -m engine.bench data` runs end to end and prints both paths side by side."""

from __future__ import annotations

import pytest

from engine.bench.__main__ import main

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")


def test_bench_dispatcher_names_its_modes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nonsense"]) == 2
    assert "data" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_data_prints_old_and_new_rates(capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "data",
        "--images",
        "16",
        "--image-size",
        "32",
        "--source-size",
        "64x48",
        "-b",
        "4",
        "--repeat",
        "1",
    ]
    assert main([*args, "--workers", "2", "--profile"]) == 0
    out = capsys.readouterr().out
    assert "old img/s" in out and "new img/s" in out and "speed-up" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit() and "×" in line]
    assert [r[0] for r in rows] == ["1", "2"]
    assert "decode alone" in out
    # every DALI backend present is measured; an absent one says so
    assert ("dali-cpu img/s" in out) != ("NVIDIA DALI is not installed" in out)
    assert ("dali-cpu img/s" in out) == ("NVIDIA DALI alone" in out)  # its ceiling beside it, 1 and 2 threads
    stages = [line.split()[0] for line in out.splitlines() if line.split()[:1] and "µs" not in line]
    for stage in (
        "read",
        "decode",
        "crop-resize",
        "flip",
        "collate",
        "hand-over",
        "normalise",
        "autoaugment",
    ):
        assert stage in stages
