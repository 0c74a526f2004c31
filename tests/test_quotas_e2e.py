"""Quotas end to end: real ``kinema serve`` processes, the official `openai` SDK, a real database and Redis.

- concurrent jobs: parallel creates against a limit of L admit exactly L;
- video-seconds per day: a failed or cancelled job is refunded once, a completed one never;
- requests per minute: counted in Redis, so two API processes share one budget.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import REDIS_URL, Proc, client_for, provision, wait_for
from tests.factories import SMALL

warnings.filterwarnings("ignore", category=DeprecationWarning)
pytestmark = pytest.mark.slow
FAST = {"num_inference_steps": 1}
TINY_1S = round(9 / 8, 3)  # tiny-wan: "1" second is 9 frames at 8 fps; the charge is frames / fps, to 1 ms
ABSENT_MODEL = "wan2.1-t2v-1.3b"  # in the catalogue, never pulled here: the worker fails it
ABSENT_4S = round(65 / 16, 3)  # its "4" seconds: 65 frames at 16 fps, charged as 4.062


def usage(server: Proc, key: str | None = None) -> dict[str, Any]:
    r = httpx.get(f"{server.base_url}/v1/me", headers={"Authorization": f"Bearer {key or server.api_key}"})
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()["usage"]
    return result


def cancel(server: Proc, video_id: str, key: str | None = None) -> httpx.Response:
    """POST /v1/videos/{id}/cancel (the SDK has no method for it)."""
    headers = {"Authorization": f"Bearer {key or server.api_key}"}
    return httpx.post(f"{server.base_url}/v1/videos/{video_id}/cancel", headers=headers)


def retry_after(err: openai.APIStatusError) -> float:
    value = err.response.headers.get("retry-after")
    assert value is not None, f"no Retry-After on {err.status_code} {err.code}"
    assert float(value) > 0
    return float(value)


def test_parallel_creates_admit_exactly_the_concurrent_limit(db_url: str, kinema_server) -> None:  # type: ignore[no-untyped-def]
    server = kinema_server(db_url, workers=0, KINEMA_DEFAULT_CONCURRENT_JOBS="5")
    client = client_for(server)
    n = 20
    start = threading.Barrier(n)
    results: list[object] = [None] * n

    def create(i: int) -> None:
        start.wait()
        try:
            results[i] = client.videos.create(prompt=f"clip {i}", seconds="1", extra_body=FAST)
        except Exception as exc:  # collected and checked below
            results[i] = exc

    threads = [threading.Thread(target=create, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)

    accepted = [r for r in results if isinstance(r, openai.types.Video)]
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    others = [r for r in results if r not in accepted and r not in refused]
    assert not others, others
    assert len(accepted) == 5 and len(refused) == 15
    assert all(v.status == "queued" for v in accepted)
    for err in refused:
        assert err.status_code == 429 and err.code == "concurrent_jobs_exceeded", err
        assert isinstance(err.body, dict) and err.body.get("type") and "limit 5" in err.body["message"]
        retry_after(err)

    listed = [v.id for v in client.videos.list(limit=100)]
    assert sorted(listed) == sorted(v.id for v in accepted)
    now = usage(server)
    assert now["active_jobs"] == 5
    assert now["video_seconds_last_24h"] == pytest.approx(5 * TINY_1S)  # refused requests charge nothing


def test_failed_and_cancelled_jobs_are_refunded_once(db_url: str, kinema_server) -> None:  # type: ignore[no-untyped-def]
    server = kinema_server(db_url, workers=1, KINEMA_DEFAULT_VIDEO_SECONDS_PER_DAY="6")
    owner = client_for(server)
    # Someone else's long job keeps the only worker busy, so the owner's jobs wait in the queue.
    other_key = provision(server.data_dir, server.db_url, "other@example.com")
    other = client_for(server, other_key)
    blocker = other.videos.create(prompt="a long one", seconds="4", extra_body={"num_inference_steps": 100})
    wait_for(lambda: other.videos.retrieve(blocker.id).status == "in_progress", 60, "the blocker to start")

    doomed = owner.videos.create(prompt="needs absent weights", model=ABSENT_MODEL, seconds="4")  # type: ignore[arg-type]
    queued = owner.videos.create(prompt="to be cancelled", seconds="1", extra_body=FAST)
    charged = usage(server)
    assert charged["video_seconds_last_24h"] == pytest.approx(ABSENT_4S + TINY_1S)
    assert charged["active_jobs"] == 2
    with pytest.raises(openai.RateLimitError) as err:  # 4.0625 + 1.125 + 1.125 > 6
        owner.videos.create(prompt="one too many", seconds="1", extra_body=FAST)
    assert err.value.code == "video_seconds_exceeded"
    retry_after(err.value)
    # Still queued behind the blocker: the usage read above saw the charges before any refund.
    assert owner.videos.retrieve(doomed.id).status == "queued"

    # Cancelling a queued job refunds it; cancelling again, or deleting it, refunds nothing more.
    r = cancel(server, queued.id)
    assert r.status_code == 200 and r.json()["status"] == "failed" and r.json()["error"]["code"] == "cancelled"
    assert usage(server)["video_seconds_last_24h"] == pytest.approx(ABSENT_4S)
    assert cancel(server, queued.id).status_code == 200
    owner.videos.delete(queued.id)
    assert usage(server)["video_seconds_last_24h"] == pytest.approx(ABSENT_4S)

    # Free the worker: the doomed job is claimed and fails, and its seconds come back.
    assert cancel(server, blocker.id, other_key).status_code == 200
    wait_for(lambda: owner.videos.retrieve(doomed.id).status == "failed", 120, "the doomed job to fail")
    failed = owner.videos.retrieve(doomed.id)
    assert failed.error is not None and failed.error.code == "model_not_available"
    after_failure = usage(server)
    assert after_failure["video_seconds_last_24h"] == pytest.approx(0.0)
    assert after_failure["active_jobs"] == 0

    owner.videos.delete(doomed.id)  # already refunded: deleting gives nothing back again
    assert usage(server)["video_seconds_last_24h"] == pytest.approx(0.0)

    # The refund made room: the job refused above now fits. Once completed, it stays charged.
    done = owner.videos.create_and_poll(
        prompt="one too many", size=SMALL, seconds="1", extra_body=FAST, poll_interval_ms=50
    )
    assert done.status == "completed", done.error
    assert usage(server)["video_seconds_last_24h"] == pytest.approx(TINY_1S)
    owner.videos.delete(done.id)
    assert usage(server)["video_seconds_last_24h"] == pytest.approx(TINY_1S)
    assert usage(server, other_key)["video_seconds_last_24h"] == pytest.approx(0.0)  # the cancelled blocker


def test_requests_per_minute_are_shared_by_two_servers_through_redis(db_url: str, tmp_path, kinema_server) -> None:  # type: ignore[no-untyped-def]
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    # The counts are per user id and key id, fresh random ids in every run: no need to flush Redis
    # (which would disturb anyone else using this database at the same time).
    env = {"KINEMA_DEFAULT_REQUESTS_PER_MINUTE": "10", "KINEMA_REDIS_URL": REDIS_URL}
    a = kinema_server(db_url, workers=0, data_dir=tmp_path / "data", **env)
    b = kinema_server(db_url, workers=0, data_dir=tmp_path / "data", **env)
    # Each server provisioned its own key for the same owner: the user's budget spans keys and processes.
    clients = [client_for(a), client_for(b)]
    for i in range(10):
        clients[i % 2].videos.list()
    for client in (clients[0], clients[1]):
        with pytest.raises(openai.RateLimitError) as err:
            client.videos.list()
        assert err.value.status_code == 429 and err.value.code == "rate_limit_exceeded"
        assert "10 requests per minute" in err.value.message
        assert 0 < retry_after(err.value) <= 60
    # The budget is the user's: the first server's key, sent to the second, is refused as well.
    with pytest.raises(openai.RateLimitError):
        client_for(b, a.api_key).videos.list()
