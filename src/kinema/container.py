"""Wiring: build every service once from settings, and run in-process workers.

This is the only place that knows which implementation backs each interface; everything else
receives its dependencies through constructors (services) or ``Annotated`` dependencies (API).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine as DbEngine
from sqlalchemy.orm import Session, sessionmaker

from kinema.audit.checkpoint import CheckpointSigner
from kinema.audit.log import AuditLog
from kinema.blobs import BlobStore, LocalBlobStore
from kinema.config import Settings
from kinema.db.session import make_engine, make_session_factory, upgrade_to_head
from kinema.engine.registry import ModelRegistry, builtin_specs
from kinema.engine.runtime import Engine
from kinema.moderation.checker import Moderator
from kinema.moderation.policy import load_policy
from kinema.queue.store import JobQueue
from kinema.queue.worker import Wakeup, Worker
from kinema.services.auth import Authenticator, StaticTokenAuthenticator
from kinema.services.generation import GenerationRunner
from kinema.services.moderation import PromptGuard
from kinema.services.provenance import ProvenanceService
from kinema.services.verification import VerificationService
from kinema.services.videos import UploadLimits, VideoService

log = logging.getLogger(__name__)


def build_registry(settings: Settings) -> ModelRegistry:
    """The model catalogue this deployment offers, with its aliases and default."""
    specs = builtin_specs()
    if settings.enabled_models is not None:
        wanted = set(settings.enabled_models) | {settings.default_model}
        specs = [s for s in specs if s.name in wanted]
    return ModelRegistry(specs, aliases=settings.resolved_aliases(), default=settings.default_model)


def build_provenance(settings: Settings) -> ProvenanceService:
    """The deployment's signing identity and watermark id (a local CA is created at first start)."""
    return ProvenanceService.from_folder(
        settings.resolved_provenance_dir,
        chain=settings.signing_chain,
        key=settings.signing_key,
        anchor=settings.signing_anchor,
        alg=settings.signing_alg,
        deployment_id=settings.deployment_id,
    )


@dataclass
class Container:
    """Every long-lived object of one Kinema process."""

    settings: Settings
    db: DbEngine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    registry: ModelRegistry
    engine: Engine
    queue: JobQueue
    videos: VideoService
    runner: GenerationRunner
    authenticator: Authenticator
    provenance: ProvenanceService
    verification: VerificationService
    audit: AuditLog
    wakeup: Wakeup = field(default_factory=Wakeup)
    metrics: Any = None  # prometheus CollectorRegistry, set by create_app
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: Settings, *, migrate: bool = True) -> Container:
        """Connect the database (migrating it to head), blobs, models, queue and services."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = make_engine(settings.resolved_database_url)
        if migrate:
            upgrade_to_head(db)
        sessions = make_session_factory(db)
        blobs = LocalBlobStore(settings.resolved_blob_dir)
        registry = build_registry(settings)
        engine = Engine(
            registry,
            settings.resolved_models_dir,
            memory_budget_bytes=int(settings.model_memory_budget_gb * 2**30),
            device=settings.device,
        )
        queue = JobQueue(sessions, lease_seconds=settings.lease_seconds, max_attempts=settings.max_attempts)
        limits = UploadLimits(
            max_bytes=settings.max_upload_bytes,
            max_image_pixels=settings.max_image_pixels,
            max_video_pixels=settings.max_video_pixels,
            max_video_frames=settings.max_video_frames,
            max_video_seconds=settings.max_video_seconds,
            max_video_total_pixels=settings.max_video_total_pixels,
            max_inference_steps=settings.max_inference_steps,
            max_prompt_chars=settings.max_prompt_chars,
        )
        wakeup = Wakeup()
        audit = AuditLog(sessions, CheckpointSigner.load_or_create(settings.data_dir / "audit" / "audit-signing.key"))
        policy = load_policy(settings.moderation_policy)  # a broken policy file stops the start here
        guard = PromptGuard(sessions, policy, Moderator(policy), audit)
        videos = VideoService(sessions, blobs, registry, limits, guard, audit, on_enqueue=wakeup.notify)
        provenance = build_provenance(settings)
        runner = GenerationRunner(
            sessions, queue, blobs, registry, engine, provenance, visible_label=settings.visible_label
        )
        auth = StaticTokenAuthenticator(settings.api_token.get_secret_value(), settings.api_token_owner)
        verification = VerificationService(sessions, provenance, settings.max_upload_bytes)
        return cls(
            settings,
            db,
            sessions,
            blobs,
            registry,
            engine,
            queue,
            videos,
            runner,
            auth,
            provenance,
            verification,
            audit,
            wakeup,
        )

    def make_worker(self, worker_id: str | None = None) -> Worker:
        """A worker bound to this process's queue and runner."""
        s = self.settings
        return Worker(
            self.queue,
            self.runner,
            worker_id=worker_id,
            poll_seconds=s.poll_seconds,
            heartbeat_seconds=s.heartbeat_seconds,
            progress_interval=s.progress_interval_seconds,
            wakeup=self.wakeup,
        )

    def start_workers(self, count: int) -> None:
        """Run ``count`` worker threads until :meth:`stop_workers`."""
        for i in range(count):
            worker = self.make_worker()
            t = threading.Thread(target=worker.run, args=(self._stop,), name=f"kinema-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        if count:
            log.info("started %d in-process worker thread(s)", count)

    def stop_workers(self, timeout: float = 30.0) -> None:
        """Ask worker threads to stop after their current job, and wait for them."""
        self._stop.set()
        self.wakeup.notify()
        for t in self._threads:
            t.join(timeout=timeout)
        self._threads.clear()

    def close(self) -> None:
        """Stop workers and release the database."""
        self.stop_workers()
        self.db.dispose()
