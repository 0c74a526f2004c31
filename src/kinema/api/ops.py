"""Operational endpoints: liveness, readiness and Prometheus metrics (no authentication)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from kinema.api.deps import BlobsDep, SessionsDep
from kinema.api.errors import envelope
from kinema.db.models import ModerationRefusalRow, VideoRow

router = APIRouter(tags=["operations"])
log = logging.getLogger(__name__)
STATUSES = ("queued", "in_progress", "completed", "failed")


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
def readyz(sessions: SessionsDep, blobs: BlobsDep) -> dict[str, str] | Response:
    """Ready when the database answers and the blob folder is writable."""
    try:
        with sessions() as s:
            s.execute(text("SELECT 1"))
    except Exception:
        log.exception("readiness: database check failed")
        return envelope(503, "Not ready: the database does not answer.", type="server_error", code="not_ready")
    probe = f"health/{uuid.uuid4().hex}"
    try:
        blobs.put(probe, b"ok")
        blobs.delete(probe)
    except Exception:
        log.exception("readiness: blob store check failed")
        return envelope(503, "Not ready: the blob store is not writable.", type="server_error", code="not_ready")
    return {"status": "ready"}


class QueueCollector:
    """Reads job counts and durations from the database at scrape time, so every worker process
    (in-process threads or separate ``kinema worker`` hosts) is counted, not just this one."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def collect(self) -> Iterator[Metric]:
        with self._sessions() as s:
            counts = dict(s.execute(select(VideoRow.status, func.count()).group_by(VideoRow.status)).all())
            done = VideoRow.status == "completed"
            took = VideoRow.completed_at - VideoRow.started_at
            n, total = s.execute(select(func.count(), func.coalesce(func.sum(took), 0.0)).where(done)).one()
            refused = dict(
                s.execute(
                    select(ModerationRefusalRow.category, func.count()).group_by(ModerationRefusalRow.category)
                ).all()
            )
        jobs = GaugeMetricFamily("kinema_jobs", "Video jobs by status.", labels=["status"])
        for status in STATUSES:
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        yield GaugeMetricFamily("kinema_queue_depth", "Jobs waiting for a worker.", value=counts.get("queued", 0))
        refusals = CounterMetricFamily(
            "kinema_moderation_refusals", "Prompts refused by the moderation policy.", labels=["category"]
        )
        for category, count in sorted(refused.items()):
            refusals.add_metric([category], count)
        yield refusals
        yield SummaryMetricFamily(
            "kinema_job_seconds",
            "Seconds from first claim to completion of completed jobs.",
            count_value=int(n),
            sum_value=float(total or 0.0),
        )


def metrics_registry(sessions: sessionmaker[Session]) -> CollectorRegistry:
    """A registry of this app's collectors (not the process-global one, so apps stay separate)."""
    registry = CollectorRegistry()
    registry.register(QueueCollector(sessions))
    return registry


@router.get("/metrics", response_class=PlainTextResponse, responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    """Prometheus text format."""
    registry: CollectorRegistry = request.app.state.metrics  # set by create_app
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
