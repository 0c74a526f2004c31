"""Crash safety, restarts, cancellation and many workers: real processes, a real database."""

from __future__ import annotations

import signal
import warnings
from pathlib import Path

import openai
import pytest
from sqlalchemy import select

from kinema.db.models import VideoRow
from kinema.db.session import make_engine, make_session_factory
from kinema.queue.store import JobQueue, Lease, Outputs
from tests.conftest import client_for, kinema_env, start_kinema, wait_for
from tests.factories import SMALL, db_row

warnings.filterwarnings("ignore", category=DeprecationWarning)
pytestmark = pytest.mark.slow
FAST_LEASE = {"KINEMA_LEASE_SECONDS": "2", "KINEMA_HEARTBEAT_SECONDS": "0.3"}


def test_sigkilled_worker_is_replaced_and_fenced(db_url: str, tmp_path: Path, models_dir: Path, kinema_server) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    server = kinema_server(db_url, workers=0, data_dir=data)
    client = client_for(server, timeout=600)
    video = client.videos.create(prompt="long job", seconds="8", extra_body={"num_inference_steps": 40})

    env = kinema_env(data, db_url, models_dir, **FAST_LEASE)
    doomed = start_kinema(["worker", "--id", "doomed"], env, tmp_path / "doomed.log")
    try:
        wait_for(lambda: client.videos.retrieve(video.id).progress >= 5, 120, "the first worker to make progress")
        stale = db_row(db_url, video.id)
        assert stale.lease_owner == "doomed" and stale.status == "in_progress"
        doomed.popen.send_signal(signal.SIGKILL)
        doomed.popen.wait(10)
        progress_at_kill = client.videos.retrieve(video.id).progress
    finally:
        doomed.stop(signal.SIGKILL)

    rescuer = start_kinema(["worker", "--id", "rescuer"], env, tmp_path / "rescuer.log")
    try:
        seen: list[int] = []

        def done() -> bool:
            v = client.videos.retrieve(video.id)
            seen.append(v.progress)
            return v.status in ("completed", "failed")

        wait_for(done, 300, "the rescuer to finish the job")
    finally:
        rescuer.stop()
    final = db_row(db_url, video.id)
    assert final.status == "completed", (final.error_code, final.error_message, rescuer.output())
    assert final.attempts == 2 and final.lease_token == stale.lease_token + 1
    assert min(seen) >= progress_at_kill and seen == sorted(seen)  # never backwards across the reclaim
    # Exactly one set of outputs, under the rescuer's token.
    outputs = sorted(
        p.relative_to(data / "blobs").as_posix() for p in (data / "blobs" / "videos").rglob("*") if p.is_file()
    )
    token = final.lease_token
    assert outputs == [f"videos/{video.id}/{token}/{n}" for n in ("spritesheet.jpg", "thumbnail.webp", "video.mp4")]
    # The killed worker's token can no longer complete, fail or touch the job.
    engine = make_engine(db_url)
    q = JobQueue(make_session_factory(engine), lease_seconds=2, max_attempts=3)
    zombie = Lease(video.id, stale.lease_token, 1, "doomed")
    assert not q.complete(zombie, Outputs("a", "b", "c"))
    assert not q.fail(zombie, "x", "y")
    engine.dispose()
    assert db_row(db_url, video.id).video_key == f"videos/{video.id}/{token}/video.mp4"


def test_queued_jobs_survive_a_restart(tmp_path: Path, kinema_server) -> None:  # type: ignore[no-untyped-def]
    db_url = f"sqlite:///{tmp_path / 'k.db'}"
    data = tmp_path / "data"
    first = kinema_server(db_url, workers=0, data_dir=data)
    ids = [
        client_for(first, timeout=600)
        .videos.create(prompt=f"job {i}", size=SMALL, seconds="1", extra_body={"num_inference_steps": 1})
        .id
        for i in range(3)
    ]
    first.stop()  # SIGTERM: uvicorn shuts down gracefully, then re-raises the signal
    assert "Application shutdown complete" in first.output()

    second = kinema_server(db_url, workers=1, data_dir=data)
    client = client_for(second, timeout=600)
    finished = [client.videos.poll(vid) for vid in ids]
    assert [v.status for v in finished] == ["completed"] * 3


def test_cancel_mid_run_and_progress_is_monotonic(tmp_path: Path, kinema_server) -> None:  # type: ignore[no-untyped-def]
    server = kinema_server(f"sqlite:///{tmp_path / 'k.db'}")
    client = client_for(server, timeout=600)
    video = client.videos.create(prompt="to be cancelled", seconds="12", extra_body={"num_inference_steps": 80})
    seen: list[int] = []

    def moving() -> bool:
        v = client.videos.retrieve(video.id)
        seen.append(v.progress)
        return v.progress >= 5

    wait_for(moving, 120, "progress")
    cancelled = client.post(f"/videos/{video.id}/cancel", cast_to=openai.types.Video)
    assert cancelled.status in ("in_progress", "failed")
    final = client.videos.poll(video.id)
    assert final.status == "failed" and final.error is not None and final.error.code == "cancelled"
    assert final.progress < 90  # stopped before the end of denoising
    assert seen == sorted(seen)
    with pytest.raises(openai.ConflictError):
        client.videos.download_content(video.id)
    assert not (tmp_path / "data" / "blobs" / "videos" / video.id).exists()
    # A finished video cannot be cancelled.
    done = client.videos.create_and_poll(prompt="short", size=SMALL, seconds="1", extra_body={"num_inference_steps": 1})
    with pytest.raises(openai.ConflictError):
        client.post(f"/videos/{done.id}/cancel", cast_to=openai.types.Video)


def test_cancel_a_queued_job_at_once(tmp_path: Path, kinema_server) -> None:  # type: ignore[no-untyped-def]
    server = kinema_server(f"sqlite:///{tmp_path / 'k.db'}", workers=0)
    client = client_for(server, timeout=600)
    video = client.videos.create(prompt="never runs", seconds="1")
    cancelled = client.post(f"/videos/{video.id}/cancel", cast_to=openai.types.Video)
    assert cancelled.status == "failed" and cancelled.error is not None and cancelled.error.code == "cancelled"
    assert client.videos.retrieve(video.id).status == "failed"


def count_status(db_url: str, status: str) -> int:
    from sqlalchemy import func

    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as s:
            return int(s.scalar(select(func.count()).where(VideoRow.status == status)) or 0)
    finally:
        engine.dispose()


def test_many_workers_drain_fifty_jobs_exactly_once(
    pg_url: str, tmp_path: Path, models_dir: Path, kinema_server
) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    server = kinema_server(pg_url, workers=0, data_dir=data)
    client = client_for(server, timeout=600)
    ids = [
        client.videos.create(prompt=f"job {i}", size=SMALL, seconds="1", extra_body={"num_inference_steps": 1}).id
        for i in range(50)
    ]
    env = kinema_env(data, pg_url, models_dir)
    workers = [
        start_kinema(["worker", "--id", f"w{i}", "--threads", "2"], env, tmp_path / f"w{i}.log") for i in range(2)
    ]
    try:
        wait_for(lambda: count_status(pg_url, "completed") == 50, 600, "all 50 jobs to complete")
    finally:
        for w in workers:
            w.stop()
    rows = [db_row(pg_url, v) for v in ids]
    assert all(r.attempts == 1 and r.lease_token == 1 for r in rows)  # each claimed, and run, exactly once
    owners = {r.lease_owner for r in rows}
    assert owners == {None}  # cleared on completion
    per_video = [sorted(p.name for p in (data / "blobs" / "videos" / v).rglob("*") if p.is_file()) for v in ids]
    assert all(files == ["spritesheet.jpg", "thumbnail.webp", "video.mp4"] for files in per_video)
    logs = "".join(w.output() for w in workers)
    assert all(f"claimed {v}" in logs for v in ids)
    assert sum(logs.count(f"claimed {v}") for v in ids) == 50
