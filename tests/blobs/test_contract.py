"""The BlobStore contract, run against every implementation: a local folder and an S3 bucket (moto)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kinema.blobs import BlobNotFound, BlobStore, LocalBlobStore
from kinema.blobs.s3 import S3BlobStore
from tests.blobs.moto_server import MotoServer


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path)
    moto: MotoServer = request.getfixturevalue("moto")
    bucket: str = request.getfixturevalue("bucket")
    return S3BlobStore(moto.client(), bucket, "kinema")


def test_put_get_list_delete(store: BlobStore) -> None:
    store.put("videos/v1/1/video.mp4", b"abc")
    store.put("videos/v1/2/video.mp4", b"defg")
    store.put("videos/v10/1/video.mp4", b"not under videos/v1/")
    assert store.get("videos/v1/1/video.mp4") == b"abc"
    assert store.size("videos/v1/2/video.mp4") == 4
    assert b"".join(store.iter_chunks("videos/v1/2/video.mp4", chunk_size=1)) == b"defg"
    assert store.list_prefix("videos/v1") == ["videos/v1/1/video.mp4", "videos/v1/2/video.mp4"]
    assert store.delete("videos/v1/2/video.mp4") and not store.delete("videos/v1/2/video.mp4")
    assert store.delete_prefix("videos/v1") == 1
    assert store.delete_prefix("videos/v1") == 0
    assert not store.exists("videos/v1/1/video.mp4") and store.exists("videos/v10/1/video.mp4")
    assert store.list_prefix("videos/v10") == ["videos/v10/1/video.mp4"]


def test_overwrite_replaces_the_whole_blob(store: BlobStore) -> None:
    store.put("inputs/v1/source.mp4", b"x" * 1000)
    store.put("inputs/v1/source.mp4", b"short")
    assert store.get("inputs/v1/source.mp4") == b"short" and store.size("inputs/v1/source.mp4") == 5


def test_missing_blob(store: BlobStore) -> None:
    for read in (store.get, store.size, store.iter_chunks):
        with pytest.raises(BlobNotFound):
            read("videos/nope/1/video.mp4")  # type: ignore[operator]
    assert not store.exists("videos/nope/1/video.mp4")
    assert store.list_prefix("videos/nope") == []


def test_downloads_are_streamed_by_the_server(store: BlobStore) -> None:
    assert store.download_url("videos/v1/1/video.mp4", filename="v1.mp4", media_type="video/mp4") is None


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "/abs/path", "a//b", "a/b c", ""])
def test_keys_are_checked(store: BlobStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        store.put(key, b"x")
    with pytest.raises(ValueError, match="invalid blob key"):
        store.get(key)
