"""In-process workers: woken by an enqueue in the same process, and stopped promptly."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from kinema.config import Settings
from kinema.container import Container
from kinema.db.session import make_engine, make_session_factory, upgrade_to_head
from kinema.queue.store import JobQueue
from kinema.queue.worker import JobContext, Worker
from kinema.services.auth import Principal
from kinema.services.options import CreateVideo, GenerationOptions
from tests.factories import video_row


def test_enqueue_wakes_an_idle_in_process_worker(tmp_path: Path, models_dir: Path) -> None:
    settings = Settings(
        mode="dev",
        data_dir=tmp_path,
        models_dir=models_dir,
        default_model="tiny-wan",
        poll_seconds=60,
        progress_interval_seconds=0,
    )
    container = Container.from_settings(settings)
    container.start_workers(1)
    try:
        time.sleep(0.5)  # the worker has looked, found nothing, and is now waiting up to 60 s
        row = container.videos.create(
            Principal("owner"),
            CreateVideo(prompt="wake up", seconds="1", options=GenerationOptions(num_inference_steps=1)),
        )
        deadline = time.monotonic() + 30
        while container.videos.get("owner", row.id).status != "completed" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert container.videos.get("owner", row.id).status == "completed"
        assert time.monotonic() < deadline
    finally:
        t0 = time.monotonic()
        container.close()
        assert time.monotonic() - t0 < 10  # stop wakes the waiting worker too
    assert not [t for t in threading.enumerate() if t.name.startswith("kinema-worker")]


class _Recorder:
    """A runner that only notes which jobs it was given, and settles nothing."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def run(self, ctx: JobContext) -> None:
        self.ran.append(ctx.lease.video_id)


def test_worker_claims_jobs_for_its_loaded_models_first(tmp_path: Path) -> None:
    db = make_engine(f"sqlite:///{tmp_path / 'kinema.db'}")
    upgrade_to_head(db)
    sessions = make_session_factory(db)
    now = time.time()
    with sessions.begin() as s:
        s.add(video_row("video_oldest", model="other", created_at=now - 5))
        s.add(video_row("video_tiny", model="tiny-wan", created_at=now - 3))
        s.add(video_row("video_big", model="big", created_at=now - 1))
    loaded: list[str] = ["tiny-wan"]
    runner = _Recorder()
    worker = Worker(JobQueue(sessions, lease_seconds=30, max_attempts=3), runner, prefer_models=lambda: loaded)
    assert worker.run_once()
    loaded[:] = ["big"]  # asked again before every claim
    assert worker.run_once()
    assert worker.run_once()
    assert not worker.run_once()
    assert runner.ran == ["video_tiny", "video_big", "video_oldest"]
    db.dispose()
