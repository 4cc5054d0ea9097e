"""A third executor for tests: options only, nothing runs (what a new kind would declare)."""

from __future__ import annotations

from typing import Optional

import pytest

from rn50tui.jobs import executors
from rn50tui.jobs.core.options import Option, at_least, matches
from rn50tui.jobs.executors import Executor


class CloudExecutor(Executor):
    name = "cloud"
    title = "a cloud"
    host_cards = False
    options = (
        Option("region", str, "the cloud region", check=matches(r"^[a-z]+-[0-9]$", "is not a region (eu-1)")),
        Option("gpus", int, "GPUs per machine", default=1, check=at_least(1)),
        Option("spot", str, "bid for spot machines", in_form=False),
    )
    options_note = "defaults from the cloud's console"

    def start(self, job, store) -> None:  # noqa: ANN001 - never called: these tests only submit
        raise AssertionError("a test executor starts nothing")

    def request_stop(self, job, store) -> None:  # noqa: ANN001
        return None

    def lost(self, job, now) -> Optional[str]:  # noqa: ANN001
        return None

    def processes_alive(self, job) -> bool:  # noqa: ANN001
        return False

    def stop_orphans(self, job, *, force: bool = False) -> bool:  # noqa: ANN001
        return False


def register(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `cloud` a known executor for this test only."""
    monkeypatch.setitem(executors.EXECUTORS, CloudExecutor.name, CloudExecutor)
    monkeypatch.delitem(executors._instances, CloudExecutor.name, raising=False)
