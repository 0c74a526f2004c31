"""Rows that tests insert directly, with the values the service would give them."""

from __future__ import annotations

from typing import Any

from kinema.db.models import VideoRow


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
