"""What every screen shares: the services it was given, and one way to receive data — a poll timer that
runs only while the screen is on top, one poll worker at a time, its results posted back to the screen
as a message, and worker failures sent up to the app."""

from __future__ import annotations

from typing import Any, ClassVar, Optional

from textual.screen import Screen
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from rn50tui.app.data import AppJobManager
from rn50tui.app.messages import StoreChanged, WorkerFailed
from rn50tui.app.services import Services


class PollingScreen(Screen):
    """Calls `start_poll()` every POLL_S seconds while on top, never with a poll still running.

    Textual calls these handlers after a subclass's own (`on_mount`, …): a subclass must not call them
    through super() as well, or it would start a second timer that never pauses.
    """

    POLL_S: ClassVar[float] = 0.5

    def __init__(self, services: Services, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.services = services
        self._timer: Optional[Timer] = None
        self._worker: Optional[Worker] = None

    @property
    def client(self) -> AppJobManager:
        """The store's client (polls only start once it is open)."""
        client = self.services.client
        assert client is not None, "poll() starts no worker before the store is open"
        return client

    def on_mount(self) -> None:
        self._timer = self.set_interval(self.services.scaled(self.POLL_S), self.poll)
        self.poll()

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()  # a hidden screen reads nothing

    def on_screen_resume(self) -> None:
        if self._timer is not None:
            self._timer.resume()
        self.poll()

    def on_store_changed(self, _msg: StoreChanged) -> None:
        self.poll()

    def poll(self) -> None:
        """Start a poll unless one is still reading (a slow store must not pile threads up)."""
        if self.services.client is None or (self._worker is not None and self._worker.is_running):
            return
        self._worker = self.start_poll()

    def start_poll(self) -> Optional[Worker]:
        """Start this screen's poll worker; return it."""
        return None

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.post_message(WorkerFailed(event.worker))
