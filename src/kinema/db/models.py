"""Tables. Wire models (api/) and internal types (services/) are kept apart from these rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base for Kinema's tables."""


class VideoRow(Base):
    """One video job: the resource the API shows, plus the queue columns a worker claims it by.

    The queue lives on the same row so that every state change is a single-row update: a claim,
    a heartbeat, a completion and a cancellation can each be one conditional UPDATE.
    """

    __tablename__ = "videos"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # create | remix | edit | extend
    task: Mapped[str] = mapped_column(String(8))  # t2v | i2v | v2v
    model: Mapped[str] = mapped_column(String(128))
    prompt: Mapped[str] = mapped_column(Text)
    size: Mapped[str] = mapped_column(String(32))  # native "WxH" of the output
    seconds: Mapped[str] = mapped_column(String(16))  # what the Video object reports
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    num_frames: Mapped[int] = mapped_column(Integer)  # frames this job generates
    fps: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # seed, steps, guidance, ...
    remixed_from_video_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source_video_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # edits/extensions
    input_image_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    input_video_key: Mapped[str | None] = mapped_column(String(256), nullable=True)

    status: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)

    video_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    thumbnail_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    spritesheet_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    # Who asked: the API key (None for a browser session or the CLI) and the owner's cohort at the time,
    # which a cohort pause holds back.
    key_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    cohort: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Likenesses this job depicts: permission is checked again when a worker starts it.
    characters: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Likenesses whose data keys seal this job's input blobs (nested, one layer per likeness, in this
    # order): shredding any one of those keys makes the inputs unreadable. Empty: inputs stored plain.
    inputs_sealed_by: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Provenance: the opaque job reference in the C2PA manifest, and the 32-bit tag in the watermark.
    provenance_ref: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    watermark_tag: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)

    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    completed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    # Queue: the fencing token grows on every claim; only its current holder may write results.
    lease_token: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        Index("ix_videos_owner_id_id", "owner_id", "id"),
        Index("ix_videos_status_created", "status", "created_at"),
    )


class ModerationRefusalRow(Base):
    """A prompt refused by the moderation policy. The prompt itself is kept only when the category's
    policy allows it; otherwise only its SHA-256, so the record can be counted and matched, not read."""

    __tablename__ = "moderation_refusals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(16))  # create | remix | edit | extend
    category: Mapped[str] = mapped_column(String(64), index=True)
    policy_version: Mapped[str] = mapped_column(String(64))
    prompt_sha256: Mapped[str] = mapped_column(String(64))
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, index=True)


# -- accounts, keys, sessions, quotas, pause -------------------------------------------------------


class UserRow(Base):
    """An account. ``role`` is ``admin`` or ``member``; ``cohort`` picks default limits and pauses."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    role: Mapped[str] = mapped_column(String(16), default="member")
    cohort: Mapped[str] = mapped_column(String(64), default="default", index=True)
    limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # per-user overrides of cohort limits
    disabled_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    password_changed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Written first in every enqueue transaction: its row lock serializes one user's admissions.
    last_enqueue_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class CohortRow(Base):
    """A group of users (e.g. ``early-access``) with default limits. A user's cohort need not have a row."""

    __tablename__ = "cohorts"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float)


class InviteRow(Base):
    """A single-use invite bound to an email and a cohort. Only the code's SHA-256 is stored."""

    __tablename__ = "invites"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    cohort: Mapped[str] = mapped_column(String(64), index=True)
    created_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    used_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class ApiKeyRow(Base):
    """A per-user API key. Only the SHA-256 of the full key is stored; ``hint`` is its first characters."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(128))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    ip_allowlist: Mapped[list[str]] = mapped_column(JSON, default=list)
    limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # optional per-key limits
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_used_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    suspended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    suspend_reason: Mapped[str | None] = mapped_column(String(256), nullable=True)


class KeySightingRow(Base):
    """A network (``net``) or user agent (``agent``) a key was used from, and when last."""

    __tablename__ = "key_sightings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))
    value: Mapped[str] = mapped_column(String(256))
    first_seen: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ux_key_sightings", "key_id", "kind", "value", unique=True),)


class WebSessionRow(Base):
    """A browser session. The cookie value is never stored, only its SHA-256."""

    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    last_seen_at: Mapped[float] = mapped_column(Float)


class AlertRow(Base):
    """A security notice for a user (e.g. one of their keys was suspended); admins see all of them."""

    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    read_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class UsageChargeRow(Base):
    """Video-seconds charged for one job: inserted with the job (so charged once), ``refunded_at`` set
    by a conditional update when the job fails or is cancelled (so refunded at most once). Kept after
    the video is deleted, so deleting a finished video does not give its seconds back."""

    __tablename__ = "usage_charges"

    video_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seconds: Mapped[float] = mapped_column(Float)
    charged_at: Mapped[float] = mapped_column(Float)
    refunded_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (
        Index("ix_usage_owner_charged", "owner_id", "charged_at"),
        Index("ix_usage_key_charged", "key_id", "charged_at"),
    )


class PauseRow(Base):
    """Generation is paused for ``scope``: ``*`` (everyone) or a cohort name. No row: not paused."""

    __tablename__ = "pauses"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    paused_at: Mapped[float] = mapped_column(Float)
    paused_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(256), nullable=True)
    hold_running: Mapped[bool] = mapped_column(Boolean, default=False)


# -- likenesses (characters) -----------------------------------------------------------------------


class CharacterRow(Base):
    """A likeness: a real person, enrolled by that person, with the permissions they chose.

    The face descriptor and reference crops are stored only as AES-256-GCM ciphertext under the
    likeness's own data key (see :mod:`kinema.crypto`); ``descriptor`` holds that ciphertext, and the
    crops are blobs under ``characters/<id>/``.
    """

    __tablename__ = "characters"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64), unique=True)  # one likeness per account, its own
    name: Mapped[str] = mapped_column(String(64), unique=True)  # the @name used in prompts
    kind: Mapped[str] = mapped_column(String(16), default="human")
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | revoked
    visibility: Mapped[str] = mapped_column(String(16), default="private")  # private | users | everyone
    allowed_users: Mapped[list[str]] = mapped_column(JSON, default=list)
    permission_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    restrictions: Mapped[str | None] = mapped_column(Text, nullable=True)
    descriptor: Mapped[bytes] = mapped_column(LargeBinary)
    chip_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class ConsentRow(Base):
    """One revision of a likeness's consent. Immutable: a change appends a revision."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    character_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(64))
    revision: Mapped[int] = mapped_column(Integer)
    text_version: Mapped[str] = mapped_column(String(32))
    text_sha256: Mapped[str] = mapped_column(String(64))
    purposes: Mapped[list[str]] = mapped_column(JSON, default=list)
    retention_days: Mapped[int] = mapped_column(Integer)
    signature: Mapped[str] = mapped_column(String(128))  # the typed name
    change: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # what this revision changed
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ux_consents_revision", "character_id", "revision", unique=True),)


class CharacterUseRow(Base):
    """A job that used a likeness: shown to the person depicted (who, when, prompt, status)."""

    __tablename__ = "character_uses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    character_id: Mapped[str] = mapped_column(String(64), index=True)
    video_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(64))
    prompt: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)


class EnrolmentChallengeRow(Base):
    """A random head movement the enrolment clip must show; valid for a few minutes, used once."""

    __tablename__ = "enrolment_challenges"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    moves: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # uploads tried with it, refused ones included


# -- webhooks --------------------------------------------------------------------------------------


class WebhookEndpointRow(Base):
    """A user's webhook endpoint. The signing secret is stored only as AES-256-GCM ciphertext under the
    endpoint's own data key (see :mod:`kinema.services.webhooks`); the API returns it on create and
    rotation only."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(128))
    url: Mapped[str] = mapped_column(String(2048))
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    secret: Mapped[bytes] = mapped_column(LargeBinary)  # ciphertext
    secret_hint: Mapped[str] = mapped_column(String(32))
    # After a rotation that keeps the old secret for 24 h, deliveries carry both signatures until then.
    old_secret: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    old_secret_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(256), nullable=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class WebhookOutboxRow(Base):
    """One event owed to one endpoint. Written in the transaction that settles the video, so an event
    exists exactly when the state change does; ``event_id`` is the stable ``webhook-id`` of every try."""

    __tablename__ = "webhook_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64))
    endpoint_id: Mapped[str] = mapped_column(String(64), index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)  # the exact JSON body, identical on every try
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    delivered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    given_up_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ux_webhook_outbox_event_endpoint", "event_id", "endpoint_id", unique=True),
        Index("ix_webhook_outbox_due", "delivered_at", "given_up_at", "next_attempt_at"),
    )


class WebhookDeliveryRow(Base):
    """One delivery attempt, shown to the endpoint's owner."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[str] = mapped_column(String(64), index=True)
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float, index=True)


class AuditEntryRow(Base):
    """One audit event (see :mod:`kinema.audit.log`). ``leaf_hash`` is the RFC 6962 leaf hash of
    :func:`kinema.audit.log.canonical_entry_bytes`."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[float] = mapped_column(Float, index=True)
    actor: Mapped[str | None] = mapped_column(String(128), nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(256), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    leaf_hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpointRow(Base):
    """A signed checkpoint of the audit log (see :class:`kinema.audit.checkpoint.Checkpoint`)."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    size: Mapped[int] = mapped_column(Integer)
    root_hex: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Float)
    key_id: Mapped[str] = mapped_column(String(64))
    signature_hex: Mapped[str] = mapped_column(String(128))


class AuditHeadRow(Base):
    """The audit log's single row (id 1) whose lock serializes appends; ``next_seq`` is the next entry's seq."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    next_seq: Mapped[int] = mapped_column(Integer)
