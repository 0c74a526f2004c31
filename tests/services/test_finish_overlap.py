"""A job's last steps (encode, sign, upload, complete) on the worker's finisher thread, overlapped with the next
job's denoising: real tiny-wan model, real SQLite queue, real blob folder. The store below only adds a hook
before each write, so a test can hold a finish at a known point; the order of events is read from the runner's
own log records, not from timings."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import update

from kinema.blobs import BlobStore
from kinema.blobs.local import LocalBlobStore
from kinema.config import Settings
from kinema.container import Container
from kinema.db.models import VideoRow
from kinema.media.video_decode import stream_mp4
from kinema.provenance.watermark import detect, detect_video
from kinema.queue.worker import JobContext, Worker
from kinema.services.auth import Principal
from kinema.services.generation import GenerationRunner
from kinema.services.options import CreateVideo, ExtendVideo, GenerationOptions, VideoSource
from kinema.services.purge import output_prefix

OWNER = Principal("owner")
WAIT = 120.0  # a bound on waiting for something that must happen, never a speed requirement


class _HookedStore(LocalBlobStore):
    """The real blob folder, calling ``before_put(key)`` before each write."""

    def __init__(self, root: Path, before_put: Callable[[str], None]) -> None:
        super().__init__(root)
        self.before_put = before_put

    def put(self, key: str, data: bytes) -> None:
        self.before_put(key)
        super().put(key, data)


class _Events(logging.Handler):
    """The runner's "video <id>: denoising / finishing / finished" records, in the order they were logged."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[str] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.endswith((": denoising", ": finishing", ": finished")):
            with self.changed:
                self.seen.append(message.removeprefix("video "))
                self.changed.notify_all()

    def wait_for(self, event: str) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: event in self.seen, WAIT)


@pytest.fixture
def events() -> Iterator[_Events]:
    handler = _Events()
    logger = logging.getLogger("kinema.services.generation")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def container(tmp_path: Path, models_dir: Path) -> Iterator[Container]:
    settings = Settings(
        mode="dev",
        data_dir=tmp_path,
        models_dir=models_dir,
        default_model="tiny-wan",
        progress_interval_seconds=0,
        poll_seconds=0.05,
        heartbeat_seconds=0.05,
        lease_seconds=30,
    )
    c = Container.from_settings(settings)
    yield c
    c.close()


def _create(c: Container, prompt: str, seed: int) -> str:
    options = GenerationOptions(num_inference_steps=1, seed=seed)
    return c.videos.create(OWNER, CreateVideo(prompt=prompt, seconds="1", options=options)).id


def _runner(c: Container, store: LocalBlobStore, **kwargs: object) -> GenerationRunner:
    return GenerationRunner(c.sessions, c.queue, store, c.registry, c.engine, c.provenance, **kwargs)  # type: ignore[arg-type]


def _worker(c: Container, runner: GenerationRunner) -> Worker:
    return Worker(c.queue, runner, overlap=True, heartbeat_seconds=0.05, progress_interval=0, poll_seconds=0.05)


def _lease_expiry(c: Container, video_id: str) -> float:
    with c.sessions() as s:
        row = s.get(VideoRow, video_id)
        assert row is not None and row.lease_expires_at is not None
        return float(row.lease_expires_at)


def _check_output(c: Container, store: BlobStore, video_id: str, frame_count: int | None = None) -> list[np.ndarray]:
    row = c.videos.get(OWNER.id, video_id)
    assert row.status == "completed" and row.video_key is not None
    mp4 = store.get(row.video_key)
    with stream_mp4(mp4) as clip:
        frames = list(clip.frames)
    assert len(frames) == (frame_count if frame_count is not None else row.num_frames)
    assert frames[0].shape == (row.height, row.width, 3)
    found = detect_video(mp4)
    assert found.found and found.payload is not None
    assert found.payload.job_tag == c.provenance.marks(video_id).watermark_tag
    assert found.payload.deployment_id == c.provenance.deployment_id
    assert all(key.startswith(row.video_key.rsplit("/", 1)[0]) for key in store.list_prefix(output_prefix(video_id)))
    return frames


def test_next_job_denoises_while_the_last_one_finishes(container: Container, events: _Events, tmp_path: Path) -> None:
    c = container
    first, second = _create(c, "a red kite", 1), _create(c, "a blue boat", 2)
    held: dict[str, object] = {}

    def hold_first_finish(key: str) -> None:
        # The first job's upload waits here until the second job is denoising; meanwhile its lease must be
        # renewed by the heartbeat, as while it ran.
        if key.startswith(output_prefix(first)) and "before" not in held:
            held["before"] = _lease_expiry(c, first)
            held["second_denoising"] = events.wait_for(f"{second}: denoising")
            deadline = time.monotonic() + WAIT
            while _lease_expiry(c, first) == held["before"] and time.monotonic() < deadline:
                time.sleep(0.02)
            held["after"] = _lease_expiry(c, first)

    store = _HookedStore(tmp_path / "out", hold_first_finish)
    worker = _worker(c, _runner(c, store))
    assert worker.run_once()  # the first job's frames; its last steps go to the finisher thread
    assert worker.run_once()  # the second job, denoised while the first one finishes
    assert worker.wait_finished(WAIT)
    assert held["second_denoising"] is True
    assert held["after"] > held["before"]  # type: ignore[operator]
    seen = events.seen
    assert seen.index(f"{first}: denoising") < seen.index(f"{first}: finishing")
    assert seen.index(f"{second}: denoising") < seen.index(f"{first}: finished")
    assert seen.index(f"{first}: finished") < seen.index(f"{second}: finishing")  # one finish at a time
    assert seen[-1] == f"{second}: finished"
    _check_output(c, store, first)
    _check_output(c, store, second)


def test_an_error_while_finishing_fails_that_job_only(container: Container, events: _Events, tmp_path: Path) -> None:
    c = container
    first, second = _create(c, "a red kite", 1), _create(c, "a blue boat", 2)

    def fail_first(key: str) -> None:
        if key.startswith(output_prefix(first)):
            raise RuntimeError("disk full")

    store = _HookedStore(tmp_path / "out", fail_first)
    worker = _worker(c, _runner(c, store))
    assert worker.run_once() and worker.run_once()
    assert worker.wait_finished(WAIT)
    failed = c.videos.get(OWNER.id, first)
    assert (failed.status, failed.error_code) == ("failed", "generation_failed")
    assert "disk full" in (failed.error_message or "")
    assert store.list_prefix(output_prefix(first)) == []
    _check_output(c, store, second)


def test_a_lease_lost_while_finishing_leaves_no_blobs(container: Container, events: _Events, tmp_path: Path) -> None:
    c = container
    video = _create(c, "a red kite", 1)
    thief: list[object] = []

    def steal_the_lease(key: str) -> None:
        # Our lease lapses (a long pause) and another worker reclaims the job while we upload. Our heartbeat
        # (every 0.05 s) may renew the lease between the two statements, so this retries until the claim wins.
        if not thief:
            for _ in range(200):
                with c.sessions.begin() as s:
                    s.execute(update(VideoRow).where(VideoRow.id == video).values(lease_expires_at=time.time() - 1))
                lease = c.queue.claim("thief")
                if lease is not None:
                    break
            thief.append(lease)

    store = _HookedStore(tmp_path / "out", steal_the_lease)
    worker = _worker(c, _runner(c, store))
    assert worker.run_once()
    assert worker.wait_finished(WAIT)
    assert thief and thief[0] is not None
    assert store.list_prefix(output_prefix(video)) == []  # the fenced-out attempt removed what it wrote
    row = c.videos.get(OWNER.id, video)
    assert (row.status, row.attempts) == ("in_progress", 2)  # the thief's attempt, untouched
    _runner(c, store).run(JobContext(c.queue, thief[0], 0))  # type: ignore[arg-type]
    _check_output(c, store, video)


def test_shutdown_waits_for_a_pending_finish(container: Container, events: _Events, tmp_path: Path) -> None:
    c = container
    video = _create(c, "a red kite", 1)
    gate, entered = threading.Event(), threading.Event()

    def hold(key: str) -> None:
        entered.set()
        assert gate.wait(WAIT)

    store = _HookedStore(tmp_path / "out", hold)
    worker = _worker(c, _runner(c, store))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    assert entered.wait(WAIT)  # the job is in its last steps, on the finisher thread
    stop.set()
    worker.wakeup.notify()
    thread.join(timeout=2.0)
    assert thread.is_alive()  # told to stop, the worker still waits for the job it is finishing
    gate.set()
    thread.join(timeout=WAIT)
    assert not thread.is_alive()
    _check_output(c, store, video)


def test_shutdown_past_the_grace_gives_a_finishing_job_back(
    container: Container, events: _Events, tmp_path: Path
) -> None:
    c = container
    video = _create(c, "a red kite", 1)
    gate, entered = threading.Event(), threading.Event()

    def hold(key: str) -> None:
        entered.set()
        assert gate.wait(WAIT)

    store = _HookedStore(tmp_path / "out", hold)
    c.runner = _runner(c, store)
    c.start_workers(1)
    assert entered.wait(WAIT)
    stopping = threading.Thread(target=c.stop_workers, kwargs={"grace": 0})
    stopping.start()
    deadline = time.monotonic() + WAIT
    while c.videos.get(OWNER.id, video).status != "queued" and time.monotonic() < deadline:
        time.sleep(0.02)
    gate.set()  # the upload goes on, fenced out by the release
    stopping.join(timeout=WAIT)
    assert not stopping.is_alive()
    row = c.videos.get(OWNER.id, video)
    assert (row.status, row.video_key) == ("queued", None)  # back in the queue, for the next worker
    assert store.list_prefix(output_prefix(video)) == []


def test_device_path_marks_and_labels_before_the_cpu(container: Container, events: _Events, tmp_path: Path) -> None:
    # On this CPU the "device" is the CPU; forcing the on-device path runs the torch label and watermark.
    c = container
    video = _create(c, "a red kite", 1)
    store = LocalBlobStore(tmp_path / "out")
    runner = _runner(c, store, device_media=True, visible_label="AI-generated")
    worker = _worker(c, runner)
    assert worker.run_once()
    assert worker.wait_finished(WAIT)
    _check_output(c, store, video)


def test_an_extension_on_the_device_path(container: Container, events: _Events) -> None:
    # The model's frames are marked as a tensor; the source clip's frames before them with numpy.
    c = container
    worker = _worker(c, _runner(c, c.blobs, device_media=True))
    first = _create(c, "a red kite", 1)
    assert worker.run_once() and worker.wait_finished(WAIT)
    source = _check_output(c, c.blobs, first)
    options = GenerationOptions(num_inference_steps=1, seed=2)
    ext = c.videos.extend(OWNER, ExtendVideo("the kite lands", "1", VideoSource(video_id=first), options=options))
    assert worker.run_once() and worker.wait_finished(WAIT)
    frames = _check_output(c, c.blobs, ext.id, frame_count=len(source) + ext.num_frames - 1)
    tail = detect(np.stack(frames[len(source) :]))  # the new part alone carries the extension's mark
    assert tail.found and tail.payload is not None
    assert tail.payload.job_tag == c.provenance.marks(ext.id).watermark_tag
