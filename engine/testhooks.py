"""Behaviour only tests ask for, read once from the environment at the entry point and injected.

The job manager's tests start real engine processes, so the hooks travel as environment variables to
`python -m engine.train`; its `main` reads them (`TestHooks.from_env`) and hands them to the trainer and
the loaders. Nothing in the training loop reads the environment. No torch import here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional

STOP_AFTER_ITERS_VAR = "RN50TUI_STOP_AFTER_ITERS"
HANG_AFTER_ITERS_VAR = "RN50TUI_TEST_HANG_AFTER_ITERS"
SLOW_LOADER_VAR = "RN50TUI_SLOW_LOADER_S"


@dataclass(frozen=True)
class TestHooks:
    """Test-only behaviour of a run; the defaults (all off) are a real run's."""

    __test__ = False  # a library class, not a pytest test class

    stop_after_iters: int = 0  # the engine sends itself SIGTERM after N iterations: a deterministic stop
    # after N iterations the loop makes no more progress, as a stuck loader would, until a stop is
    # requested; then it checkpoints as usual (the job manager's stall tests)
    hang_after_iters: int = 0
    slow_loader_s: float = 0.0  # every batch fetch of an image dataset sleeps this long (input-bound tests)

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> TestHooks:
        """The hooks the environment (default os.environ) asks for; unset or empty is off."""
        env = os.environ if env is None else env
        return cls(
            stop_after_iters=int(env.get(STOP_AFTER_ITERS_VAR) or 0),
            hang_after_iters=int(env.get(HANG_AFTER_ITERS_VAR) or 0),
            slow_loader_s=float(env.get(SLOW_LOADER_VAR) or 0),
        )
