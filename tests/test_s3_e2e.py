"""End to end on S3: a real ``kinema serve`` whose blobs live in a bucket of a real S3 server process
(moto, started here), driven by the official `openai` SDK; then the store goes down and comes back.

moto does not check request signatures (see tests/blobs/moto_server.py); everything else here is the
S3 REST protocol over HTTP, as against AWS.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from tests.blobs.moto_server import CREDENTIALS, REGION, MotoServer
from tests.conftest import Proc, client_for, provision, start_server
from tests.test_e2e_sdk import FAST, by_id, decode_mp4

warnings.filterwarnings("ignore", category=DeprecationWarning)

pytestmark = pytest.mark.slow
BUCKET = "kinema-e2e"
# tiny-wan's smallest output: the bytes' path through S3 is the point here, not the pictures.
SMALL: dict[str, Any] = {"model": "sora-2", "size": "96x64", "seconds": "1", "extra_body": FAST}
PREFIX = "deploy-1"


@dataclass
class Stack:
    moto: MotoServer
    server: Proc
    data_dir: Path
    env: dict[str, str]
    models_dir: Path
    completed: str = ""  # a completed video, left by the first test for the next ones

    def keys(self, video_id: str) -> list[str]:
        """Object names (after ``<prefix>/``) the bucket holds for one video, inputs and outputs."""
        found = self.moto.keys(BUCKET, f"{PREFIX}/videos/{video_id}/") + self.moto.keys(
            BUCKET, f"{PREFIX}/inputs/{video_id}/"
        )
        return [k.split("/", 1)[1] for k in found]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Stack]:
    """One moto server and one kinema server (SQLite, one worker) for the whole module."""
    tmp = tmp_path_factory.mktemp("s3e2e")
    moto = MotoServer(tmp / "moto.log")
    moto.start()
    moto.create_bucket(BUCKET)
    env = {
        **CREDENTIALS,  # boto3's usual chain: the environment
        "KINEMA_BLOB_URL": f"s3://{BUCKET}/{PREFIX}",
        "KINEMA_S3_ENDPOINT_URL": moto.url,
        "KINEMA_S3_REGION": REGION,
        "KINEMA_S3_SSE": "AES256",
        "KINEMA_S3_TIMEOUT_SECONDS": "5",
    }
    server = start_server(tmp / "data", f"sqlite:///{tmp / 'kinema.db'}", models_dir, **env)
    try:
        yield Stack(moto, server, tmp / "data", env, models_dir)
    finally:
        server.stop()
        moto.stop()


def test_sdk_flow_with_blobs_in_s3(stack: Stack) -> None:
    client = client_for(stack.server)
    video = client.videos.create_and_poll(prompt="a red kite over a beach", **SMALL)
    assert video.status == "completed", video.error
    token = stack.keys(video.id)[0].split("/")[2]
    assert stack.keys(video.id) == [
        f"videos/{video.id}/{token}/{name}" for name in ("spritesheet.jpg", "thumbnail.webp", "video.mp4")
    ]
    head = stack.moto.client().head_object(Bucket=BUCKET, Key=f"{PREFIX}/videos/{video.id}/{token}/video.mp4")
    assert head["ServerSideEncryption"] == "AES256"

    mp4 = client.videos.download_content(video.id).read()
    assert decode_mp4(mp4) == (9, 96, 64, 8)  # 1 s x 8 fps + 1
    assert len(mp4) == head["ContentLength"]
    thumb = Image.open(io.BytesIO(client.videos.download_content(video.id, variant="thumbnail").read()))
    assert thumb.format == "WEBP" and thumb.size == (96, 64)
    sprite = Image.open(io.BytesIO(client.videos.download_content(video.id, variant="spritesheet").read()))
    assert sprite.format == "JPEG" and sprite.width > 96

    remix = client.videos.poll(client.videos.remix(video.id, prompt="the same kite at night").id)
    assert remix.status == "completed", remix.error
    # An edit snapshots its source clip as an input blob, which the worker reads back from the bucket.
    edit = client.videos.edit(prompt="make it snow", **by_id(video.id))  # type: ignore[arg-type]
    assert stack.keys(edit.id)[0] == f"inputs/{edit.id}/source.mp4"
    edit = client.videos.poll(edit.id)
    assert edit.status == "completed", edit.error
    assert decode_mp4(client.videos.download_content(edit.id).read())[0] > 0

    assert client.videos.delete(video.id).deleted
    assert client.videos.delete(edit.id).deleted
    assert stack.keys(video.id) == [] and stack.keys(edit.id) == []  # gone from the bucket, inputs too
    assert len(stack.keys(remix.id)) == 3
    stack.completed = remix.id
    with pytest.raises(openai.NotFoundError):
        client.videos.download_content(video.id)
    assert not (stack.data_dir / "blobs" / "videos").exists()  # nothing went to the local folder


def test_presigned_downloads_redirect_to_the_bucket(stack: Stack) -> None:
    # A second, API-only server on the same database and bucket, with presigned downloads on.
    api = start_server(
        stack.data_dir, stack.server.db_url, stack.models_dir, workers=0, **stack.env, KINEMA_S3_PRESIGN_SECONDS="60"
    )
    try:
        url = f"{api.base_url}/v1/videos/{stack.completed}/content?variant=thumbnail"
        resp = httpx.get(url, headers={"Authorization": f"Bearer {api.api_key}"})
        assert resp.status_code == 307 and resp.headers["cache-control"] == "no-store"
        location = resp.headers["location"]
        assert location.startswith(f"{stack.moto.url}/{BUCKET}/{PREFIX}/videos/{stack.completed}/")
        assert "X-Amz-Expires=60" in location and CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in location
        # The owner check still comes first: another user's video is a 404 and no URL.
        stranger = provision(stack.data_dir, stack.server.db_url, "stranger@example.com")
        assert httpx.get(url, headers={"Authorization": f"Bearer {stranger}"}).status_code == 404
        # The SDK follows the redirect (without its API key: httpx drops Authorization across origins).
        thumb = client_for(api).videos.download_content(stack.completed, variant="thumbnail").read()
        assert Image.open(io.BytesIO(thumb)).format == "WEBP"
        assert httpx.get(location).content == thumb
    finally:
        api.stop()


def test_store_down_then_back(stack: Stack) -> None:
    client = client_for(stack.server)
    before = client.videos.retrieve(stack.completed)
    assert before.status == "completed"

    stack.moto.stop()
    try:
        with pytest.raises(openai.APIStatusError) as info:
            client.videos.download_content(before.id)
        assert info.value.status_code == 503 and info.value.code == "storage_unavailable"
        assert info.value.response.headers["retry-after"] == "5"
        ready = httpx.get(f"{stack.server.base_url}/readyz")
        assert ready.status_code == 503 and ready.json()["error"]["code"] == "not_ready"
        # Deleting while the store is down refuses, and keeps the video (and so the retry) alive.
        with pytest.raises(openai.APIStatusError) as info:
            client.videos.delete(before.id)
        assert info.value.status_code == 503
        assert client.videos.retrieve(before.id).status == "completed"

        # A job whose outputs cannot be saved fails with a code that says so, and serves nothing.
        failed = client.videos.create_and_poll(prompt="a storm at sea", **SMALL)
        assert failed.status == "failed" and failed.error is not None
        assert failed.error.code == "storage_unavailable", failed.error
        with pytest.raises(openai.ConflictError):
            client.videos.download_content(failed.id)
    finally:
        stack.moto.start()  # same port; moto keeps buckets in memory, so it comes back empty
    stack.moto.create_bucket(BUCKET)

    after = client.videos.create_and_poll(prompt="a calm sea", **SMALL)
    assert after.status == "completed", after.error
    assert decode_mp4(client.videos.download_content(after.id).read())[0] > 0
    assert httpx.get(f"{stack.server.base_url}/readyz").status_code == 200
    # The objects written before the restart died with moto's memory: a clean 404, not a 500.
    with pytest.raises(openai.NotFoundError):
        client.videos.download_content(before.id)
    assert client.videos.delete(failed.id).deleted
