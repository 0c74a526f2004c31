"""Wiring: build every service once from settings, and run in-process workers.

This is the only place that knows which implementation backs each interface; everything else
receives its dependencies through constructors (services) or ``Annotated`` dependencies (API).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import Engine as DbEngine
from sqlalchemy.orm import Session, sessionmaker

from kinema.audit.checkpoint import CheckpointSigner
from kinema.audit.log import AuditLog
from kinema.blobs import BlobStore, LocalBlobStore
from kinema.config import Settings
from kinema.crypto import SqliteDataKeyStore, open_file_vault
from kinema.db.session import make_engine, make_session_factory, upgrade_to_head
from kinema.engine.registry import ModelRegistry, builtin_specs
from kinema.engine.runtime import Engine
from kinema.faces import FaceAnalyzer
from kinema.moderation.checker import Moderator
from kinema.moderation.policy import load_policy
from kinema.netaddr import IPNetwork, parse_networks
from kinema.queue.store import JobQueue
from kinema.queue.worker import Wakeup, Worker
from kinema.services.accounts import (
    Alerts,
    Cohorts,
    DefaultLimits,
    Invites,
    PasswordHashing,
    PasswordPolicy,
    Passwords,
    Users,
    WebSessions,
)
from kinema.services.characters import Enrolment, LikenessErasure, Likenesses, LikenessUse
from kinema.services.generation import GenerationRunner
from kinema.services.keyguard import KeyGuard
from kinema.services.keys import KeyService
from kinema.services.mediagate import MediaGate
from kinema.services.moderation import PromptGuard
from kinema.services.pause import PauseService
from kinema.services.privacy import PrivacyService
from kinema.services.provenance import ProvenanceService
from kinema.services.quotas import Admission, RateLimiter
from kinema.services.uploads import UploadLimits
from kinema.services.verification import VerificationService
from kinema.services.videos import VideoService
from kinema.services.webhooks import DeliveryPolicy, WebhookService, record_video_events

log = logging.getLogger(__name__)


def build_registry(settings: Settings) -> ModelRegistry:
    """The model catalogue this deployment offers, with its aliases and default."""
    specs = builtin_specs()
    if settings.enabled_models is not None:
        wanted = set(settings.enabled_models) | {settings.default_model}
        specs = [s for s in specs if s.name in wanted]
    return ModelRegistry(specs, aliases=settings.resolved_aliases(), default=settings.default_model)


def build_blobs(settings: Settings) -> BlobStore:
    """The S3-compatible bucket of ``blob_url`` if set, else the local blob folder."""
    if settings.blob_url is None:
        return LocalBlobStore(settings.resolved_blob_dir)
    try:
        from kinema.blobs.s3 import S3BlobStore
    except ImportError as exc:  # boto3 comes with the `s3` extra
        raise RuntimeError("KINEMA_BLOB_URL is an s3:// URL but boto3 is missing: pip install 'kinema[s3]'") from exc
    return S3BlobStore.from_url(
        settings.blob_url,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        sse=settings.s3_sse,
        kms_key_id=settings.s3_kms_key_id,
        presign_seconds=settings.s3_presign_seconds,
        timeout_seconds=settings.s3_timeout_seconds,
    )


def webhook_policy(settings: Settings) -> DeliveryPolicy:
    """Where webhooks may go and how they are retried (http only in dev mode unless set)."""
    allow_http = settings.webhook_allow_http
    return DeliveryPolicy(
        allow_http=settings.mode == "dev" if allow_http is None else allow_http,
        allow_private=settings.webhook_allow_private,
        max_attempts=settings.webhook_max_attempts,
        backoff_seconds=settings.webhook_backoff_seconds,
        backoff_max_seconds=settings.webhook_backoff_max_seconds,
        disable_after_failures=settings.webhook_disable_after_failures,
        timeout_seconds=settings.webhook_timeout_seconds,
        max_response_bytes=settings.webhook_max_response_bytes,
    )


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


@dataclass(kw_only=True)
class Container:
    """Every long-lived object of one Kinema process (built by keyword only: :meth:`from_settings`)."""

    settings: Settings
    db: DbEngine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    registry: ModelRegistry
    engine: Engine
    queue: JobQueue
    videos: VideoService
    runner: GenerationRunner
    provenance: ProvenanceService
    verification: VerificationService
    audit: AuditLog
    users: Users
    passwords: Passwords
    web_sessions: WebSessions
    invites: Invites
    cohorts: Cohorts
    alerts: Alerts
    keys: KeyService
    keyguard: KeyGuard
    ratelimiter: RateLimiter
    pause: PauseService
    trusted_proxies: tuple[IPNetwork, ...]
    enrolment: Enrolment
    likenesses: Likenesses
    likeness_erasure: LikenessErasure
    likeness_use: LikenessUse
    privacy: PrivacyService
    webhooks: WebhookService
    wakeup: Wakeup = field(default_factory=Wakeup)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _workers: list[tuple[Worker, threading.Thread]] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: Settings, *, migrate: bool = True) -> Container:
        """Connect the database (migrating it to head), blobs, models, queue and services."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = make_engine(settings.resolved_database_url)
        if migrate:
            upgrade_to_head(db)
        sessions = make_session_factory(db)
        blobs = build_blobs(settings)
        registry = build_registry(settings)
        engine = Engine(
            registry=registry,
            models_dir=settings.resolved_models_dir,
            memory_budget_bytes=int(settings.model_memory_budget_gb * 2**30),
            device=settings.device,
            offload=settings.model_offload,
        )
        queue = JobQueue(
            sessions,
            lease_seconds=settings.lease_seconds,
            max_attempts=settings.max_attempts,
            affinity_max_wait_seconds=settings.affinity_max_wait_seconds,
            on_settled=record_video_events,  # webhook events commit with the job's final state
        )
        limits = UploadLimits(
            max_bytes=settings.max_upload_bytes,
            max_image_pixels=settings.max_image_pixels,
            max_video_pixels=settings.max_video_pixels,
            max_video_frames=settings.max_video_frames,
            max_video_seconds=settings.max_video_seconds,
            max_video_total_pixels=settings.max_video_total_pixels,
            max_inference_steps=settings.max_inference_steps,
            max_prompt_chars=settings.max_prompt_chars,
            gate=MediaGate(
                slots=settings.media_slots, queue=settings.media_queue, wait_seconds=settings.media_queue_seconds
            ),
        )
        wakeup = Wakeup()
        audit = AuditLog(
            sessions, signer=CheckpointSigner.load_or_create(settings.data_dir / "audit" / "audit-signing.key")
        )
        policy = load_policy(settings.moderation_policy)  # a broken policy file stops the start here
        guard = PromptGuard(sessions, policy=policy, moderator=Moderator(policy), audit=audit)
        pause = PauseService(sessions, audit=audit, retry_after=settings.pause_retry_after_seconds)
        vault = open_file_vault(settings.resolved_master_key, SqliteDataKeyStore(settings.resolved_key_store))
        faces = FaceAnalyzer(settings.face_models_dir)
        likeness_erasure = LikenessErasure(sessions, blobs=blobs, vault=vault, audit=audit)
        enrolment = Enrolment(
            sessions,
            blobs=blobs,
            vault=vault,
            faces=faces,
            audit=audit,
            uploads=limits,
            erasure=likeness_erasure,
            challenge_ttl_seconds=settings.challenge_ttl_seconds,
            challenge_max_attempts=settings.challenge_max_attempts,
            max_retention_days=settings.likeness_retention_days,
        )
        likeness_use = LikenessUse(
            sessions, blobs=blobs, vault=vault, faces=faces, unknown_faces=settings.unknown_faces
        )
        videos = VideoService(
            sessions,
            blobs=blobs,
            registry=registry,
            limits=limits,
            guard=guard,
            audit=audit,
            on_enqueue=wakeup.notify,
            admission=Admission(),
            pause=pause,
            characters=likeness_use,
            on_settled=record_video_events,
        )
        provenance = build_provenance(settings)
        webhooks = WebhookService(sessions, vault=vault, policy=webhook_policy(settings), audit=audit)
        runner = GenerationRunner(
            sessions,
            queue=queue,
            blobs=blobs,
            registry=registry,
            engine=engine,
            provenance=provenance,
            visible_label=settings.visible_label,
            pause=pause,
            characters=likeness_use,
        )
        verification = VerificationService(
            sessions, provenance=provenance, max_bytes=settings.max_upload_bytes, gate=limits.gate
        )
        hashing = PasswordHashing(
            PasswordPolicy(
                min_length=settings.password_min_length,
                memory_kib=settings.password_hash_memory_kib,
                time_cost=settings.password_hash_time_cost,
                parallelism=settings.password_hash_parallelism,
            )
        )
        defaults = DefaultLimits(
            requests_per_minute=settings.default_requests_per_minute,
            concurrent_jobs=settings.default_concurrent_jobs,
            video_seconds_per_day=settings.default_video_seconds_per_day,
        )
        users = Users(sessions, audit=audit, hashing=hashing, defaults=defaults)
        web_sessions = WebSessions(
            sessions,
            audit=audit,
            users=users,
            hashing=hashing,
            idle_seconds=settings.session_idle_seconds,
            absolute_seconds=settings.session_absolute_seconds,
        )
        keys = KeyService(sessions, audit=audit, users=users)
        storage = settings.redis_url or "memory://"
        keyguard = KeyGuard(
            sessions,
            audit=audit,
            window_seconds=settings.keyguard_window_seconds,
            max_networks=settings.keyguard_max_networks,
            max_agents=settings.keyguard_max_agents,
            max_requests_per_minute=settings.keyguard_max_requests_per_minute,
            ipv4_prefix=settings.keyguard_ipv4_prefix,
            ipv6_prefix=settings.keyguard_ipv6_prefix,
            limiter_storage_uri=storage,
        )
        return cls(
            settings=settings,
            db=db,
            sessions=sessions,
            blobs=blobs,
            registry=registry,
            engine=engine,
            queue=queue,
            videos=videos,
            runner=runner,
            provenance=provenance,
            verification=verification,
            audit=audit,
            users=users,
            passwords=Passwords(sessions, audit=audit, users=users, hashing=hashing),
            web_sessions=web_sessions,
            invites=Invites(sessions, audit=audit, hashing=hashing, ttl_seconds=settings.invite_ttl_seconds),
            cohorts=Cohorts(sessions, audit=audit, users=users, defaults=defaults),
            alerts=Alerts(sessions),
            keys=keys,
            keyguard=keyguard,
            ratelimiter=RateLimiter(storage),
            pause=pause,
            trusted_proxies=parse_networks(settings.trusted_proxies),
            enrolment=enrolment,
            likenesses=Likenesses(sessions, audit=audit),
            likeness_erasure=likeness_erasure,
            likeness_use=likeness_use,
            privacy=PrivacyService(
                sessions, blobs=blobs, videos=videos, characters=likeness_erasure, audit=audit, webhooks=webhooks
            ),
            webhooks=webhooks,
            wakeup=wakeup,
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
            prefer_models=self.engine.loaded_models,
            overlap=s.finish_overlap,
        )

    def sweep(self) -> list[str]:
        """Enforce the retention policy once: delete likenesses past their retention."""
        s = self.settings
        return self.likeness_erasure.sweep(
            last_use_days=s.likeness_retention_days, revoked_days=s.likeness_revoked_retention_days
        )

    def _sweep_forever(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                gone = self.sweep()
                if gone:
                    log.info("retention: deleted %d likeness(es)", len(gone))
            except Exception:  # the next round tries again
                log.exception("retention sweep failed")

    def start_sweeper(self, interval: float = 3600.0) -> None:
        """Run the retention sweep now, then every ``interval`` seconds until :meth:`stop_workers`."""
        try:
            self.sweep()
        except Exception:
            log.exception("retention sweep failed")
        t = threading.Thread(target=self._sweep_forever, args=(interval,), name="kinema-sweeper", daemon=True)
        t.start()
        self._threads.append(t)

    def start_webhooks(self) -> None:
        """Deliver due webhook events in a thread until :meth:`stop_workers` (any process may: the outbox
        is claimed row by row)."""
        t = threading.Thread(
            target=self.webhooks.run,
            args=(self._stop, self.settings.webhook_poll_seconds),
            name="kinema-webhooks",
            daemon=True,
        )
        t.start()
        self._threads.append(t)

    def start_workers(self, count: int) -> None:
        """Run ``count`` worker threads (and, with any, a webhook delivery thread) until :meth:`stop_workers`."""
        for i in range(count):
            worker = self.make_worker()
            t = threading.Thread(target=worker.run, args=(self._stop,), name=f"kinema-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
            self._workers.append((worker, t))
        if count:
            self.start_webhooks()
            log.info("started %d in-process worker thread(s)", count)

    def stop_workers(self, grace: float | None = None) -> None:
        """Ask worker threads to stop after their current job and wait for them; a job still running after
        ``grace`` seconds (default: the ``shutdown_grace_seconds`` setting) goes back to the queue, so the next
        worker runs it from the start instead of waiting for its lease to expire."""
        self._stop.set()
        self.wakeup.notify()
        deadline = time.monotonic() + (self.settings.shutdown_grace_seconds if grace is None else grace)
        for t in self._threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        for worker, t in self._workers:
            if t.is_alive():
                worker.release()  # fenced: a job that finished meanwhile is not touched
        for t in self._threads:
            t.join(timeout=10.0)  # a released job stops at its next step
        self._threads.clear()
        self._workers.clear()

    def close(self) -> None:
        """Stop workers and release the database."""
        self.stop_workers()
        self.db.dispose()
