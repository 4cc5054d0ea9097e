"""The stop request of a run: a signal sets it; the training loop checkpoints and exits at a step."""

from __future__ import annotations

import signal
from typing import Any, Optional


class StopFlag:
    """Set by SIGTERM, Ctrl-C or a hang-up; the loop finishes its optimizer step, checkpoints and exits."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None

    def install(self) -> None:
        # SIGHUP too: a dropped SSH session hangs up a run started in its shell (torchrun turns it into SIGTERM)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C means now
        self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""
