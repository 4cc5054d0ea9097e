"""Small modal screens: confirm a request, show an error, show the keys (help)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class ConfirmScreen(ModalScreen[bool]):
    """Ask before a request that stops or removes something: y confirms, n or Esc does not."""

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class ErrorScreen(ModalScreen[None]):
    """What went wrong in a worker, in full; Esc or Enter closes it."""

    BINDINGS = [Binding("escape,enter,q", "app.pop_screen", "Close")]

    def __init__(self, title: str, detail: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.title_text, self.detail = title, detail

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog error-dialog"):
            yield Label(self.title_text, classes="dialog-title")
            with VerticalScroll():
                yield Static(self.detail, markup=False)
            yield Label("Esc closes", classes="dialog-hint")


class HelpScreen(ModalScreen[None]):
    """The keys of the screen below and of the app, read from their BINDINGS (never out of date)."""

    BINDINGS = [Binding("escape,question_mark,q", "app.pop_screen", "Close")]

    def __init__(self, screen_name: str, keys: Iterable[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.screen_name, self.keys = screen_name, list(keys)

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, what in self.keys:
            table.add_row(key, what)
        with Vertical(classes="dialog help-dialog"):
            yield Label(f"rn50tui — keys of {self.screen_name}", classes="dialog-title")
            with VerticalScroll():
                yield Static(table, id="help-keys")
                yield Static(NOTES, classes="dialog-hint")
            yield Label("Esc or ? closes", classes="dialog-hint")


NOTES = (
    "\nQuitting never stops a job: supervisors run detached, and reopening shows everything as it is."
    "\nSeveral rn50tui windows (or browser tabs of `rn50tui serve`) can watch the same job store at once."
    "\nThe command palette (ctrl+p) offers the same actions by name: “resume job 12”, “open job 3”."
)
