"""cnmon parsing (every recorded fixture, constructed tables) and the sampler with a real fake `cnmon`."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from engine.telemetry.cnmon import (
    CnmonSampler,
    find_cnmon,
    parse_info,
    parse_table,
    run_cnmon,
    visible_indices,
)
from engine.telemetry.stats import TelemetryUnavailable

from .conftest import FIXTURES, write_script


def read(name: str) -> str:
    return (FIXTURES / name).read_text()


# ---------------------------------------------------------------- recorded fixtures, checked by eye


def test_v5_10_13_two_mlu370_x8() -> None:
    cards = parse_table(read("v5.10.13_2x_mlu370-x8.txt"))
    assert [c.index for c in cards] == [0, 1]
    for card in cards:
        assert card.kind == "mlu"
        assert card.name == "MLU370-X8"
        assert card.util_percent == 0
        assert (card.mem_used_mib, card.mem_total_mib) == (0, 23374)
        assert (card.power_w, card.power_cap_w) == (106, 250)
        assert card.processes == []
        assert card.extra["firmware"] == "v1.1.6"
        assert card.extra["driver"] == "v5.10.13"
        assert card.extra["cnmon_version"] == "v5.10.13"
        assert card.extra["fan_percent"] == 0
        # Ecc-Error and SR-IOV print N/A: unknown, not 0.
        assert card.extra["columns"] == {
            "VF": "/",
            "Ecc-Error": None,
            "SR-IOV": None,
            "Compute-Mode": "Default",
        }
    assert [c.temp_c for c in cards] == [32, 39]
    assert [c.bus_id for c in cards] == ["0000:39:00.0", "0000:3D:00.0"]


def test_v5_10_22_ecc_on_and_mode_column() -> None:
    cards = parse_table(read("v5.10.22_2x_mlu370-x8_ecc.txt"))
    assert [c.index for c in cards] == [0, 1]
    assert [c.temp_c for c in cards] == [28, 32]
    assert [c.bus_id for c in cards] == ["0000:13:00.0", "0000:16:00.0"]
    for card in cards:
        assert card.name == "MLU370-X8"
        assert card.util_percent == 0
        assert (card.mem_used_mib, card.mem_total_mib) == (0, 20638)  # ECC takes its share
        assert (card.power_w, card.power_cap_w) == (107, 250)
        assert card.extra["driver"] == "v5.10.22"
        assert card.extra["columns"] == {
            "VF": "/",
            "Ecc-Error": "0",
            "Mode": "FULL",
            "Compute-Mode": "Default",
        }


def test_v1_16_0_older_layout_mlu220() -> None:
    (card,) = parse_table(read("v1.16.0_mlu220-m2.txt"))
    assert card.index == 0
    assert card.name == "MLU220-M2"
    assert card.util_percent == 0
    assert card.temp_c == 51
    assert (card.power_w, card.power_cap_w) == (3.70, 8.25)
    # The first MiB pair is device memory; the second column is virtual memory.
    assert (card.mem_used_mib, card.mem_total_mib) == (967, 4096)
    assert (card.extra["vmem_used_mib"], card.extra["vmem_total_mib"]) == (10240, 1048576)
    assert card.bus_id is None  # this layout has no Bus-Id column
    assert card.extra["firmware"] == "v1.1.1"
    assert card.extra["driver"] == "v4.6.9"  # from the per-card Driver column
    assert card.extra["cnmon_version"] == "1.16.0"
    assert card.extra["columns"] == {"VF": "/", "Inited": "On", "Ecc-Error": None}
    assert card.processes == []


# ---------------------------------------------------------------- constructed tables

# CONSTRUCTED, not recorded: no public sample of a busy card exists. It is the v5.10.13 layout with
# made-up load, and process rows laid out as the binary's format string says:
# `|  <card>  /   <pid>  <command line, 45 chars>  <mem> MiB |`.
BUSY_TABLE = """\
+------------------------------------------------------------------------------+
| CNMON v5.10.13                                               Driver v5.10.13 |
+-------------------------------+----------------------+-----------------------+
| Card  VF  Name       Firmware |               Bus-Id | Util        Ecc-Error |
| Fan   Temp      Pwr:Usage/Cap |         Memory-Usage | SR-IOV   Compute-Mode |
|===============================+======================+=======================|
| 0     /   MLU370-X8    v1.1.6 |         0000:39:00.0 | 87%                N/A |
|  0%   61C        221 W/ 250 W | 18234 MiB/ 23374 MiB | N/A           Default |
+-------------------------------+----------------------+-----------------------+
| 1     /   MLU370-X8    v1.1.6 |         0000:3D:00.0 | 100%               N/A |
|  0%   66C      248.5 W/ 250 W | 18190 MiB/ 23374 MiB | N/A           Default |
+-------------------------------+----------------------+-----------------------+

+------------------------------------------------------------------------------+
| Processes:                                                                   |
|  Card  MI  PID     Command Line                             MLU Memory Usage |
|==============================================================================|
|  0     /   41234   python -m engine.train /data/imagenet --ar      17920 MiB |
|  0     /   41301   python eval.py --batch-size 64                    256 MiB |
|  1     /   41235   python -m engine.train /data/imagenet --ar      17920 MiB |
+------------------------------------------------------------------------------+
"""


def test_constructed_busy_table_with_processes() -> None:
    cards = parse_table(BUSY_TABLE)
    first, second = cards
    assert (first.util_percent, first.temp_c, first.power_w, first.power_cap_w) == (87, 61, 221, 250)
    assert (first.mem_used_mib, first.mem_total_mib) == (18234, 23374)
    assert (second.util_percent, second.temp_c, second.power_w) == (100, 66, 248.5)
    assert second.mem_used_mib == 18190
    assert [(p.pid, p.mem_used_mib, p.command) for p in first.processes] == [
        (41234, 17920, "python -m engine.train /data/imagenet --ar"),
        (41301, 256, "python eval.py --batch-size 64"),  # the command ends in a number: not the memory
    ]
    assert [(p.pid, p.mem_used_mib) for p in second.processes] == [(41235, 17920)]


# CONSTRUCTED: the v5.10.22 layout with values a driver may print as N/A or mask as xxxxx.
UNKNOWN_TABLE = """\
+------------------------------------------------------------------------------+
| CNMON v5.10.22                                               Driver v5.10.22 |
+-------------------------------+----------------------+-----------------------+
| Card  VF  Name       Firmware |               Bus-Id | Util        Ecc-Error |
| Fan   Temp      Pwr:Usage/Cap |         Memory-Usage | Mode     Compute-Mode |
|===============================+======================+=======================|
| 0     /   MLU370-X8       N/A |         xxxxxxxxxxxx | N/A                N/A |
|  N/A  N/A      xxxxx W/ 250 W |   N/A MiB/ 20638 MiB | N/A           Default |
+-------------------------------+----------------------+-----------------------+
| 1     /   xxxxx        v1.1.6 |         0000:16:00.0 | xxx                  0 |
| xx%   xxC        107 W/ N/A W |  xxxxx MiB/xxxxx MiB | FULL          Default |
+-------------------------------+----------------------+-----------------------+

+------------------------------------------------------------------------------+
| Processes:                                                                   |
|  Card  MI  PID     Command Line                             MLU Memory Usage |
|==============================================================================|
|  1     /   5150    ./train.sh                                      xxxxx MiB |
+------------------------------------------------------------------------------+
"""


def test_constructed_na_and_masked_values_are_none() -> None:
    first, second = parse_table(UNKNOWN_TABLE)
    assert first.name == "MLU370-X8"
    assert first.extra["firmware"] is None
    assert first.bus_id is None
    assert first.util_percent is None and first.temp_c is None and first.extra["fan_percent"] is None
    assert (first.power_w, first.power_cap_w) == (None, 250)
    assert (first.mem_used_mib, first.mem_total_mib) == (None, 20638)
    assert second.name is None
    assert second.util_percent is None and second.temp_c is None
    assert (second.power_w, second.power_cap_w) == (107, None)
    assert (second.mem_used_mib, second.mem_total_mib) == (None, None)
    assert [(p.pid, p.mem_used_mib, p.command) for p in second.processes] == [(5150, None, "./train.sh")]


# CONSTRUCTED: columns moved and widths changed, as a future driver might; patterns still find them.
REORDERED_TABLE = """\
+------------------------------------------------------------------------+
| CNMON v6.0.0                                          Driver v6.0.0    |
+-----------------------+----------------------+-------------------------+
| Card VF Name Firmware | Util                 | Bus-Id                  |
| Memory-Usage          | Temp Pwr:Usage/Cap   | Fan                     |
|=======================+======================+=========================|
| 3 / MLU590-H8 v2.0.1  | 45%                  | 0000:9a:00.0            |
| 12 MiB/ 81920 MiB     | 40C 350.5 W/ 400 W   | 30%                     |
+-----------------------+----------------------+-------------------------+
"""


def test_constructed_reordered_layout() -> None:
    (card,) = parse_table(REORDERED_TABLE)
    assert (card.index, card.name, card.extra["firmware"]) == (3, "MLU590-H8", "v2.0.1")
    assert (card.util_percent, card.temp_c) == (45, 40)
    assert (card.power_w, card.power_cap_w) == (350.5, 400)
    assert (card.mem_used_mib, card.mem_total_mib) == (12, 81920)
    assert card.bus_id == "0000:9a:00.0"


def test_empty_and_garbage_input_give_no_cards() -> None:
    assert parse_table("") == []
    assert parse_table("cnmon: command not found\n") == []


# CONSTRUCTED: the `key : value` form SOURCES.md documents for `cnmon info`, with the section names a
# public collector reads (Physical Memory Usage → Used, Utilization → MLU Average, Power → Usage).
INFO_TEXT = """\
CNMON v5.10.13
Card 0
    Product Name                   : MLU370-X8
    Firmware                       : v1.1.6
    Driver                         : v5.10.13
    PCIe
        Bus Id                     : 0000:39:00.0
    Physical Memory Usage          :
        Total                      : 23374 MiB
        Used                       : 18234 MiB
        Free                       : 5140 MiB
    Virtual Memory Usage           :
        Total                      : 1048576 MiB
        Used                       : 0 MiB
    Utilization                    :
        MLU Average                : 87 %
        MLU 00                     : 90 %
    Temperature                    :
        Board                      : 45 C
        Cluster 0                  : N/A
        Chip                       : 61 C
    Power Info                     :
        Usage                      : 221 W
        Cap                        : 250 W
Card 1
    Product Name                   : MLU370-X8
    Physical Memory Usage          :
        Total                      : 23374 MiB
        Used                       : N/A
    Utilization                    :
        MLU Average                : xxxxx
    Temperature                    :
        Board                      : 39 C
    Power Info                     :
        Usage                      : N/A
        Cap                        : 250 W
"""


def test_constructed_cnmon_info_key_value_output() -> None:
    first, second = parse_info(INFO_TEXT)
    assert (first.index, first.name, first.bus_id) == (0, "MLU370-X8", "0000:39:00.0")
    assert (first.mem_used_mib, first.mem_total_mib) == (18234, 23374)  # not the virtual memory's
    assert first.util_percent == 87
    assert first.temp_c == 61  # the chip sensor, when there is one
    assert (first.power_w, first.power_cap_w) == (221, 250)
    assert (first.extra["firmware"], first.extra["driver"]) == ("v1.1.6", "v5.10.13")
    assert second.index == 1
    assert (second.mem_used_mib, second.mem_total_mib) == (None, 23374)
    assert second.util_percent is None
    assert second.temp_c == 39  # the board sensor otherwise
    assert (second.power_w, second.power_cap_w) == (None, 250)
    assert second.bus_id is None


# ---------------------------------------------------------------- MLU_VISIBLE_DEVICES


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", []), ("1", [1]), ("2,0", [2, 0]), (" 1 , 3 ", [1, 3]), ("0,x,1", [0]), ("1,1", [1])],
)
def test_visible_indices(value: str | None, expected: list[int] | None) -> None:
    assert visible_indices(value) == expected


# ---------------------------------------------------------------- the sampler runs a real executable


def test_sampler_runs_cnmon_found_on_path(fake_cnmon) -> None:
    bindir = fake_cnmon(FIXTURES / "v5.10.13_2x_mlu370-x8.txt")
    sampler = CnmonSampler(env={"PATH": str(bindir)})
    assert sampler.executable == str(bindir / "cnmon")
    cards = sampler.sample()
    assert [(c.index, c.temp_c) for c in cards] == [(0, 32), (1, 39)]
    assert [c.index for c in sampler.sample([1])] == [1]
    sampler.close()


def test_sampler_maps_mlu_visible_devices_to_physical_cards(fake_cnmon) -> None:
    bindir = fake_cnmon(FIXTURES / "v5.10.22_2x_mlu370-x8_ecc.txt")
    sampler = CnmonSampler(env={"PATH": str(bindir), "MLU_VISIBLE_DEVICES": "1"})
    (card,) = sampler.sample_visible()
    assert (card.index, card.bus_id) == (1, "0000:16:00.0")  # logical card 0 is physical card 1
    assert [c.index for c in sampler.sample_visible("1,0")] == [1, 0]
    assert sampler.sample_visible("") == []


def test_cnmon_from_argument_and_environment_variable(tmp_path: Path, fake_cnmon) -> None:
    bindir = fake_cnmon(FIXTURES / "v1.16.0_mlu220-m2.txt")
    elsewhere = str(bindir / "cnmon")
    assert CnmonSampler(elsewhere, env={"PATH": ""}).sample()[0].name == "MLU220-M2"
    assert CnmonSampler(env={"PATH": "", "RN50TUI_CNMON": elsewhere}).sample()[0].temp_c == 51
    # The argument wins over the environment variable.
    assert find_cnmon(elsewhere, {"RN50TUI_CNMON": "/nowhere/cnmon"}) == elsewhere
    # A bare name is looked up on the PATH the sampler was given.
    assert find_cnmon(env={"PATH": str(bindir), "RN50TUI_CNMON": "cnmon"}) == elsewhere


def test_missing_cnmon_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(TelemetryUnavailable, match=r"^cnmon not on PATH$"):
        CnmonSampler(env={"PATH": str(tmp_path)})
    with pytest.raises(TelemetryUnavailable, match=r"cnmon not found at /nowhere/cnmon \(RN50TUI_CNMON\)"):
        CnmonSampler(env={"PATH": "", "RN50TUI_CNMON": "/nowhere/cnmon"})
    with pytest.raises(TelemetryUnavailable, match=r"\(--cnmon\)"):
        CnmonSampler(str(tmp_path / "cnmon"), env={})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_hanging_cnmon_times_out_and_its_children_are_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    write_script(tmp_path / "bin", f"sleep 60 & echo $! > '{pidfile}'; wait")
    sampler = CnmonSampler(env={"PATH": str(tmp_path / "bin")}, timeout=0.5)
    with pytest.raises(TelemetryUnavailable, match=r"cnmon timed out after 0.5 s"):
        sampler.sample()
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:  # poll: the kill is asynchronous
        time.sleep(0.05)
    assert not _alive(child), "the hung cnmon's child outlived the timeout"


def test_failing_cnmon_reports_status_and_first_error_line(tmp_path: Path) -> None:
    script = write_script(tmp_path, "echo 'Error: no MLU device found' >&2; exit 3")
    with pytest.raises(TelemetryUnavailable, match=r"cnmon exited with status 3: Error: no MLU device found"):
        run_cnmon(str(script))


def test_cnmon_that_cannot_start(tmp_path: Path) -> None:
    broken = tmp_path / "cnmon"
    broken.write_text("not a program")
    broken.chmod(0o755)
    with pytest.raises(TelemetryUnavailable, match=r"cnmon could not start"):
        run_cnmon(str(broken))
