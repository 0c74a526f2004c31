"""The local blob store: atomic writes, prefixes, and keys that cannot escape the root."""

from __future__ import annotations

from pathlib import Path

import pytest

from kinema.blobs import BlobNotFound, LocalBlobStore


def test_put_get_list_delete(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.put("videos/v1/1/video.mp4", b"abc")
    store.put("videos/v1/2/video.mp4", b"defg")
    assert store.get("videos/v1/1/video.mp4") == b"abc"
    assert store.size("videos/v1/2/video.mp4") == 4
    assert b"".join(store.iter_chunks("videos/v1/2/video.mp4", chunk_size=1)) == b"defg"
    assert store.list_prefix("videos/v1") == ["videos/v1/1/video.mp4", "videos/v1/2/video.mp4"]
    assert store.delete("videos/v1/2/video.mp4") and not store.delete("videos/v1/2/video.mp4")
    assert store.delete_prefix("videos/v1") == 1
    assert not store.exists("videos/v1/1/video.mp4")
    with pytest.raises(BlobNotFound):
        store.get("videos/v1/1/video.mp4")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # no temp files left behind


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "/abs/path", "a//b", "a/b c", ""])
def test_keys_cannot_escape_the_root(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        LocalBlobStore(tmp_path).put(key, b"x")
