"""The S3 blob store against a real S3 server process (moto): layout, streaming, encryption, failures.

moto does not check signatures, so nothing here shows that a wrong key or a tampered presigned URL is
refused; that is AWS's (or MinIO's) job and is not tested by Kinema.
"""

from __future__ import annotations

import time

import httpx
import pytest
from pydantic import ValidationError

from kinema.blobs import BlobStoreUnavailable
from kinema.blobs.s3 import S3BlobStore, parse_s3_url
from kinema.config import Settings
from tests.blobs.moto_server import CREDENTIALS, REGION, CuttingProxy, MotoServer, s3_client
from tests.conftest import free_port

MiB = 2**20


def test_objects_live_under_the_prefix(moto: MotoServer, bucket: str, s3_credentials: None) -> None:
    store = S3BlobStore.from_url(f"s3://{bucket}/tenant/a/", endpoint_url=moto.url, region=REGION)
    store.put("videos/v1/1/video.mp4", b"abc")
    assert moto.keys(bucket) == ["tenant/a/videos/v1/1/video.mp4"]
    assert store.list_prefix("videos") == ["videos/v1/1/video.mp4"]
    bare = S3BlobStore.from_url(f"s3://{bucket}", endpoint_url=moto.url, region=REGION)
    assert bare.get("tenant/a/videos/v1/1/video.mp4") == b"abc"
    assert parse_s3_url("s3://my.bucket-1/x/y/") == ("my.bucket-1", "x/y")
    for bad in ("s3://", "s3://UPPER/x", "http://bucket/x", "s3://bucket/../x"):
        with pytest.raises(ValueError):
            parse_s3_url(bad)


def test_downloads_stream_in_chunks(moto: MotoServer, bucket: str, s3_credentials: None) -> None:
    store = S3BlobStore.from_url(f"s3://{bucket}", endpoint_url=moto.url, region=REGION)
    data = bytes(range(256)) * (10 * 1024)  # 2.5 MiB
    store.put("videos/v1/1/video.mp4", data)
    chunks = store.iter_chunks("videos/v1/1/video.mp4", chunk_size=MiB)
    first = next(chunks)
    assert len(first) == MiB  # one chunk at a time, not the whole object
    rest = list(chunks)
    assert [len(c) for c in rest] == [MiB, MiB // 2] and first + b"".join(rest) == data


@pytest.mark.parametrize("sse,kms_key", [("AES256", None), ("aws:kms", "alias/kinema-test")])
def test_server_side_encryption_is_asked_for_every_object(
    moto: MotoServer, bucket: str, sse: str, kms_key: str | None
) -> None:
    client = moto.client()
    store = S3BlobStore(client, bucket, sse=sse, kms_key_id=kms_key, multipart_threshold=8 * MiB)  # type: ignore[arg-type]
    store.put("small", b"x")
    store.put("large", b"y" * (9 * MiB))  # multipart: 8 MiB + 1 MiB
    for key in ("small", "large"):
        head = client.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == sse
        if kms_key:
            assert kms_key in head["SSEKMSKeyId"]
    assert store.size("large") == 9 * MiB and store.get("large")[-3:] == b"yyy"


def test_sse_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="aws:kms"):
        S3BlobStore(None, "b", sse="AES256", kms_key_id="k")
    with pytest.raises(ValidationError, match="KINEMA_S3_KMS_KEY_ID"):
        Settings(mode="dev", s3_sse="AES256", s3_kms_key_id="k")
    with pytest.raises(ValidationError, match="s3_sse"):
        Settings(mode="dev", s3_sse="aes")
    with pytest.raises(ValidationError, match="blob_url"):
        Settings(mode="dev", blob_url="https://bucket.example/x")
    assert Settings(mode="dev", blob_url="s3://kinema-out/prod").blob_url == "s3://kinema-out/prod"


def test_a_missing_bucket_is_unavailable_not_missing(moto: MotoServer, s3_credentials: None) -> None:
    store = S3BlobStore.from_url("s3://no-such-bucket-kinema", endpoint_url=moto.url, region=REGION)
    with pytest.raises(BlobStoreUnavailable, match="NoSuchBucket"):
        store.get("videos/v1/1/video.mp4")
    with pytest.raises(BlobStoreUnavailable):
        store.put("videos/v1/1/video.mp4", b"x")


def test_a_store_that_is_down_raises_unavailable_quickly(s3_credentials: None) -> None:
    store = S3BlobStore.from_url(
        "s3://kinema-down", endpoint_url=f"http://127.0.0.1:{free_port()}", region=REGION, max_attempts=1
    )
    t0 = time.monotonic()
    calls = [
        lambda: store.put("a/b", b"x"),
        lambda: store.get("a/b"),
        lambda: store.iter_chunks("a/b"),
        lambda: store.size("a/b"),
        lambda: store.exists("a/b"),
        lambda: store.delete("a/b"),
        lambda: store.delete_prefix("a"),
        lambda: store.list_prefix("a"),
    ]
    for call in calls:
        with pytest.raises(BlobStoreUnavailable) as info:
            call()
        assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in str(info.value)
    assert time.monotonic() - t0 < 10


def test_an_upload_cut_off_midway_leaves_the_old_object(moto: MotoServer, bucket: str, s3_credentials: None) -> None:
    moto.client().put_object(Bucket=bucket, Key="videos/v1/1/video.mp4", Body=b"old")
    proxy = CuttingProxy(moto.port, cut_after=256 * 1024)
    try:
        store = S3BlobStore.from_url(f"s3://{bucket}", endpoint_url=proxy.url, region=REGION, max_attempts=1)
        with pytest.raises(BlobStoreUnavailable):
            store.put("videos/v1/1/video.mp4", b"n" * MiB)
        with pytest.raises(BlobStoreUnavailable):
            store.put("videos/v1/2/video.mp4", b"n" * MiB)
        assert proxy.cuts >= 2  # the bytes really stopped midway, on the wire
    finally:
        proxy.close()
    assert moto.client().get_object(Bucket=bucket, Key="videos/v1/1/video.mp4")["Body"].read() == b"old"
    assert moto.keys(bucket) == ["videos/v1/1/video.mp4"]


def test_a_multipart_upload_cut_off_is_aborted(moto: MotoServer, bucket: str) -> None:
    proxy = CuttingProxy(moto.port, cut_after=2 * MiB)
    try:
        client = s3_client(proxy.url, retries={"max_attempts": 1})
        store = S3BlobStore(client, bucket, multipart_threshold=8 * MiB)
        with pytest.raises(BlobStoreUnavailable):
            store.put("videos/v1/1/video.mp4", b"m" * (17 * MiB))
        assert proxy.cuts >= 1
    finally:
        proxy.close()
    assert moto.keys(bucket) == []
    assert moto.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_presigned_download_url(moto: MotoServer, bucket: str, s3_credentials: None) -> None:
    store = S3BlobStore.from_url(f"s3://{bucket}/p", endpoint_url=moto.url, region=REGION, presign_seconds=60)
    store.put("videos/v1/1/video.mp4", b"\x00\x00\x00\x18ftypmp42")
    url = store.download_url("videos/v1/1/video.mp4", filename="v1.mp4", media_type="video/mp4")
    assert url is not None and "X-Amz-Expires=60" in url and "X-Amz-Signature=" in url
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in url
    resp = httpx.get(url)  # no credentials: the URL is the authorization
    assert resp.status_code == 200 and resp.content == b"\x00\x00\x00\x18ftypmp42"
    assert resp.headers["content-type"] == "video/mp4"
    assert resp.headers["content-disposition"] == 'attachment; filename="v1.mp4"'
