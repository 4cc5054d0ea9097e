"""`rn50tui devices`: in-process through `run`, and as a real `python -m rn50tui.commands.devices` process."""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from engine.telemetry.detect import HostReport
from engine.telemetry.stats import CardStats
from rn50tui.commands import devices

from .conftest import FIXTURES, make_fake_pynvml, two_gpus, write_script
from .test_cnmon import BUSY_TABLE

REPO = Path(__file__).resolve().parents[2]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    devices.add_arguments(parser)
    return parser.parse_args(list(argv))


def run(*argv: str, holders=None) -> tuple[int, str]:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    code = devices.run(parse(*argv), holders, console=console)
    return code, out.getvalue()


@pytest.fixture
def bare_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A host like this one, whatever the machine running the tests has: no cnmon, no pynvml."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("RN50TUI_CNMON", raising=False)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setattr("engine.telemetry.nvml.nvidia_driver_present", lambda: False)


@pytest.fixture
def busy_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Two MLU cards (the constructed busy table, via a fake cnmon) and two GPUs (the pynvml stand-in)."""
    table = tmp_path / "busy.txt"
    table.write_text(BUSY_TABLE)
    bindir = tmp_path / "bin"
    write_script(bindir, f"cat '{table}'")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_pynvml(two_gpus()))


def test_bare_host_shows_the_cpu_and_says_no_mlu_or_cuda(bare_host) -> None:
    code, out = run()
    assert code == 0
    assert "cpu" in out and "cores)" in out
    assert "no MLU card found (cnmon not on PATH)" in out
    assert "no CUDA card found (no NVIDIA driver, and nvidia-ml-py is not installed)" in out
    assert "held by" not in out  # without the job store nobody knows who holds a card


def test_json_output(bare_host) -> None:
    code, out = run("--json")
    payload = json.loads(out)
    assert code == 0
    (card,) = payload["cards"]
    assert (card["kind"], card["index"], card["holder"]) == ("cpu", 0, None)
    assert card["power_w"] is None
    assert payload["unavailable"]["mlu"] == "cnmon not on PATH"
    assert payload["messages"][0] == "no MLU card found (cnmon not on PATH)"


def test_every_kind_with_holders(busy_host) -> None:
    holders = {("mlu", 1): "job 12 (demo)", ("cuda", 0): "job 13 (sweep)"}
    code, out = run(holders=holders)
    assert code == 0
    lines = out.splitlines()
    mlu1 = next(line for line in lines if "0000:3D:00.0" in line)
    assert (
        "job 12 (demo)" in mlu1
        and "100 %" in mlu1
        and "18190 / 23374 MiB" in mlu1
        and "248.5 / 250 W" in mlu1
    )
    assert "free" in next(line for line in lines if "0000:39:00.0" in line)
    a100 = next(line for line in lines if "A100" in line)
    assert "job 13 (sweep)" in a100 and "312.456 / 400 W" in a100
    k80 = next(line for line in lines if "Tesla K80" in line)
    assert "— / — W" not in k80 and "—" in k80  # unsupported values show as unknown
    assert "41234" in out and "python -m engine.train" in out  # the processes table
    assert "no MLU card found" not in out and "no CUDA card found" not in out


def test_json_holders(busy_host) -> None:
    payload = json.loads(run("--json", holders={("mlu", 0): "job 7 (a)"})[1])
    holders = {(c["kind"], c["index"]): c["holder"] for c in payload["cards"]}
    assert holders == {
        ("mlu", 0): "job 7 (a)",
        ("mlu", 1): None,
        ("cuda", 0): None,
        ("cuda", 1): None,
        ("cpu", 0): None,
    }
    assert payload["cards"][0]["processes"][0] == {
        "pid": 41234,
        "mem_used_mib": 17920,
        "command": "python -m engine.train /data/imagenet --ar",
    }


def test_watch_refreshes_until_count(bare_host) -> None:
    code, out = run("--watch", "0.05", "--count", "3", "--json")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 3
    assert all(json.loads(line)["cards"][0]["kind"] == "cpu" for line in lines)
    code, out = run("--watch", "0.05", "--count", "2")
    assert out.count("no MLU card found") == 2


def test_watch_needs_a_positive_interval(bare_host, capsys: pytest.CaptureFixture) -> None:
    assert devices.run(parse("--watch", "0")) == 2
    assert "positive" in capsys.readouterr().err


def test_reasons_are_printed_literally() -> None:
    # rich would read "[nvml]" as markup and drop it.
    report = HostReport(unavailable={"cuda": "pip install 'rn50tui[nvml]'"})
    report.cards["cpu"] = [CardStats(kind="cpu", index=0, name="[weird] cpu")]
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(devices.render(report))
    assert "no CUDA card found (pip install 'rn50tui[nvml]')" in out.getvalue()
    assert "[weird] cpu" in out.getvalue()


def test_failing_backend_is_reported_and_the_others_still_shown(
    monkeypatch, tmp_path: Path, bare_host
) -> None:
    write_script(tmp_path / "bin", "echo 'cnmon: driver mismatch' >&2; exit 1")
    code, out = run("--cnmon", str(tmp_path / "bin" / "cnmon"))
    assert code == 0
    assert "MLU cards could not be read: cnmon exited with status 1: cnmon: driver mismatch" in out
    assert "cores)" in out


# ---------------------------------------------------------------- as a real process on this machine


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_module_on_this_machine() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rn50tui.commands.devices"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert "cpu" in proc.stdout and "cores)" in proc.stdout
    if shutil.which("cnmon") is None and not os.environ.get("RN50TUI_CNMON"):
        assert "no MLU card found (cnmon not on PATH)" in proc.stdout
    try:
        import pynvml  # noqa: F401
    except ImportError:
        assert "no CUDA card found (" in proc.stdout


def test_module_with_fake_cnmon_json(fake_cnmon) -> None:
    bindir = fake_cnmon(FIXTURES / "v5.10.13_2x_mlu370-x8.txt")
    env = {**_env(), "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [sys.executable, "-m", "rn50tui.commands.devices", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    kinds = [(c["kind"], c["index"], c["temp_c"]) for c in json.loads(proc.stdout)["cards"]]
    assert kinds[:2] == [("mlu", 0, 32), ("mlu", 1, 39)] and kinds[-1][0] == "cpu"


def test_watch_stops_cleanly_on_ctrl_c() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rn50tui.commands.devices", "--watch", "0.2", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=REPO,
    )
    try:
        first = proc.stdout.readline()  # wait for the first refresh rather than sleeping
        assert json.loads(first)["cards"]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
