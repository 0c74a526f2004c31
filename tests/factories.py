"""Rows that tests insert directly, with the values the service would give them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from kinema.db.models import VideoRow
from kinema.db.session import make_engine, make_session_factory

SMALL = "96x64"
"""tiny-wan's small size, for jobs whose frames nobody looks at: a fifth of the default 256x160's cost."""


def video_row(video_id: str, **overrides: Any) -> VideoRow:
    """A queued tiny-wan text-to-video job as the service would insert it; ``overrides`` set any column."""
    values: dict[str, Any] = {
        "id": video_id,
        "owner_id": "o",
        "kind": "create",
        "task": "t2v",
        "model": "tiny-wan",
        "prompt": "p",
        "size": "96x64",
        "seconds": "1",
        "width": 96,
        "height": 64,
        "num_frames": 9,
        "fps": 8,
        "params": {},
        "status": "queued",
        "progress": 0,
        "cancel_requested": False,
        "created_at": 1.0,
        "lease_token": 0,
        "attempts": 0,
    }
    values.update(overrides)
    return VideoRow(**values)


def db_row(db_url: str, video_id: str) -> VideoRow:
    """The video's row as the database holds it now, read through a connection of its own."""
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as s:
            row = s.scalar(select(VideoRow).where(VideoRow.id == video_id))
            assert row is not None
            return row
    finally:
        engine.dispose()
