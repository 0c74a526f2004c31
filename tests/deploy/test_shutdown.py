"""Graceful shutdown with real processes, as Kubernetes and compose stop pods: SIGTERM, then SIGKILL later.

- A `kinema worker` with a running job finishes it on SIGTERM (and claims nothing more); with `--grace`, a job
  that cannot finish in time goes back to the queue, and another worker runs it: never lost, never run twice.
- `kinema serve` drains on SIGTERM: a request already in flight gets its full answer while new connections are
  refused; its in-process workers give back, after `KINEMA_SHUTDOWN_GRACE_SECONDS`, a job they cannot finish.
(tests/test_resilience.py covers SIGKILL, where the lease expiry brings the job back.)
"""

from __future__ import annotations

import signal
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from kinema.db.models import VideoRow
from kinema.db.session import make_engine, make_session_factory, upgrade_to_head
from kinema.queue.store import JobQueue
from tests.conftest import Proc, client_for, kinema_env, provision, start_kinema, wait_for
from tests.factories import db_row, video_row

warnings.filterwarnings("ignore", category=DeprecationWarning)
pytestmark = pytest.mark.slow
STEPS = {"num_inference_steps": 20}  # 20-40 s on tiny-wan at 96x64 here: time to hold it with a pause midway


def test_release_is_fenced(tmp_path: Path) -> None:
    """Only the lease holder can give a job back; afterwards its token is dead, and the attempt is not counted."""
    engine = make_engine(f"sqlite:///{tmp_path / 'k.db'}")
    upgrade_to_head(engine)
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        s.add(video_row("video_a"))
    queue = JobQueue(sessions, lease_seconds=60, max_attempts=3)
    lease = queue.claim("w1")
    assert lease is not None
    assert queue.release(lease)
    assert not queue.release(lease) and not queue.heartbeat(lease) and not queue.set_progress(lease, 50)
    with sessions() as s:
        r = s.scalar(select(VideoRow))
        assert r is not None and (r.status, r.attempts, r.lease_owner, r.lease_token) == ("queued", 0, None, 2)
    again = queue.claim("w2")
    assert again is not None and again.attempt == 1 and again.token == 3
    assert not queue.release(lease)  # the first holder's token still does nothing
    engine.dispose()


def pause(server: Proc, admin_key: str, action: str) -> None:
    """Pause everything holding running jobs at their next step (or resume): a running job that stays running."""
    body = {"hold_running": True} if action == "pause" else {}
    r = httpx.post(f"{server.base_url}/v1/admin/{action}", json=body, headers={"Authorization": f"Bearer {admin_key}"})
    assert r.status_code == 200, r.text


def test_worker_sigterm_gives_back_or_finishes_the_job(tmp_path: Path, models_dir: Path, kinema_server) -> None:  # type: ignore[no-untyped-def]
    db_url = f"sqlite:///{tmp_path / 'k.db'}"
    data = tmp_path / "data"
    server = kinema_server(db_url, workers=0, data_dir=data)
    admin_key = provision(data, db_url, "admin@example.com", role="admin")
    client = client_for(server, timeout=600)
    job = client.videos.create(prompt="a long one", size="96x64", seconds="1", extra_body=STEPS)
    env = kinema_env(data, db_url, models_dir)
    procs: list[Proc] = []
    try:
        # 1. Grace shorter than the job: on SIGTERM the job goes back to the queue, the worker exits cleanly.
        first = start_kinema(["worker", "--id", "first", "--grace", "0.5"], env, tmp_path / "first.log")
        procs.append(first)
        wait_for(lambda: db_row(db_url, job.id).lease_owner == "first", 120, "the first worker to claim the job")
        pause(server, admin_key, "pause")  # the job now waits at its next step, still running under the lease
        # The second worker starts meanwhile: the pause keeps it from claiming anything until step 2.
        second = start_kinema(["worker", "--id", "second"], env, tmp_path / "second.log")
        procs.append(second)
        wait_for(lambda: "held by a pause" in first.output(), 60, "the job to be held")
        claimed = db_row(db_url, job.id)
        assert (claimed.status, claimed.lease_owner, claimed.attempts) == ("in_progress", "first", 1)
        first.popen.send_signal(signal.SIGTERM)
        assert first.popen.wait(60) == 0, first.output()
        given_back = db_row(db_url, job.id)
        assert (given_back.status, given_back.lease_owner, given_back.attempts) == ("queued", None, 0)
        assert given_back.lease_token == claimed.lease_token + 1 and given_back.error_code is None
        assert f"released {job.id} back to the queue" in first.output()
        assert not (data / "blobs" / "videos" / job.id).exists()  # nothing half-written left behind

        # 2. No grace: the second worker takes the job, and after SIGTERM finishes it, but claims nothing more.
        wait_for(lambda: "waiting for jobs" in second.output(), 120, "the second worker to start")
        pause(server, admin_key, "resume")
        wait_for(lambda: db_row(db_url, job.id).lease_owner == "second", 60, "the second worker to claim the job")
        after = client.videos.create(prompt="queued behind it", size="96x64", seconds="1")
        pause(server, admin_key, "pause")
        wait_for(lambda: "held by a pause" in second.output(), 60, "the job to be held")
        second.popen.send_signal(signal.SIGTERM)
        wait_for(lambda: "finishing the current job" in second.output(), 30, "the worker to take the SIGTERM")
        pause(server, admin_key, "resume")
        assert second.popen.wait(300) == 0, second.output()
    finally:
        for proc in procs:
            proc.stop(signal.SIGKILL)
    done = db_row(db_url, job.id)
    assert done.status == "completed", (done.error_code, done.error_message, second.output())
    assert done.attempts == 1 and done.lease_token == given_back.lease_token + 1  # one run, to the end
    assert f"claimed {after.id}" not in second.output() and client.videos.retrieve(after.id).status == "queued"
    files = sorted(
        p.relative_to(data / "blobs").as_posix() for p in (data / "blobs" / "videos").rglob("*") if p.is_file()
    )
    token = done.lease_token
    assert files == [f"videos/{job.id}/{token}/{n}" for n in ("spritesheet.jpg", "thumbnail.webp", "video.mp4")]


def test_serve_gives_back_a_job_its_workers_cannot_finish_in_the_grace(tmp_path: Path, kinema_server) -> None:  # type: ignore[no-untyped-def]
    """`kinema serve` with in-process workers: on SIGTERM a job still running after the grace goes back to the
    queue at once (not after its lease expires), with its attempt not counted and nothing half-written."""
    db_url = f"sqlite:///{tmp_path / 'k.db'}"
    data = tmp_path / "data"
    server = kinema_server(db_url, workers=1, data_dir=data, KINEMA_SHUTDOWN_GRACE_SECONDS="0.5")
    admin_key = provision(data, db_url, "admin@example.com", role="admin")
    job = client_for(server).videos.create(prompt="a long one", size="96x64", seconds="1", extra_body=STEPS)
    wait_for(lambda: db_row(db_url, job.id).status == "in_progress", 120, "the in-process worker to claim the job")
    pause(server, admin_key, "pause")  # the job waits at its next step, still running under its lease
    wait_for(lambda: "held by a pause" in server.output(), 60, "the job to be held")
    claimed = db_row(db_url, job.id)
    server.popen.send_signal(signal.SIGTERM)
    # uvicorn shuts down cleanly, then re-raises the signal it caught (so the exit status says SIGTERM).
    assert server.popen.wait(60) in (0, -signal.SIGTERM), server.output()
    assert "Application shutdown complete" in server.output()
    given_back = db_row(db_url, job.id)
    assert (given_back.status, given_back.lease_owner, given_back.attempts) == ("queued", None, 0)
    assert given_back.lease_token == claimed.lease_token + 1 and given_back.error_code is None
    assert f"released {job.id} back to the queue" in server.output()
    assert not (data / "blobs" / "videos" / job.id).exists()


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def test_serve_drains_in_flight_requests_on_sigterm(tmp_path: Path, kinema_server) -> None:  # type: ignore[no-untyped-def]
    server = kinema_server(f"sqlite:///{tmp_path / 'k.db'}", workers=0)
    assert httpx.get(f"{server.base_url}/readyz").json() == {"status": "ready"}  # what the readiness probe sees
    port = int(server.base_url.rsplit(":", 1)[1])
    seen: dict[str, bool] = {}

    def slow_body() -> Iterator[bytes]:
        yield b'{"prompt": "sent slowly, '
        server.popen.send_signal(signal.SIGTERM)  # the request is in flight: headers in, body half sent
        wait_for(lambda: refused(port), 10, "the server to stop accepting connections")
        seen["refused_while_draining"] = True
        time.sleep(0.5)
        yield b'across a shutdown", "seconds": "1"}'

    r = httpx.post(
        f"{server.base_url}/v1/videos",
        content=slow_body(),
        headers={"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json"},
        timeout=60,
    )
    assert seen == {"refused_while_draining": True}
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "queued" and r.headers["connection"] == "close"
    server.popen.wait(60)
    assert "Application shutdown complete" in server.output()
    assert db_row(server.db_url, r.json()["id"]).prompt == "sent slowly, across a shutdown"
