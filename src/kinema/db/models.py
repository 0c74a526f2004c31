"""Tables. Wire models (api/) and internal types (services/) are kept apart from these rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Index, Integer, String, Text
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
