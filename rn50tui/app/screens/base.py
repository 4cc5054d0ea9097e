"""What every store-reading screen shares: a poll timer that runs only while the screen is on top,
one poll worker at a time, and worker failures handed to the app's one error handler."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Optional, cast

from textual.screen import Screen
from textual.timer import Timer
from textual.worker import Worker, WorkerState

if TYPE_CHECKING:
    from rn50tui.app.app import Rn50App


class PollingScreen(Screen):
    """Calls `start_poll()` every POLL_S seconds while on top, never with a poll still running."""

    POLL_S: ClassVar[float] = 0.5

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._timer: Optional[Timer] = None
        self._worker: Optional[Worker] = None

    @property
    def rn50(self) -> Rn50App:
        return cast("Rn50App", self.app)

    def on_mount(self) -> None:
        self._timer = self.set_interval(self.rn50.scaled(self.POLL_S), self.poll)
        self.poll()

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()  # a hidden screen reads nothing

    def on_screen_resume(self) -> None:
        if self._timer is not None:
            self._timer.resume()
        self.poll()

    def poll(self) -> None:
        """Start a poll unless one is still reading (a slow store must not pile threads up)."""
        if self.rn50.client is None or (self._worker is not None and self._worker.is_running):
            return
        self._worker = self.start_poll()

    def start_poll(self) -> Optional[Worker]:
        """Start this screen's poll worker; return it."""
        return None

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.rn50.worker_failed(event.worker, self)
