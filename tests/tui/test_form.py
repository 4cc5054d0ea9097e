"""The new-job form: checked as you type, an invalid form refused with its message, nothing queued."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button, Input, Select, Static

from engine.config import parse_args
from rn50tui.app.jobform import FormValues, check, defaults, to_request
from rn50tui.app.screens.jobs import JobsScreen
from rn50tui.app.screens.new_job import NewJobScreen
from rn50tui.jobs.presets import PRESETS

from .conftest import CAPACITY, SIZE, make_app, wait_for


def error_text(screen: NewJobScreen) -> str:
    return str(screen.query_one("#form-error", Static).render())


async def open_form(pilot, app) -> NewJobScreen:
    await wait_for(pilot, lambda: app.services.client is not None, what="the store to open")
    await pilot.press("n")
    return await wait_for(pilot, lambda: isinstance(app.screen, NewJobScreen) and app.screen, what="the form")


async def test_missing_dataset_is_refused_with_its_message(db_path, store, tmp_path):
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, app)
        form.query_one("#preset", Select).value = "ngc-fp32-90e"
        await wait_for(
            pilot, lambda: "needs a dataset directory" in error_text(form), what="the dataset message"
        )
        assert form.query_one("#data").has_class("-invalid")
        missing = tmp_path / "no-such-imagenet"
        form.query_one("#data", Input).value = str(missing)
        await wait_for(pilot, lambda: f"dataset directory {missing} does not exist" in error_text(form))
        assert form.query_one("#submit", Button).disabled
        await pilot.press("ctrl+s")  # submitting anyway: the job manager refuses with the same words
        await wait_for(pilot, lambda: "does not exist" in error_text(form) and not form.submitting)
        assert isinstance(app.screen, NewJobScreen)
    assert store.list_jobs() == []


async def test_too_many_cards_is_refused_as_you_type(db_path, store):
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, app)
        await wait_for(pilot, lambda: form.verdict is not None and form.verdict.ok, what="demo to be valid")
        cards = form.query_one("#cards", Input)
        cards.focus()
        await pilot.press("backspace", "6", "4")  # typed, as a user would
        await wait_for(pilot, lambda: "wants 64 cpu card(s)" in error_text(form), what="the cards message")
        assert cards.has_class("-invalid")
        assert form.query_one("#submit", Button).disabled
        await pilot.press("backspace", "backspace", "1")
        await wait_for(pilot, lambda: form.verdict is not None and form.verdict.ok, what="valid again")
        assert error_text(form) == ""
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, JobsScreen))
    assert store.list_jobs() == []


def form_fields(values: FormValues) -> tuple[str, ...]:
    """What a preset fills in: cards, precision, batch size, epochs, lr."""
    return (values.cards, values.precision, values.batch_size, values.epochs, values.lr)


def test_choosing_a_preset_fills_its_defaults():
    amp = defaults("ngc-amp-90e")
    assert form_fields(amp) == ("4", "amp", "128", "90", "2.048")
    demo = defaults("demo")
    assert (demo.device, demo.precision, demo.epochs) == ("cpu", "fp32", "3")


def test_fields_become_engine_flags():
    values = FormValues(preset="demo", name="tiny", cards="1", device="cpu", precision="amp", batch_size="8",
                        epochs="1", lr=defaults("demo").lr, extra="--image-size 32 --synthetic-size 64 --warmup 0")  # fmt: skip
    verdict = check(values, CAPACITY)
    assert verdict.ok, verdict.errors
    flags = verdict.request.engine_flags
    assert flags[:4] == ("-b", "8", "--epochs", "1") and "--lr" not in flags  # lr is the preset's own
    assert "--amp" in flags and flags[-6:] == (
        "--image-size",
        "32",
        "--synthetic-size",
        "64",
        "--warmup",
        "0",
    )


def test_fp32_on_an_amp_preset_drops_amp(tmp_path: Path):
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    values = FormValues(**{**defaults("ngc-amp-90e").__dict__, "precision": "fp32", "cards": "1", "device": "cpu",
                           "data": str(tmp_path)})  # fmt: skip
    verdict = check(values, CAPACITY)
    assert verdict.ok, verdict.errors
    assert verdict.request.preset == "ngc-amp-90e" and verdict.request.engine_flags == ("--no-amp",)
    flags = [*PRESETS["ngc-amp-90e"].flags, *verdict.request.engine_flags]
    assert not parse_args(["--data-backend", "synthetic", *flags]).amp  # what the engine will run


def test_fewer_epochs_than_the_warmup_shorten_the_warmup():
    values = FormValues(**{**defaults("demo").__dict__, "epochs": "1"})
    verdict = check(values, CAPACITY)
    assert verdict.ok, verdict.errors
    flags = [*PRESETS["demo"].flags, *verdict.request.engine_flags]
    cfg = parse_args(flags)
    assert (cfg.epochs, cfg.warmup) == (1, 0)


def test_field_errors_name_their_field():
    bad = FormValues(preset="demo", epochs="two", lr="-1", extra="--image-size '32")
    errors = check(bad, CAPACITY).errors
    assert set(errors) == {"epochs", "lr", "extra"}
    flags = check(FormValues(preset="demo", extra="--no-such-flag"), CAPACITY)
    assert "engine flags refused" in flags.errors["extra"]


def test_the_250_epoch_preset_fills_the_form_and_fits_four_cards(tmp_path):
    long = defaults("ngc-amp-250e")
    assert form_fields(long) == ("8", "amp", "256", "250", "2.048")
    for split in ("train", "val"):
        (tmp_path / "imagenet" / split).mkdir(parents=True)
    values = FormValues(
        **{**long.__dict__, "data": str(tmp_path / "imagenet"), "cards": "4", "device": "mlu"}
    )
    verdict = check(values, {"mlu": 4, "cuda": 0, "cpu": 1}, tmp_path)
    assert verdict.ok, verdict.errors
    assert "--mixup" in PRESETS["ngc-amp-250e"].flags


async def test_the_form_offers_the_slurm_executor_and_says_when_there_is_no_slurm(
    db_path, store, monkeypatch
):
    monkeypatch.setenv("PATH", "/nonexistent")  # no sbatch
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, app)
        assert not form.query_one("#nodes").parent.display  # Slurm fields only for a Slurm job
        form.query_one("#executor", Select).value = "slurm"
        await wait_for(pilot, lambda: form.query_one("#nodes").parent.display, what="the Slurm fields")
        await wait_for(pilot, lambda: "needs Slurm's sbatch" in error_text(form), what="the no-Slurm message")
        assert (
            form.query_one("#executor").has_class("-invalid") and form.query_one("#submit", Button).disabled
        )
    assert store.list_jobs() == []


def test_the_slurm_fields_become_the_requests_executor_options():
    values = FormValues(
        executor="slurm",
        options={"nodes": "2", "partition": "mlu", "time": "24:00:00", "auto_resume": "3"},
        cards="8",
    )
    request = to_request(values, PRESETS["demo"], [])
    assert (request.executor, request.nodes, request.cards) == ("slurm", 2, 8)
    assert request.executor_options == {"nodes": 2, "partition": "mlu", "time": "24:00:00", "auto_resume": 3}


def test_a_refusal_marks_the_field_it_names_not_a_word_in_its_message():
    # "this host allows no CPU jobs (… --host-cards …)" is about the device, though its words say "cards"
    verdict = check(FormValues(preset="demo", device="cpu"), {"mlu": 0, "cuda": 0, "cpu": 0})
    assert list(verdict.errors) == ["device"] and "allows no CPU jobs" in verdict.errors["device"]


async def test_the_form_sets_the_jobs_notify_hook_and_what_a_stall_does(db_path, store, cleanup_jobs):
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, app)
        form.query_one("#on_stall", Select).value = "cancel"
        hook = form.query_one("#notify_cmd", Input)
        hook.value = "echo 'job done"  # an unclosed quote
        await wait_for(pilot, lambda: "notify command" in error_text(form), what="the hook's message")
        assert hook.has_class("-invalid") and form.query_one("#submit", Button).disabled
        hook.value = "echo 'job done; rm -rf /'"  # one argument, never a shell line
        await wait_for(pilot, lambda: form.verdict is not None and form.verdict.ok, what="valid again")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, JobsScreen), what="the form to close")
    (job,) = store.list_jobs()
    assert job.notify_cmd == ["echo", "job done; rm -rf /"] and job.on_stall == "cancel"


async def test_the_form_buttons_are_reachable_at_80x24_and_160x45(db_path, store):
    for size in ((80, 24), (160, 45)):
        app = make_app(db_path)
        async with app.run_test(size=size) as pilot:
            form = await open_form(pilot, app)
            await pilot.pause()
            for button_id in ("#submit", "#cancel"):
                region = form.query_one(button_id, Button).region
                assert region.area > 0 and form.region.contains_region(region), (size, button_id, region)


async def test_a_batch_size_that_is_not_a_number_is_refused_as_typed_and_never_submitted(db_path, store):
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, app)
        await wait_for(pilot, lambda: form.verdict is not None and form.verdict.ok, what="demo to be valid")
        batch = form.query_one("#batch_size", Input)
        batch.focus()
        await pilot.press("ctrl+u", "a", "b", "c")
        await pilot.pause()
        shown = batch.value
        await wait_for(pilot, lambda: "batch size must be an integer" in error_text(form), what="the message")
        await wait_for(pilot, lambda: batch.has_class("-invalid"), what=f"the field marked ({shown!r})")
        assert shown == "abc" and form.query_one("#submit", Button).disabled
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not form.submitting)
        assert isinstance(app.screen, NewJobScreen)
    assert store.list_jobs() == []


async def test_a_third_executors_option_fields_come_from_its_declaration(db_path, store, monkeypatch):
    from ..jobs.third_executor import register

    register(monkeypatch)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, app)
        assert not form.query_one("#region").parent.display and not form.query_one("#nodes").parent.display
        form.query_one("#executor", Select).value = "cloud"
        await wait_for(pilot, lambda: form.query_one("#region").parent.display, what="the cloud's fields")
        assert (
            form.query_one("#gpus", Input).placeholder == "1" and not form.query_one("#nodes").parent.display
        )
        assert not form.query().filter("#spot")  # a flag-only option has no field
        form.query_one("#gpus", Input).value = "0"
        await wait_for(pilot, lambda: form.query_one("#gpus").has_class("-invalid"), what="the refusal")
        assert "--gpus must be at least 1" in error_text(form)
