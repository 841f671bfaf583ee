"""Periodic jobs (storage.periodic, runner.PeriodicJob): the last run is in the database, so
a restarted or a second process does not run a job before its time, nor while another runs
it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from mailhaven.clock import Clock
from mailhaven.runner import PeriodicJob
from mailhaven.storage import periodic
from mailhaven.storage.db import Database

HOUR = 3600.0
WAIT = 30.0  # seconds a test waits for a thread at most (never reached when it passes)


class Job(PeriodicJob):
    name = "test-job"
    every = HOUR

    def __init__(self, db: Database, clock: Clock, *, hold: threading.Event | None = None,
                 fail: bool = False) -> None:
        super().__init__(db, clock)
        self.runs = 0
        self.hold = hold  # the run waits for it: a long job
        self.running = threading.Event()
        self.fail = fail

    async def work(self) -> int:
        self.runs += 1
        self.running.set()
        if self.hold is not None:
            assert await asyncio.to_thread(self.hold.wait, WAIT)
        if self.fail:
            raise RuntimeError("the job failed")
        return 1


@contextmanager
def another_process(services) -> Iterator[Database]:  # type: ignore[no-untyped-def]
    """A database engine of its own on the same database, as a restarted or second process
    has."""
    db = Database(services.db.url)
    try:
        yield db
    finally:
        db.dispose()


def _once(job: Job) -> int:
    return asyncio.run(job.run_once())


def test_a_job_that_ran_does_not_run_again_after_a_restart_before_its_interval(
        services, clock) -> None:
    first = Job(services.db, clock)
    assert _once(first) == 1
    assert _once(first) == 0  # not due again yet
    run = periodic.last_run(services.db, Job.name)
    assert run is not None and (run.last_started_at, run.last_finished_at) == (clock.now(),
                                                                                clock.now())

    with another_process(services) as db:  # the process restarted
        again = Job(db, clock)
        clock.advance(HOUR - 1)
        assert _once(again) == 0
        clock.advance(1)
        assert _once(again) == 1
    assert (first.runs, again.runs) == (1, 1)


def test_while_one_process_runs_a_job_another_does_not(services, clock) -> None:
    hold = threading.Event()
    first = Job(services.db, clock, hold=hold)
    running = threading.Thread(target=_once, args=(first,))
    running.start()
    try:
        assert first.running.wait(WAIT)
        with another_process(services) as db:
            second = Job(db, clock)
            assert _once(second) == 0
            assert second.runs == 0
    finally:
        hold.set()
        running.join(WAIT)
    assert first.runs == 1


def test_of_runners_starting_at_once_one_runs(services, clock) -> None:
    starters = 4
    start = threading.Barrier(starters)
    turns: list[periodic.Turn | None] = []

    def starter(db: Database) -> None:
        start.wait(WAIT)
        turns.append(periodic.take_turn(db, "raced", every=HOUR, now=clock.now()))

    with another_process(services) as db1, another_process(services) as db2:
        threads = [threading.Thread(target=starter, args=(db,))
                   for db in (services.db, db1, db2, services.db)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        taken = [turn for turn in turns if turn is not None]
        assert len(turns) == starters and len(taken) == 1
        taken[0].finish(clock.now())
    assert periodic.take_turn(services.db, "raced", every=HOUR, now=clock.now()) is None


def test_a_failed_run_is_tried_again_after_a_pause_not_at_every_look(services, clock) -> None:
    with pytest.raises(RuntimeError):
        _once(Job(services.db, clock, fail=True))
    job = Job(services.db, clock)
    assert _once(job) == 0  # not at once: every process would retry it every few seconds
    clock.advance(Job.after_failure)
    assert _once(job) == 1  # long before the hour of a run that succeeded
    assert _once(job) == 0


def test_a_run_cut_short_by_a_stopping_process_is_due_again_at_the_next_start(
        services, clock) -> None:
    class Stopped(Job):
        async def work(self) -> int:
            assert self._stop is not None
            self._stop.set()  # the process is told to stop during the run
            return await super().work()

    stopped = Stopped(services.db, clock)
    stopped._stop = asyncio.Event()
    assert _once(stopped) == 1
    with another_process(services) as db:  # restarted: the purge goes on at once
        assert _once(Job(db, clock)) == 1


@pytest.mark.postgres_only  # on SQLite the hold simply expires with `longest`
def test_on_postgresql_a_run_that_outlasts_its_hold_is_still_not_doubled(
        services, clock) -> None:
    """The advisory lock, held for the whole run, keeps a second run out even when the
    first has outlasted the time after which it is taken for dead."""
    hold = threading.Event()
    first = Job(services.db, clock, hold=hold)
    running = threading.Thread(target=_once, args=(first,))
    running.start()
    try:
        assert first.running.wait(WAIT)
        clock.advance(2 * HOUR)  # due again, and past the run's hold
        with another_process(services) as db:
            second = Job(db, clock)
            assert _once(second) == 0
    finally:
        hold.set()
        running.join(WAIT)
    with another_process(services) as db:  # the lock is gone with the run
        assert _once(Job(db, clock)) == 1
