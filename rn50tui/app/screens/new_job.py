"""The new-job form (modal): preset, dataset, cards, precision, batch, epochs, lr, where it runs, what to do
when it stalls, its notify hook, extra engine flags.

Checked as you type in a worker (a directory lookup is I/O): number fields take any text, so what is
typed shows and a wrong value gets its message (an input that dropped "abc" silently left the field empty,
which means the preset's value). Submitting runs the job manager's own check again and queues the job,
then the modal closes with the new job's id.
"""

from __future__ import annotations

from typing import Any, Optional, cast

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static
from textual.worker import Worker, WorkerState, get_current_worker

from rn50tui.app.jobform import DEVICES, FormValues, Verdict, check, defaults, form_options
from rn50tui.app.services import Services
from rn50tui.jobs.core.errors import JobsError
from rn50tui.jobs.core.options import Option
from rn50tui.jobs.executors import DEFAULT_EXECUTOR, EXECUTORS
from rn50tui.jobs.presets import PRESETS

INPUTS = (
    "name",
    "data",
    "cards",
    "batch_size",
    "epochs",
    "lr",
    "extra",
    "notify_cmd",
    "after",
    "priority",
    "sweep",
    "sweep_parallel",
)
SELECTS = ("preset", "device", "precision", "executor", "on_stall")
FIELDS = INPUTS + SELECTS


def option_fields() -> dict[str, Option]:
    """Every executor's option fields, from their declarations (an option two executors share is one field)."""
    return {o.name: o for name in EXECUTORS for o in form_options(name)}


def _field(label: str, widget: Any) -> Vertical:
    return Vertical(Label(label, classes="field-label"), widget, classes="field")


def _option_field(option: Option) -> Vertical:
    """An executor option's input: any text, refused as typed by its declaration (Option.parse)."""
    return _field(option.title, Input(placeholder=option.placeholder, id=option.name, tooltip=option.help))


class NewJobScreen(ModalScreen[Optional[int]]):
    """Returns the new job's id, or None when the user backs out."""

    BINDINGS = [
        Binding("escape", "close", "Cancel"),
        Binding("ctrl+s", "submit", "Submit"),
    ]

    verdict: reactive[Optional[Verdict]] = reactive(None, init=False, always_update=True)
    """The latest check of the fields; None until the first check finishes. Always re-applied: each
    keystroke resets an Input's -invalid class, even when the verdict is the one before."""
    submitting: reactive[bool] = reactive(False, init=False)
    """True while the job manager queues the job (the supervisor handshake takes a moment)."""

    def __init__(self, services: Services, preset: str = "demo", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.services = services
        self.start = defaults(preset)

    def compose(self) -> ComposeResult:
        v = self.start
        presets = [(f"{p.name} — {p.description}", p.name) for p in PRESETS.values()]
        with Vertical(classes="dialog form-dialog"):
            yield Label("New job", classes="dialog-title")
            with VerticalScroll():
                yield _field("preset", Select(presets, value=v.preset, allow_blank=False, id="preset"))
                yield _field("name", Input(placeholder="default: the preset's name", id="name"))
                yield _field("dataset directory", Input(placeholder="DIR with train/ and val/", id="data"))
                with Horizontal(classes="row"):
                    yield _field("cards", Input(v.cards, id="cards"))
                    yield _field(
                        "device",
                        Select([(d, d) for d in DEVICES], value=v.device, allow_blank=False, id="device"),
                    )
                    yield _field("precision", Select([("amp", "amp"), ("fp32", "fp32")], value=v.precision,
                                                     allow_blank=False, id="precision"))  # fmt: skip
                with Horizontal(classes="row"):
                    yield _field("batch size", Input(v.batch_size, id="batch_size"))
                    yield _field("epochs", Input(v.epochs, id="epochs"))
                    yield _field("learning rate", Input(v.lr, id="lr"))
                options = list(option_fields().values())
                with Horizontal(classes="row"):
                    yield _field("run on", Select([(e.title, n) for n, e in EXECUTORS.items()],
                                                  value=DEFAULT_EXECUTOR, allow_blank=False, id="executor"))  # fmt: skip
                    yield from map(_option_field, options[:2])
                for at in range(2, len(options), 3):
                    with Horizontal(classes="row"):
                        yield from map(_option_field, options[at : at + 3])
                with Horizontal(classes="row"):
                    yield _field("on stall", Select([("notify", "notify"), ("cancel with a checkpoint", "cancel")],
                                                    value="notify", allow_blank=False, id="on_stall"))  # fmt: skip
                    yield _field(
                        "notify command", Input(placeholder="config file's [notify] cmd", id="notify_cmd")
                    )
                yield _field(
                    "extra engine flags",
                    Input(placeholder="e.g. --image-size 32 --synthetic-size 64", id="extra"),
                )
                with Horizontal(classes="row"):
                    yield _field("after jobs", Input(placeholder="e.g. 12,13", id="after"))
                    yield _field("priority", Input(placeholder="0 (higher first)", id="priority"))
                with Horizontal(classes="row"):
                    yield _field(
                        "sweep", Input(placeholder="e.g. lr=1.024,2.048 wd=3.05e-5,1e-4", id="sweep")
                    )
                    yield _field("sweep parallel", Input(placeholder="no limit", id="sweep_parallel"))
            yield Static("", id="form-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Submit (ctrl+s)", variant="primary", id="submit")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#preset", Select).focus()
        self._show_option_fields(DEFAULT_EXECUTOR)
        self.revalidate()

    def _show_option_fields(self, executor: str) -> None:
        """An executor's option fields only for its jobs (they mean nothing to another)."""
        mine = {o.name for o in form_options(executor)}
        for f in option_fields():
            self.query_one(f"#{f}").parent.display = f in mine

    def values(self) -> FormValues:
        """The fields as typed."""
        got: dict[str, Any] = {f: self.query_one(f"#{f}", Input).value for f in INPUTS}
        got.update({f: str(self.query_one(f"#{f}", Select).value) for f in SELECTS})
        got["options"] = {
            o.name: self.query_one(f"#{o.name}", Input).value for o in form_options(got["executor"])
        }
        return FormValues(**got)

    # -- checking as you type

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.revalidate()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.select.id == "preset" and isinstance(event.value, str):
            self._fill(defaults(event.value))
        if event.select.id == "executor":
            self._show_option_fields(str(event.value))
        self.revalidate()

    def _fill(self, d: FormValues) -> None:
        """A new preset brings its own cards, device, precision, batch, epochs and lr."""
        for f in ("cards", "batch_size", "epochs", "lr"):
            self.query_one(f"#{f}", Input).value = getattr(d, f)
        self.query_one("#device", Select).value = d.device
        self.query_one("#precision", Select).value = d.precision

    def revalidate(self) -> None:
        self._check(self.values())

    @work(thread=True, exclusive=True, group="form-check", exit_on_error=False)
    def _check(self, values: FormValues) -> None:
        verdict = check(values, self.services.capacity)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, values, verdict)

    def _show(self, values: FormValues, verdict: Verdict) -> None:
        if values == self.values():  # an answer about what the fields hold now
            self.verdict = verdict

    def watch_verdict(self, verdict: Optional[Verdict]) -> None:
        errors = verdict.errors if verdict else {}
        for f in (*FIELDS, *option_fields()):
            self.query_one(f"#{f}").set_class(f in errors, "-invalid")
        self.query_one("#form-error", Static).update(verdict.message() if verdict else "")
        self.query_one("#submit", Button).disabled = self.submitting or not (verdict and verdict.ok)

    # -- submitting

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "submit":
            self.action_submit()
        else:
            self.action_close()

    def action_submit(self) -> None:
        if not self.submitting:
            self.submitting = True
            self._submit(self.values())

    def watch_submitting(self, busy: bool) -> None:
        self.query_one("#submit", Button).disabled = busy
        if busy:
            self.query_one("#form-error", Static).update("submitting…")

    @work(thread=True, exclusive=True, group="form-submit", exit_on_error=False)
    def _submit(self, values: FormValues) -> int:
        client = self.services.client
        if client is None:
            raise JobsError("the job store is still opening; try again in a moment")
        verdict = check(values, self.services.capacity)
        if not verdict.ok or verdict.request is None:
            raise JobsError(verdict.message())
        queue = verdict.queue or {"after": [], "priority": 0, "sweep": [], "parallel": None}
        common = {"notify_cmd": verdict.notify_cmd, "on_stall": verdict.on_stall, "after": queue["after"],
                  "priority": queue["priority"]}  # fmt: skip
        if queue["sweep"]:
            _, jobs = client.submit_sweep(
                verdict.request, queue["sweep"], parallel=queue["parallel"], **common
            )
            return jobs[0].id
        return client.submit(verdict.request, **common).id

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "form-submit":
            return
        if event.state is WorkerState.SUCCESS:
            self.dismiss(cast(int, event.worker.result))
        elif event.state is WorkerState.ERROR:
            self.submitting = False
            error = event.worker.error
            self.verdict = Verdict(
                None, {"form": str(error) if isinstance(error, JobsError) else repr(error)}
            )

    def action_close(self) -> None:
        self.dismiss(None)
