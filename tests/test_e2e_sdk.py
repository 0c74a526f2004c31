"""End to end: a real ``kinema serve`` on a port, the miniature model, and the official `openai` SDK.

Every variant is downloaded and decoded back; the MP4's frame count, size and fps are checked
against what the API promised.
"""

from __future__ import annotations

import asyncio
import io
import json
import warnings
from pathlib import Path

import av
import httpx
import numpy as np
import openai
import pytest
import sqlalchemy
from PIL import Image

from tests.conftest import client_for
from tests.factories import SMALL

warnings.filterwarnings("ignore", category=DeprecationWarning)

pytestmark = pytest.mark.slow
FPS = 8  # tiny-wan's native rate
FAST = {"num_inference_steps": 2}


def decode_mp4(data: bytes) -> tuple[int, int, int, float]:
    """(frames, width, height, fps) of an MP4, by decoding every frame."""
    with av.open(io.BytesIO(data)) as c:
        stream = c.streams.video[0]
        frames = list(c.decode(stream))
        return len(frames), frames[0].width, frames[0].height, float(stream.average_rate)


def by_id(video_id: str) -> dict[str, object]:
    """Keyword arguments that reference a completed video in edit/extend.

    openai 3.x refuses ``video={"id": ...}`` client-side (its multipart code expects a file at
    ``video``), so the reference goes through ``extra_body``: the SDK then sends ``video[id]``.
    """
    return {"video": openai.omit, "extra_body": {"video": {"id": video_id}, **FAST}}


def png_bytes(w: int = 120, h: int = 80) -> bytes:
    arr = np.zeros((h, w, 3), np.uint8)
    arr[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_full_video_lifecycle_through_the_sdk(db_url: str, kinema_server) -> None:  # type: ignore[no-untyped-def]
    server = kinema_server(db_url)
    client = client_for(server)

    # create_and_poll: hosted-API code unchanged (sora-2 alias, an OpenAI size), extras via extra_body.
    video = client.videos.create_and_poll(
        prompt="a red kite over a beach",
        model="sora-2",
        size="1280x720",
        seconds="4",
        extra_body={**FAST, "seed": 7},
    )
    assert video.status == "completed", video.error
    assert video.progress == 100 and video.model == "tiny-wan" and video.size == "256x160" and video.seconds == "4"
    assert video.completed_at is not None and video.completed_at >= video.created_at

    raw = client.videos.with_raw_response.retrieve(video.id)
    assert raw.headers["openai-poll-after-ms"] == "100"

    mp4 = client.videos.download_content(video.id).read()
    assert mp4[4:8] == b"ftyp"
    assert decode_mp4(mp4) == (33, 256, 160, FPS)  # 4 s x 8 fps + 1
    thumb = Image.open(io.BytesIO(client.videos.download_content(video.id, variant="thumbnail").read()))
    assert thumb.format == "WEBP" and thumb.size == (256, 160)
    sprite = Image.open(io.BytesIO(client.videos.download_content(video.id, variant="spritesheet").read()))
    assert sprite.format == "JPEG" and sprite.width > 256

    # Remix: same settings, new prompt, provenance link.
    remix = client.videos.remix(video.id, prompt="the same kite at night")
    assert remix.remixed_from_video_id == video.id and remix.status == "queued"
    remix = client.videos.poll(remix.id)
    assert remix.status == "completed", remix.error
    assert (remix.size, remix.seconds) == (video.size, video.seconds)

    # Edit by reference to a completed video, and by upload.
    edit = client.videos.poll(client.videos.edit(prompt="make it snow", **by_id(video.id)).id)
    assert edit.status == "completed", edit.error
    assert decode_mp4(client.videos.download_content(edit.id).read())[1:3] == (256, 160)
    upload = client.videos.edit(prompt="make it snow", video=("clip.mp4", mp4, "video/mp4"), extra_body=FAST)
    upload = client.videos.poll(upload.id)
    assert upload.status == "completed", upload.error

    # Extend: `seconds` in the request is the new part; in the response, the stitched total.
    ext = client.videos.extend(prompt="the kite lands", seconds="2", **by_id(video.id))
    assert ext.seconds == "6"
    ext = client.videos.poll(ext.id)
    assert ext.status == "completed", ext.error
    frames, w, h, fps = decode_mp4(client.videos.download_content(ext.id).read())
    assert (frames, w, h, fps) == (33 + 17 - 1, 256, 160, FPS)

    # Image-to-video from an uploaded first frame.
    i2v = client.videos.create_and_poll(
        prompt="it moves", input_reference=("f.png", png_bytes(), "image/png"), size=SMALL, seconds="2", extra_body=FAST
    )
    assert i2v.status == "completed", i2v.error

    # list with pagination: pages of 2 cover every video once, newest first.
    ids = {video.id, remix.id, edit.id, upload.id, ext.id, i2v.id}
    seen = [v.id for v in client.videos.list(limit=2)]  # auto-paginates through `after`
    assert len(seen) == len(ids) and set(seen) == ids
    first = client.videos.list(limit=2)
    assert len(first.data) == 2 and first.has_more is True
    assert [v.id for v in client.videos.list(order="asc", limit=100).data] == list(reversed(seen))

    # delete: the deleted shape, then 404 on everything, and the files are gone.
    deleted = client.videos.delete(video.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (video.id, True, "video.deleted")
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(video.id)
    with pytest.raises(openai.NotFoundError):
        client.videos.download_content(video.id)
    blob_dir = Path(server.log).parent / "blobs"
    assert not (blob_dir / "videos" / video.id).exists()
    assert (blob_dir / "videos" / remix.id).exists()


def test_async_client(db_url: str, kinema_server) -> None:  # type: ignore[no-untyped-def]
    server = kinema_server(db_url)

    async def scenario() -> None:
        client = openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0)
        # One clip per speed preset; turbo takes its distilled step count and no guidance unless told otherwise.
        speeds = [{**FAST, "speed": "exact"}, {**FAST, "speed": "fast"}, {"speed": "turbo"}]
        videos = await asyncio.gather(
            *[
                client.videos.create_and_poll(prompt=f"clip {i}", size=SMALL, seconds="1", extra_body=extra)
                for i, extra in enumerate(speeds)
            ]
        )
        assert [v.status for v in videos] == ["completed"] * 3
        with sqlalchemy.create_engine(db_url).connect() as db:
            stored = dict(db.execute(sqlalchemy.text("SELECT id, params FROM videos")).all())
        params = [p if isinstance(p, dict) else json.loads(p) for p in (stored[v.id] for v in videos)]
        assert [(p["speed"], p["num_inference_steps"]) for p in params] == [("exact", 2), ("fast", 2), ("turbo", 2)]
        assert params[2]["guidance_scale"] == 1.0
        page = await client.videos.list(limit=10)
        assert {v.id for v in page.data} == {v.id for v in videos}
        content = await client.videos.download_content(videos[0].id)
        assert decode_mp4(content.read()) == (9, 96, 64, FPS)
        await client.close()

    asyncio.run(scenario())


def test_wrong_token_and_ops_endpoints(tmp_path: Path, kinema_server) -> None:  # type: ignore[no-untyped-def]
    server = kinema_server(f"sqlite:///{tmp_path / 'k.db'}", workers=0)
    bad = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="wrong-token", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        bad.videos.list()
    assert err.value.code == "invalid_api_key"
    assert httpx.get(f"{server.base_url}/v1/videos").status_code == 401

    client = client_for(server)
    client.videos.create(prompt="waits in the queue", seconds="1")
    assert httpx.get(f"{server.base_url}/readyz").json() == {"status": "ready"}
    metrics = httpx.get(f"{server.base_url}/metrics").text
    assert 'kinema_jobs{status="queued"} 1.0' in metrics
    assert "kinema_queue_depth 1.0" in metrics
    assert "kinema_job_seconds_count" in metrics
    docs = httpx.get(f"{server.base_url}/openapi.json").json()
    assert "/v1/videos" in docs["paths"] and "/v1/videos/{video_id}/cancel" in docs["paths"]


def test_benign_prompt_with_a_blocked_word_inside_another_passes(tmp_path: Path, kinema_server) -> None:  # type: ignore[no-untyped-def]
    server = kinema_server(f"sqlite:///{tmp_path / 'k.db'}", workers=0)
    video = client_for(server).videos.create(prompt="Al Gore gives a talk in a glass classroom")
    assert video.status == "queued"


def test_not_ready_is_a_409_without_sdk_retries(tmp_path: Path, kinema_server) -> None:  # type: ignore[no-untyped-def]
    server = kinema_server(f"sqlite:///{tmp_path / 'k.db'}", workers=0)
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key)  # default retries: 2
    video = client.videos.create(prompt="waits", seconds="1")
    with pytest.raises(openai.ConflictError) as err:
        client.videos.download_content(video.id)
    assert err.value.code == "video_not_ready"
    log = server.output()
    assert log.count(f"GET /v1/videos/{video.id}/content") == 1  # refused once, not retried
