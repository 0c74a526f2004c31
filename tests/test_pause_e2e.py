"""The pause switch end to end: real ``kinema serve`` processes, the official `openai` SDK, a real database.

While paused, new generation is refused with 503 ``generation_paused`` and ``Retry-After``; reads work;
queued jobs stay queued; running jobs finish (or, with ``hold_running``, wait at their next step).
Resume lets everything continue, and nothing is lost. A pause is per deployment (every server on the
database honours it within a second) and may cover one cohort only.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Proc, client_for, provision, wait_for
from tests.factories import SMALL

warnings.filterwarnings("ignore", category=DeprecationWarning)
pytestmark = pytest.mark.slow
FAST = {"num_inference_steps": 1}
PROPAGATION = 2.0  # seconds; the design bound is 0.5 s (snapshot age) + one request
SLOW = {"num_inference_steps": 100}  # tiny-wan takes seconds over this, long enough to pause it midway
RETRY_AFTER = 7


def admin(server: Proc, key: str, action: str, **body: Any) -> list[dict[str, Any]]:
    """POST /v1/admin/pause or /v1/admin/resume; the pauses in force afterwards."""
    r = httpx.post(f"{server.base_url}/v1/admin/{action}", json=body, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def assert_paused(err: pytest.ExceptionInfo[openai.APIStatusError]) -> str:
    """The refusal is a 503 generation_paused with the configured Retry-After; returns its message."""
    assert err.value.status_code == 503 and err.value.code == "generation_paused"
    assert err.value.response.headers.get("retry-after") == str(RETRY_AFTER)
    return err.value.message


def test_pause_keeps_queued_jobs_and_lets_the_running_one_finish(db_url: str, kinema_server) -> None:  # type: ignore[no-untyped-def]
    server = kinema_server(db_url, workers=1, KINEMA_PAUSE_RETRY_AFTER_SECONDS=str(RETRY_AFTER))
    admin_key = provision(server.data_dir, server.db_url, "admin@example.com", role="admin")
    client = client_for(server)
    running = client.videos.create(prompt="the long one", seconds="2", extra_body=SLOW)
    queued = [client.videos.create(prompt=f"waiting {i}", size=SMALL, seconds="1", extra_body=FAST) for i in range(3)]
    wait_for(lambda: client.videos.retrieve(running.id).status == "in_progress", 60, "the first job to start")

    pauses = admin(server, admin_key, "pause", hold_running=False, reason="GPU maintenance")
    assert [(p["cohort"], p["hold_running"], p["reason"]) for p in pauses] == [(None, False, "GPU maintenance")]

    # New generation is refused, in every form, with the reason and a Retry-After.
    with pytest.raises(openai.InternalServerError) as err:
        client.videos.create(prompt="a new one", seconds="1", extra_body=FAST)
    assert "GPU maintenance" in assert_paused(err)
    with pytest.raises(openai.InternalServerError) as err:
        client.videos.remix(queued[0].id, prompt="a remix")
    assert_paused(err)
    # Reads still work.
    assert client.videos.retrieve(queued[0].id).status == "queued"
    assert {v.id for v in client.videos.list(limit=100)} == {running.id, *(v.id for v in queued)}

    # The running job finishes; the queued ones are not started.
    wait_for(lambda: client.videos.retrieve(running.id).status == "completed", 120, "the running job to finish")
    assert client.videos.download_content(running.id).read()[4:8] == b"ftyp"
    time.sleep(1.0)  # twenty idle worker polls
    assert [(v.status, v.progress) for v in map(client.videos.retrieve, (q.id for q in queued))] == [("queued", 0)] * 3

    assert admin(server, admin_key, "resume") == []
    for video in queued:
        done = client.videos.poll(video.id, poll_interval_ms=50)
        assert done.status == "completed", done.error
        assert client.videos.download_content(video.id).read()[4:8] == b"ftyp"
    # Nothing lost, nothing extra: the refused requests left no rows.
    assert {v.id: v.status for v in client.videos.list(limit=100)} == dict.fromkeys(
        [running.id, *(v.id for v in queued)], "completed"
    )
    again = client.videos.create(prompt="after resume", size=SMALL, seconds="1", extra_body=FAST)
    assert again.status == "queued"


def test_pause_with_hold_running_stops_a_running_job_until_resume(db_url: str, kinema_server) -> None:  # type: ignore[no-untyped-def]
    server = kinema_server(db_url, workers=1, KINEMA_PAUSE_RETRY_AFTER_SECONDS=str(RETRY_AFTER))
    admin_key = provision(server.data_dir, server.db_url, "admin@example.com", role="admin")
    client = client_for(server)
    video = client.videos.create(prompt="held midway", seconds="4", extra_body=SLOW)
    wait_for(lambda: client.videos.retrieve(video.id).progress >= 2, 60, "the job to make progress")

    admin(server, admin_key, "pause", hold_running=True)
    time.sleep(1.0)  # the worker sees the pause within its 0.5 s snapshot, at its next step
    held = client.videos.retrieve(video.id)
    assert held.status == "in_progress" and held.progress < 90, "finished denoising before the pause took hold"
    samples = []
    for _ in range(4):
        time.sleep(0.5)
        v = client.videos.retrieve(video.id)
        samples.append((v.status, v.progress))
    assert samples == [("in_progress", held.progress)] * 4  # not a single step while held

    admin(server, admin_key, "resume")
    wait_for(lambda: client.videos.retrieve(video.id).progress > held.progress, 30, "the job to move again")
    done = client.videos.poll(video.id, poll_interval_ms=50)
    assert done.status == "completed", done.error
    assert client.videos.download_content(video.id).read()[4:8] == b"ftyp"
    assert "held by a pause" in server.output()


def test_cohort_pause_and_a_pause_seen_by_another_server(db_url: str, tmp_path: Path, kinema_server) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    env = {"KINEMA_PAUSE_RETRY_AFTER_SECONDS": str(RETRY_AFTER)}
    a = kinema_server(db_url, workers=0, data_dir=data, **env)
    b = kinema_server(db_url, workers=0, data_dir=data, **env)
    admin_key = provision(data, db_url, "admin@example.com", role="admin")
    early_key = provision(data, db_url, "early@example.com", cohort="early-access")
    owner_a, owner_b = client_for(a), client_for(b)  # the default cohort
    early_a, early_b = client_for(a, early_key), client_for(b, early_key)
    for client in (owner_a, owner_b, early_a, early_b):  # every snapshot warm: "not paused"
        client.videos.create(prompt="before", seconds="1")

    # A cohort pause affects only that cohort's users, on every server.
    pauses = admin(a, admin_key, "pause", cohort="early-access")
    assert [(p["cohort"], p["hold_running"]) for p in pauses] == [("early-access", False)]
    with pytest.raises(openai.InternalServerError) as err:
        early_a.videos.create(prompt="refused", seconds="1")
    assert "cohort 'early-access'" in assert_paused(err)
    assert owner_a.videos.create(prompt="fine", seconds="1").status == "queued"
    wait_for(lambda: refused(early_b), PROPAGATION, "server B to honour the cohort pause")
    assert owner_b.videos.create(prompt="fine", seconds="1").status == "queued"
    assert len(early_b.videos.list(limit=100).data) >= 1  # reads go on

    # A pause of everyone made through server A: server B refuses within a second (by design: a snapshot
    # at most 0.5 s old, plus one request). PROPAGATION allows for a loaded CI machine answering slowly.
    assert owner_b.videos.create(prompt="just before", seconds="1").status == "queued"
    admin(a, admin_key, "pause", reason="incident")
    paused_at = time.monotonic()
    wait_for(lambda: refused(owner_b), PROPAGATION, "server B to honour the pause")
    assert time.monotonic() - paused_at < PROPAGATION
    # Resumed through B: A takes new work again within a second, but the cohort pause stays.
    assert [p["cohort"] for p in admin(b, admin_key, "resume")] == ["early-access"]
    wait_for(lambda: not refused(owner_a), PROPAGATION, "server A to honour the resume")
    assert refused(early_a)
    assert admin(a, admin_key, "resume", cohort="early-access") == []
    wait_for(lambda: not refused(early_b), PROPAGATION, "server B to honour the cohort resume")


def refused(client: openai.OpenAI) -> bool:
    """Whether a create is refused as paused (a create that is accepted stays queued: no worker)."""
    try:
        client.videos.create(prompt="probe", seconds="1")
    except openai.InternalServerError as exc:
        assert exc.status_code == 503 and exc.code == "generation_paused", exc
        return True
    return False
