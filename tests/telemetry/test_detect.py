"""Host detection: every kind at once, reasons instead of exceptions, and import hygiene."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.telemetry import HostSampler, detect_backends, open_sampler, sample_all

from .conftest import FIXTURES, make_fake_pynvml, two_gpus, write_script

REPO = Path(__file__).resolve().parents[2]


def test_every_kind_in_one_report(monkeypatch: pytest.MonkeyPatch, fake_cnmon) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_pynvml(two_gpus()))
    bindir = fake_cnmon(FIXTURES / "v5.10.22_2x_mlu370-x8_ecc.txt")
    report = sample_all(env={"PATH": str(bindir)})
    assert [c.key for c in report.all_cards()] == [
        ("mlu", 0),
        ("mlu", 1),
        ("cuda", 0),
        ("cuda", 1),
        ("cpu", 0),
    ]
    assert report.unavailable == {} and report.errors == {}
    assert report.sampled_at > 0
    data = report.to_dict()
    assert data["cards"][2]["name"] == "NVIDIA A100-SXM4-80GB"


def test_missing_backends_are_reasons(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setattr("engine.telemetry.nvml.nvidia_driver_present", lambda: False)
    found = detect_backends(env={"PATH": str(tmp_path)})
    assert found == {
        "mlu": "cnmon not on PATH",
        "cuda": "no NVIDIA driver, and nvidia-ml-py is not installed",
        "cpu": None,
    }
    report = sample_all(env={"PATH": str(tmp_path)})
    assert report.unavailable == {k: v for k, v in found.items() if v}
    assert [c.kind for c in report.all_cards()] == ["cpu"]


def test_a_hanging_cnmon_is_an_error_and_the_rest_still_sampled(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_pynvml(two_gpus()))
    write_script(tmp_path / "bin", "sleep 30")
    with HostSampler(env={"PATH": str(tmp_path / "bin")}, timeout=0.3) as host:
        report = host.sample()
    assert report.errors == {"mlu": "cnmon timed out after 0.3 s"}
    assert len(report.cards["cuda"]) == 2 and len(report.cards["cpu"]) == 1


def test_cnmon_with_no_card_is_unavailable(tmp_path: Path) -> None:
    write_script(tmp_path / "bin", "echo 'CNMON v5.10.13'")
    report = HostSampler(["mlu"], env={"PATH": str(tmp_path / "bin")}).sample()
    assert report.unavailable == {"mlu": "cnmon lists no card"}


def test_open_sampler_for_one_kind(fake_cnmon) -> None:
    sampler = open_sampler("mlu", env={"PATH": str(fake_cnmon(FIXTURES / "v1.16.0_mlu220-m2.txt"))})
    assert [c.name for c in sampler.sample([0])] == ["MLU220-M2"]
    with pytest.raises(ValueError, match="unknown device kind 'npu'"):
        open_sampler("npu")


@pytest.mark.parametrize(
    "module", ["engine.telemetry", "engine.telemetry.detect", "rn50tui.commands.devices"]
)
def test_no_torch_textual_or_eager_rich(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "bad = [m for m in ('torch', 'textual', 'pynvml') if m in sys.modules]\n"
        f"bad += ['rich'] if {module!r} == 'rn50tui.commands.devices' and 'rich' in sys.modules else []\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
