"""Cards busy outside rn50tui: recorded cnmon tables (and the constructed busy one), the NVML stand-in,
the scheduler that holds such a card back, and the reason a queued job shows in the CLI."""

from __future__ import annotations

import json
import sys

import pytest

from engine.telemetry.cnmon import parse_table
from engine.telemetry.nvml import NvmlSampler
from rn50tui import cli
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.policy.busy import BusyPolicy, busy_cards, outside_use
from rn50tui.jobs.scheduler import claim
from tests.telemetry.conftest import FIXTURES, make_fake_pynvml, two_gpus, write_script
from tests.telemetry.test_cnmon import BUSY_TABLE

POLICY = BusyPolicy()


def recorded(name: str):
    return parse_table((FIXTURES / name).read_text())


def test_recorded_idle_tables_are_not_busy_and_the_thresholds_apply():
    assert outside_use(recorded("v5.10.13_2x_mlu370-x8.txt"), set(), POLICY) == {}
    assert outside_use(recorded("v5.10.22_2x_mlu370-x8_ecc.txt"), set(), POLICY) == {}
    edge = recorded("v1.16.0_mlu220-m2.txt")  # 967 MiB used by the driver, 0 %, no process
    assert outside_use(edge, set(), POLICY) == {}
    assert outside_use(edge, set(), BusyPolicy(mem_mib=512)) == {
        ("mlu", 0): "MLU 0 in use outside rn50tui: 0.9 GiB"
    }


def test_processes_memory_and_load_on_an_unclaimed_card_make_it_busy():
    cards = parse_table(
        BUSY_TABLE
    )  # constructed (see tests/telemetry/test_cnmon.py): no busy sample is public
    assert outside_use(cards, set(), POLICY) == {
        ("mlu", 0): "MLU 0 in use outside rn50tui: 87% busy, 17.8 GiB, pids 41234, 41301",
        ("mlu", 1): "MLU 1 in use outside rn50tui: 100% busy, 17.8 GiB, pid 41235",
    }
    assert list(outside_use(cards, {("mlu", 0)}, POLICY)) == [("mlu", 1)]  # a claimed card is rn50tui's


def test_the_nvml_stand_in():
    cards = NvmlSampler(make_fake_pynvml(two_gpus())).sample()
    assert outside_use(cards, set(), POLICY) == {
        ("cuda", 0): "CUDA 0 in use outside rn50tui: 93% busy, 60.0 GiB, pids 4242, 4243"
    }
    assert busy_cards(["cuda"], set(), BusyPolicy(enabled=False), sample=lambda kind: cards) == {}


def test_the_scheduler_never_grants_a_busy_card_and_says_why_a_job_waits(store):
    busy = outside_use(NvmlSampler(make_fake_pynvml(two_gpus())).sample(), set(), POLICY)
    ws = str(store.path.parent / "runs" / "{id}")
    two = store.insert_job(name="two", kind="train", argv=[], device="cuda", cards_requested=2, workspace=ws)
    assert claim(store, {"cuda": 2}, busy) == []
    assert store.get_job(two.id).wait_reason == busy[("cuda", 0)]
    store.update_job(two.id, cards_requested=1)
    (granted,) = claim(store, {"cuda": 2}, busy)
    assert granted.cards_granted == [1] and granted.wait_reason is None  # card 1 is idle


@pytest.fixture
def mlu_host(tmp_path, monkeypatch):
    """One MLU card whose `cnmon` prints the recorded MLU220 table, and a config with a 512 MiB threshold."""
    bindir = write_script(tmp_path / "bin", f"cat '{FIXTURES / 'v1.16.0_mlu220-m2.txt'}'").parent
    monkeypatch.setenv("PATH", f"{bindir}:{__import__('os').environ['PATH']}")
    (tmp_path / "config.toml").write_text("[notify]\nbell = true\n[busy]\nmem_mib = 512\n")
    monkeypatch.setenv("RN50TUI_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("RN50TUI_CARDS", "mlu=1,cuda=0,cpu=1")
    monkeypatch.setenv("RN50TUI_BUSY_CHECK", "1")  # --no-busy-check sets it to 0: undone after the test
    monkeypatch.delenv("RN50TUI_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    return tmp_path


def test_a_queued_job_shows_why_it_waits_in_the_cli(mlu_host, capsys):
    code = cli.main(["submit", "--preset", "bench", "--device", "mlu", "--json"])
    job = json.loads(capsys.readouterr().out)
    assert code == 0 and job["status"] == "queued"
    assert job["wait_reason"] == "MLU 0 in use outside rn50tui: 0.9 GiB"
    cli.main(["jobs", "list"])
    assert f"job {job['id']} waits: MLU 0 in use outside rn50tui: 0.9 GiB" in capsys.readouterr().out


def test_the_check_is_off_with_a_flag(mlu_host, monkeypatch):
    from rn50tui.jobs import scheduler
    from rn50tui.jobs.executors import LocalExecutor

    started = []

    class Recording(LocalExecutor):  # the local executor, but no engine is started
        def start(self, job, store):
            started.append(job.id)

    monkeypatch.setattr(scheduler.schedule, "__defaults__", (None, lambda name: Recording()))
    assert cli.main(["--no-busy-check", "submit", "--preset", "bench", "--device", "mlu"]) == 0
    assert len(started) == 1
    from rn50tui.jobs.core.store import JobStore

    with JobStore(mlu_host / "jobs.db") as store:
        (job,) = store.list_jobs()
        assert job.status is Status.STARTING and job.cards_granted == [0]
