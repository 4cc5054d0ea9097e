"""`python -m rn50tui.jobs.local.supervisor JOB_ID --db PATH`: run one attempt of one job, detached.

The scheduler starts it (with --detach: it forks itself away and the starter returns once its pid is in
the store). It starts the engine in a new session with the granted cards, follows raport.json into the
store in batches with a heartbeat and card samples, forwards a cancel (SIGTERM to the engine, a grace
period, then SIGKILL to every process of the attempt), makes sure no process of the attempt is left,
records how the attempt ended, frees the cards and runs the scheduler so the next queued job starts.
No torch here: the engine is only ever a subprocess.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sqlite3
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from engine.device_kind import DeviceKind
from rn50tui.jobs import kinds, lifecycle
from rn50tui.jobs.core.errors import JobsError, LaunchError
from rn50tui.jobs.core.schema import full_disk_hint
from rn50tui.jobs.core.states import Status
from rn50tui.jobs.core.store import THIN_POINTS, DeviceSample, Job, JobStore
from rn50tui.jobs.lifecycle import AttemptLog, AttemptReport
from rn50tui.jobs.local import launcher, procs
from rn50tui.jobs.policy.verdict import Evidence, verdict
from rn50tui.jobs.scheduler import schedule

POLL_S = 1.0
SAMPLE_INTERVAL_S = 2.0
SAMPLE_RETENTION = 50_000  # samples kept per job (about 28 h of one card at 2 s)
GRACE_S = 60.0
STORE_RETRY_MAX_S = 5.0  # the longest wait between tries of a write the store refused
STORE_RETRY_LOG_S = 60.0  # how often a refused write is logged while it is retried


class CardSampler:
    """Samples the job's cards through engine.telemetry every `interval` seconds (nothing if absent)."""

    def __init__(self, job: Job, interval: float, log: Any) -> None:
        self.interval, self.next_at = interval, 0.0
        self.indices = list(job.cards_granted or []) if DeviceKind(job.device).has_cards else [0]
        self.sampler = self._open(job.device, log) if interval > 0 else None

    @staticmethod
    def _open(kind: str, log: Any) -> Any:
        try:
            from engine.telemetry import open_sampler
        except ImportError as exc:  # telemetry is optional for the job manager
            log(f"no device samples: {exc}")
            return None
        try:
            return open_sampler(kind)
        except Exception as exc:  # noqa: BLE001 - TelemetryUnavailable or a broken backend: run without
            log(f"no device samples for {kind}: {exc}")
            return None

    def maybe_sample(self, now: float) -> list[DeviceSample]:
        if self.sampler is None or now < self.next_at:
            return []
        self.next_at = now + self.interval
        try:
            cards = self.sampler.sample(self.indices)
        except Exception:  # noqa: BLE001 - one failed sample is skipped, the job goes on
            return []
        return [DeviceSample.from_stats(card, now) for card in cards]

    def close(self) -> None:
        if self.sampler is not None:
            self.sampler.close()


class Supervisor:
    """One attempt of one job, from `starting` to a final status."""

    def __init__(self, job_id: int, db: Path, poll: float = POLL_S, sample_interval: float = SAMPLE_INTERVAL_S,
                 retention: int = SAMPLE_RETENTION, grace: float = GRACE_S) -> None:  # fmt: skip
        self.job_id, self.poll, self.grace = job_id, poll, grace
        self.sample_interval, self.retention = sample_interval, retention
        self.store = JobStore(db, create=False)
        self.signalled: Optional[int] = None  # a signal the supervisor itself received
        self.term_sent_at: Optional[float] = None
        self.killed = False
        self.log = AttemptLog("supervisor", sys.stderr)
        self.stall_cancelled: Optional[float] = None  # seconds without progress when --on-stall cancel acted
        self.thin_points = int(os.environ.get("RN50TUI_THIN_POINTS", THIN_POINTS))

    # -- start-up

    def register(self) -> Job:
        """Record this process as the job's supervisor (pid and start time); refuse a job not `starting`."""
        with self.store.transaction():
            job = self.store.get_job(self.job_id)
            if job.status is not Status.STARTING or job.supervisor_pid is not None:
                raise JobsError(f"job {self.job_id} is {job.status}, not a starting job without a supervisor")
            pid = os.getpid()
            self.store.update_job(self.job_id, supervisor_pid=pid, supervisor_started=procs.start_time(pid),
                                  heartbeat=time.time())  # fmt: skip
        return self.store.get_job(self.job_id)

    def run(self) -> int:
        """Run the attempt to its end; the exit status is 0 unless the supervisor itself failed."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        procs.become_subreaper()
        job = self.store.get_job(self.job_id)
        try:
            if job.cancel_requested:
                self._finish(Status.CANCELLED, None, "cancelled before it started")
            else:
                self._attempt(job)
        except Exception as exc:  # the job must never stay "running" because its supervisor broke
            self._log(f"supervisor error: {exc!r}")
            self._finish_if_active(Status.FAILED, None, f"supervisor error: {exc}")
            raise
        finally:
            self._schedule_next()
            self._thin()
        return 0

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.signalled = signum

    # -- the attempt

    def _attempt(self, job: Job) -> None:
        files = job.files
        files.root.mkdir(parents=True, exist_ok=True)
        resume_from = launcher.resume_checkpoint(job)
        token = launcher.new_run_token(job)
        argv = launcher.engine_command(job, resume_from)
        try:
            kinds.ready(job)  # an export's output folder (rn50tui/jobs/kinds.py)
        except OSError as exc:
            self._finish(Status.FAILED, None, f"cannot create the folder the job writes to: {exc}")
            return
        stderr_offset = _size(files.log("stderr"))
        with open(files.log("stdout"), "ab") as out, open(files.log("stderr"), "ab") as err:
            out.write(f"[rn50tui] attempt {job.attempt} at {datetime.now().isoformat(timespec='seconds')}: "
                      f"{shlex.join(argv)}\n".encode())  # fmt: skip
            out.flush()
            started = time.time()
            try:
                proc = launcher.start_engine(argv, launcher.engine_env(job, token), files.root, out, err)
            except LaunchError as exc:
                self._finish(Status.FAILED, None, str(exc))
                return
        self.store.transition(self.job_id, Status.RUNNING, expect=[Status.STARTING], engine_pid=proc.pid,
                              engine_started=procs.start_time(proc.pid), run_token=token, resume_from=resume_from,
                              started_at=started, stderr_offset=stderr_offset, last_progress_at=started)  # fmt: skip
        self._log(f"engine pid {proc.pid}: {shlex.join(argv)}")
        report = AttemptReport(self.store, self.store.get_job(self.job_id), started - 1.0, self.log, eta=True)
        report.start_watch(started)
        sampler = CardSampler(job, self.sample_interval, self.log)
        try:
            rc = self._watch(proc, report, sampler)
        finally:
            sampler.close()
        left = procs.kill_tagged(token)  # ranks or data-loader workers that outlived the leader
        if left:
            self._log(f"processes of the job still alive after SIGKILL: {left}")
        # judged now: by the time the store takes the outcome, space may have been freed
        full = full_disk_hint(files.raport, then="then resume the job")
        # the last records: nothing else will bring them into the store once this process is gone
        self._until_stored(lambda: self._commit(report, [], final=True), "the attempt's last records")
        status, error = self._outcome(rc, report, full)
        self._finish(status, rc, error)

    def _watch(self, proc: Any, report: AttemptReport, sampler: CardSampler) -> int:
        """Follow the engine until it exits, forwarding a cancel; return its exit status."""
        rounds = 0
        while True:
            rc = proc.poll()
            self._commit(report, sampler.maybe_sample(time.time()))
            rounds += 1
            if rounds % 100 == 0:
                self.store.prune_samples(self.job_id, self.retention)
            if rc is not None:
                return rc
            self._forward_stop(proc)
            procs.reap_adopted(keep=proc.pid)
            time.sleep(self.poll)

    def _commit(self, report: AttemptReport, samples: list[DeviceSample], final: bool = False) -> None:
        """One batch into the store; a refused write costs a round, never the records (`final`: raise)."""
        now = time.time()
        batch, stalled_for = report.poll(now)
        try:
            report.commit(batch, samples, now)
        except sqlite3.OperationalError as exc:
            if final:
                raise
            self._log(f"could not write the store (busy or its disk full), will retry: {exc}")
            return
        if stalled_for is not None:
            asked = lifecycle.on_stall(self.store, self.job_id, stalled_for, self.log, report.threshold(),
                                       may_cancel=self.term_sent_at is None)  # fmt: skip
            if asked:
                self.stall_cancelled = stalled_for

    def _forward_stop(self, proc: Any) -> None:
        """SIGTERM the engine once on a cancel (or our own signal), SIGKILL everything after the grace."""
        if self.term_sent_at is None:
            if self.signalled is None and not self._cancel_requested():
                return
            self._log("stopping the engine: SIGTERM")
            # Only the leader: torchrun forwards it to the ranks; data-loader workers must not get it.
            proc.send_signal(signal.SIGTERM)
            self.term_sent_at = time.monotonic()
        elif not self.killed and time.monotonic() - self.term_sent_at > self.grace:
            self._log(f"the engine did not stop in {self.grace:.0f} s: SIGKILL")
            self.killed = True
            token = self.store.get_job(self.job_id).run_token
            if token:
                procs.kill_processes(procs.tagged_processes(token))
            _killpg(proc.pid)

    def _cancel_requested(self) -> bool:
        return self.store.cancel_requested(self.job_id)

    # -- the end

    def _outcome(self, rc: int, report: AttemptReport, full_disk: str = "") -> tuple[Status, Optional[str]]:
        """The shared verdict (rn50tui/jobs/policy/verdict.py) in the lifecycle's words (rn50tui/jobs/lifecycle.py)."""
        state, job = report.state, self.store.get_job(self.job_id)
        evidence = Evidence(rc, state.run_end, state.error, state.stopping_signal, job.checkpoint_epoch,
                            job.checkpoint_iteration, job.epochs)  # fmt: skip
        signalled = signal.Signals(self.signalled).name if self.signalled is not None else None
        status, reason = verdict(evidence, cancelled=self._cancel_requested(), killed=self.killed,
                                 supervisor_signal=signalled)  # fmt: skip
        if status is Status.FAILED:  # an engine failed on a full disk may have had no room to say why
            reason = (reason or "the engine failed") + full_disk
        return lifecycle.ending(job, status, reason, stall_cancelled=self.stall_cancelled, killed=self.killed)

    def _finish(self, status: Status, rc: Optional[int], error: Optional[str]) -> None:
        finished_at = time.time()
        self._until_stored(lambda: self._record_end(status, rc, error, finished_at), "how the job ended")
        lifecycle.announce_end(self.store, self.job_id, self.log)

    def _record_end(
        self, status: Status, rc: Optional[int], error: Optional[str], finished_at: float
    ) -> None:
        with self.store.transaction():
            lifecycle.record_end(self.store, self.job_id, status, {"exit_code": rc, "error": error,
                                                                   "finished_at": finished_at})  # fmt: skip

    def _until_stored(self, write: Any, what: str) -> None:
        """Retry a write the store refuses (a full disk, a lock held past busy_timeout) until it takes it:
        only this process knows how the attempt ended. Gives up when the store file is gone."""
        delay, said = self.poll, 0.0
        while True:
            try:
                write()
                return
            except sqlite3.OperationalError as exc:
                if not self.store.path.exists():
                    raise
                if time.monotonic() - said > STORE_RETRY_LOG_S:
                    said = time.monotonic()
                    self._log(f"cannot record {what} yet ({exc}{full_disk_hint(self.store.path)}); retrying")
            time.sleep(delay)
            delay = min(delay * 2, STORE_RETRY_MAX_S)

    def _finish_if_active(self, status: Status, rc: Optional[int], error: str) -> None:
        try:
            if self.store.get_job(self.job_id).status.active:
                self._finish(status, rc, error)
        except Exception as exc:  # noqa: BLE001 - already failing; reconcile will catch up
            self._log(f"could not record the failure: {exc!r}")

    def _thin(self) -> None:
        """The finished job's per-iteration records thinned for its charts (raport.json keeps them all):
        after the next job is scheduled, which need not wait for it."""
        try:
            removed = lifecycle.thin_finished_job(
                self.store, self.store.get_job(self.job_id), self.thin_points
            )
        except Exception as exc:  # noqa: BLE001 - `rn50tui jobs vacuum` thins it later
            self._log(f"could not thin the metric records: {exc!r}")
            return
        if removed:
            self._log(
                f"thinned {removed} per-iteration metric records for the charts (raport.json keeps all)"
            )

    def _schedule_next(self) -> None:
        try:
            schedule(self.store)
        except Exception as exc:  # noqa: BLE001 - the next client's reconcile runs the scheduler too
            self._log(f"scheduler error: {exc!r}")

    def _log(self, message: str) -> None:
        self.log(message)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


# ------------------------------------------------------------------------------------------------ entry


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rn50tui.jobs.local.supervisor", description=__doc__.splitlines()[0]
    )
    p.add_argument("job_id", type=int, help="the job to run (it must be `starting`)")
    p.add_argument("--db", required=True, help="the job store")
    p.add_argument("--detach", action="store_true", help="fork away; return once registered in the store")
    p.add_argument(
        "--poll",
        type=float,
        default=float(os.environ.get("RN50TUI_POLL_S", POLL_S)),
        help="seconds between reads of raport.json (and heartbeats)",
    )
    p.add_argument(
        "--sample-interval",
        type=float,
        default=float(os.environ.get("RN50TUI_SAMPLE_INTERVAL_S", SAMPLE_INTERVAL_S)),
        help="seconds between card samples (0: none)",
    )
    p.add_argument("--sample-retention", type=int, default=SAMPLE_RETENTION, help="card samples kept per job")
    p.add_argument(
        "--grace",
        type=float,
        default=float(os.environ.get("RN50TUI_CANCEL_GRACE_S", GRACE_S)),
        help="seconds a cancelled engine has to checkpoint before SIGKILL",
    )
    return p  # fmt: skip


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.detach and _fork_away():
        return 0  # the starter's process: the detached child carries on
    try:
        sup = Supervisor(
            args.job_id, Path(args.db), args.poll, args.sample_interval, args.sample_retention, args.grace
        )
        sup.register()
    except Exception as exc:
        _handshake(f"error: {exc}")
        raise
    _handshake("ok")
    return sup.run()


_handshake_fd: Optional[int] = None


def _fork_away() -> bool:
    """Fork; the parent waits until the child registered and returns True, the child returns False."""
    global _handshake_fd
    sys.stdout.flush()
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    if os.fork() == 0:
        os.close(read_fd)
        _handshake_fd = write_fd
        return False
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        answer = pipe.read().decode()
    if answer != "ok":
        print(answer or "the supervisor died before registering", file=sys.stderr)
        sys.exit(1)
    return True


def _handshake(message: str) -> None:
    global _handshake_fd
    if _handshake_fd is not None:
        os.write(_handshake_fd, message.encode())
        os.close(_handshake_fd)
        _handshake_fd = None


if __name__ == "__main__":
    sys.exit(main())
