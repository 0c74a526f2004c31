"""The KEDA ScaledObject's query, exactly as deploy/kubernetes/keda.yaml hands it to KEDA, run against a real
PostgreSQL database that a real `kinema serve` migrated to Kinema's schema, with jobs made through the API.

It counts the jobs that need a worker: claimable queued jobs plus running ones (so the pool never shrinks under a
running job); finished, failed and cancelled jobs never count, nor queued jobs a pause holds back."""

from __future__ import annotations

import warnings

import httpx
import openai
import psycopg
import pytest

from kinema.db.session import make_engine, make_session_factory
from kinema.queue.store import JobQueue, Outputs
from tests.conftest import client_for, provision
from tests.deploy.manifests import keda_query

warnings.filterwarnings("ignore", category=DeprecationWarning)
pytestmark = pytest.mark.slow
FAST = {"num_inference_steps": 1}


def test_keda_query_returns_the_demand_on_the_real_schema(pg_url: str, kinema_server) -> None:  # type: ignore[no-untyped-def]
    query = keda_query()
    libpq_url = pg_url.replace("postgresql+psycopg://", "postgresql://")  # what KEDA gets: a plain libpq URL

    def demand() -> int:
        with psycopg.connect(libpq_url) as conn:
            rows = conn.execute(query).fetchall()
        assert len(rows) == 1 and len(rows[0]) == 1  # KEDA reads one number
        value = rows[0][0]
        assert isinstance(value, int)
        return value

    server = kinema_server(pg_url, workers=0)  # migrates the fresh database to head as it starts
    assert demand() == 0  # an empty queue
    client = client_for(server)
    beta = client_for(server, provision(server.data_dir, pg_url, "beta@example.com", cohort="beta"))
    ours = [client.videos.create(prompt=f"job {i}", seconds="1", extra_body=FAST).id for i in range(3)]
    theirs = [beta.videos.create(prompt=f"beta {i}", seconds="1", extra_body=FAST).id for i in range(2)]
    assert demand() == 5

    engine = make_engine(pg_url)
    try:
        queue = JobQueue(make_session_factory(engine), lease_seconds=60, max_attempts=3)
        running = queue.claim("a-worker")  # the oldest: ours[0]
        assert running is not None and running.video_id == ours[0]
        assert demand() == 5  # running jobs still need their worker
        assert queue.complete(running, Outputs("v", "t", "s"))
        assert demand() == 4  # done: not counted
        client.post(f"/videos/{ours[1]}/cancel", cast_to=openai.types.Video)
        assert client.videos.retrieve(ours[1]).status == "failed"
        assert demand() == 3  # failed: not counted

        admin_key = provision(server.data_dir, pg_url, "admin@example.com", role="admin")
        headers = {"Authorization": f"Bearer {admin_key}"}
        r = httpx.post(f"{server.base_url}/v1/admin/pause", json={"cohort": "beta"}, headers=headers)
        assert r.status_code == 200, r.text
        assert demand() == 1  # beta's two queued jobs wait for the resume: no GPU for them yet
        held = queue.claim("a-worker")
        assert held is not None and held.video_id == ours[2]  # the query agrees with what a worker may claim
        assert queue.claim("another-worker") is None
        assert demand() == 1
        r = httpx.post(f"{server.base_url}/v1/admin/resume", json={"cohort": "beta"}, headers=headers)
        assert r.status_code == 200, r.text
        assert demand() == 3
        assert queue.release(held)  # a worker shutting down gives its job back: still one job of demand
        assert demand() == 3
        assert {v.id for v in beta.videos.list()} == set(theirs)
    finally:
        engine.dispose()
