"""The worker loop: claim a job, keep its lease alive, run it, repeat until told to stop."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from kinema.queue.store import JobQueue, Lease

log = logging.getLogger(__name__)


class JobContext:
    """What a running job may do to its own row: report progress and ask whether to stop.

    Both are throttled: progress is written at most every ``interval`` seconds (and always when it
    reaches a new multiple of 10), and the database is asked about cancellation at the same rate.
    """

    def __init__(self, queue: JobQueue, lease: Lease, interval: float) -> None:
        self._queue = queue
        self.lease = lease
        self._interval = interval
        self._last_write = 0.0
        self._last_written = -1
        self._last_check = 0.0
        self._stop = False
        self.lease_lost = threading.Event()

    def progress(self, percent: int) -> None:
        """Record progress; a lost lease turns into a stop request."""
        now = time.monotonic()
        decade_crossed = percent // 10 > self._last_written // 10
        if percent <= self._last_written or (now - self._last_write < self._interval and not decade_crossed):
            return
        self._last_write, self._last_written = now, percent
        if not self._queue.set_progress(self.lease, percent):
            self.lease_lost.set()

    def should_stop(self) -> bool:
        """True once the job was cancelled or deleted, or the lease was lost."""
        if self._stop or self.lease_lost.is_set():
            return True
        now = time.monotonic()
        if now - self._last_check >= self._interval:
            self._last_check = now
            self._stop = self._queue.should_stop(self.lease)
        return self._stop


class Wakeup:
    """Lets an enqueue in this process wake idle in-process workers at once instead of at their next poll.

    Workers in other processes still find new jobs by polling (``poll_seconds``).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0

    def notify(self) -> None:
        """Wake every waiting worker."""
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def wait(self, timeout: float) -> None:
        """Return on the next :meth:`notify`, or after ``timeout`` seconds."""
        with self._cond:
            start = self._generation
            self._cond.wait_for(lambda: self._generation != start, timeout)


class JobRunner(Protocol):
    """Runs one claimed job to a fenced completion or failure."""

    def run(self, ctx: JobContext) -> None: ...


@runtime_checkable
class SplitJobRunner(JobRunner, Protocol):
    """A runner whose jobs end in steps that may run on another thread (encoding, upload, completion).

    ``start`` runs the job up to that point and returns the rest, to be called exactly once while the lease is
    kept alive, or None when the job is already settled. Both parts settle their own errors on the job.
    """

    def start(self, ctx: JobContext) -> Callable[[], None] | None: ...


class _Finisher:
    """Runs one worker's jobs' last steps on a thread of their own, one at a time, while the worker goes on to
    the next job. :meth:`submit` waits for the previous step first, so at most one is pending per worker and
    finished frames cannot pile up in memory when encoding is slower than denoising."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._idle = threading.Event()
        self._idle.set()

    def submit(self, step: Callable[[], None]) -> None:
        self.wait()
        self._idle.clear()
        try:
            threading.Thread(target=self._run, args=(step,), name=self._name, daemon=True).start()
        except BaseException:
            self._idle.set()
            raise

    def _run(self, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception:  # the runner settles its job's errors; this keeps the worker going if that failed
            log.exception("%s: error while finishing a job", self._name)
        finally:
            self._idle.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no step is pending (or ``timeout``); True when none is."""
        return self._idle.wait(timeout)


class _Heartbeat(threading.Thread):
    def __init__(self, queue: JobQueue, ctx: JobContext, every: float) -> None:
        super().__init__(name=f"heartbeat-{ctx.lease.video_id}", daemon=True)
        self._queue, self._ctx, self._every = queue, ctx, every
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self._every):
            try:
                if not self._queue.heartbeat(self._ctx.lease):
                    self._ctx.lease_lost.set()
                    return
            except Exception:  # a transient database error must not kill the job; the lease may lapse
                log.exception("heartbeat failed for %s", self._ctx.lease.video_id)

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=5)


def default_worker_id() -> str:
    """host:pid:random, so a log line says which process held a lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Claims and runs jobs one at a time until ``stop`` is set.

    ``prefer_models`` (e.g. the engine's :meth:`~kinema.engine.runtime.Engine.loaded_models`) is asked before
    each claim: jobs for those models are taken first, within the queue's affinity bound.

    With ``overlap`` and a :class:`SplitJobRunner`, a job's last steps (encoding, signing, upload, completion)
    run on a finisher thread while this worker claims and denoises the next job; the finished job's lease is
    renewed until its last step returns, and :meth:`release` gives it back too.
    """

    def __init__(
        self,
        queue: JobQueue,
        runner: JobRunner,
        *,
        worker_id: str | None = None,
        poll_seconds: float = 0.5,
        heartbeat_seconds: float = 5.0,
        progress_interval: float = 0.25,
        wakeup: Wakeup | None = None,
        prefer_models: Callable[[], Sequence[str]] | None = None,
        overlap: bool = False,
    ) -> None:
        self.wakeup = wakeup or Wakeup()
        self.prefer_models = prefer_models
        self.queue = queue
        self.runner = runner
        self.worker_id = worker_id or default_worker_id()
        self.poll_seconds = poll_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.progress_interval = progress_interval
        self._held: list[JobContext] = []  # the job running, and the one being finished (with overlap)
        self._held_lock = threading.Lock()
        self._finisher = _Finisher(f"kinema-finisher-{self.worker_id}") if overlap else None

    def release(self) -> bool:
        """Give the jobs this worker holds (the one running, and one being finished) back to the queue and make
        the runner stop (shutdown before they could finish). True when a job was released; its later writes
        are fenced out by the new token."""
        with self._held_lock:
            held = list(self._held)
        released = False
        for ctx in held:
            if self.queue.release(ctx.lease):
                log.info("worker %s released %s back to the queue", self.worker_id, ctx.lease.video_id)
                ctx.lease_lost.set()
                released = True
        return released

    def wait_finished(self, timeout: float | None = None) -> bool:
        """Block until the last job handed to the finisher has finished (or ``timeout``); True when none is left."""
        return self._finisher is None or self._finisher.wait(timeout)

    def run_once(self) -> bool:
        """Claim and run one job; False when there was nothing to claim."""
        preferred = self.prefer_models() if self.prefer_models is not None else ()
        lease = self.queue.claim(self.worker_id, prefer_models=preferred)
        if lease is None:
            return False
        log.info(
            "worker %s claimed %s (attempt %d, token %d)", self.worker_id, lease.video_id, lease.attempt, lease.token
        )
        ctx = JobContext(self.queue, lease, self.progress_interval)
        heartbeat = _Heartbeat(self.queue, ctx, self.heartbeat_seconds)
        heartbeat.start()
        with self._held_lock:
            self._held.append(ctx)

        def settled() -> None:  # the lease is renewed until here
            with self._held_lock:
                self._held.remove(ctx)
            heartbeat.stop()

        finisher = self._finisher
        try:
            if finisher is None or not isinstance(self.runner, SplitJobRunner):
                self.runner.run(ctx)
                finish = None
            else:
                finish = self.runner.start(ctx)
        except BaseException:
            settled()
            raise
        if finish is None or finisher is None:
            settled()
            return True

        def finish_then_settle(step: Callable[[], None] = finish) -> None:
            try:
                step()
            finally:
                settled()

        try:
            finisher.submit(finish_then_settle)  # waits for the previous job's last steps first
        except BaseException:
            settled()
            raise
        return True

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set; database hiccups are logged and retried after a pause."""
        while not stop.is_set():
            try:
                if not self.run_once() and not stop.is_set():
                    self.wakeup.wait(self.poll_seconds)
            except Exception:
                log.exception("worker %s: error while claiming or running a job", self.worker_id)
                stop.wait(max(self.poll_seconds, 1.0))
        self.wait_finished()  # a shutdown waits for the last job's last steps (or releases it: stop_workers)
