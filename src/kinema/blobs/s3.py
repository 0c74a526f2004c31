"""Blob store on an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, R2...), through boto3.

Atomicity: a blob is written by one ``PutObject`` (below ``multipart_threshold``) or a multipart upload
(above it). S3 makes an object visible only once the PUT or ``CompleteMultipartUpload`` has succeeded,
whole; a failed multipart upload is aborted, so its parts are dropped. Readers therefore see the old
object or all of the new one, never part of it, as :class:`~kinema.blobs.base.BlobStore` promises.

Every failure that is not "no such key" (the store down or timing out, access denied, no such bucket)
raises :class:`~kinema.blobs.base.BlobStoreUnavailable`: the API answers 503, a job fails clearly.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import boto3
import urllib3.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from kinema.blobs.base import BlobNotFound, BlobStoreUnavailable, check_key

log = logging.getLogger(__name__)

_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_URL = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$")
_TRANSPORT_ERRORS = (BotoCoreError, urllib3.exceptions.HTTPError)

SSE = Literal["AES256", "aws:kms"]


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")``; ValueError if it is not one."""
    m = _URL.match(url)
    if m is None:
        raise ValueError(f"not an s3://bucket[/prefix] URL: {url!r}")
    prefix = (m["prefix"] or "").strip("/")
    if prefix:
        check_key(prefix)
    return m["bucket"], prefix


class S3BlobStore:
    """Blobs as objects ``<prefix>/<key>`` in ``bucket``. Thread-safe (one boto3 client, shared)."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        sse: SSE | None = None,
        kms_key_id: str | None = None,
        presign_seconds: int = 0,
        multipart_threshold: int = 64 * 2**20,
    ) -> None:
        self._s3 = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._presign_seconds = presign_seconds
        self._extra: dict[str, str] = {}
        if sse is not None:
            self._extra["ServerSideEncryption"] = sse
        if kms_key_id is not None:
            if sse != "aws:kms":
                raise ValueError("a KMS key id needs server-side encryption aws:kms")
            self._extra["SSEKMSKeyId"] = kms_key_id
        # Parts of at least 8 MiB (S3's minimum is 5), and at most 10,000 of them.
        self._transfer = TransferConfig(multipart_threshold=multipart_threshold, multipart_chunksize=8 * 2**20)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        sse: SSE | None = None,
        kms_key_id: str | None = None,
        presign_seconds: int = 0,
        timeout_seconds: float = 30.0,
        max_attempts: int = 3,
    ) -> S3BlobStore:
        """A store for ``s3://bucket/prefix``; credentials come from boto3's usual chain (environment
        variables, shared config and credentials files, container or instance roles)."""
        bucket, prefix = parse_s3_url(url)
        config = Config(
            connect_timeout=timeout_seconds,
            read_timeout=timeout_seconds,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            # Path-style addressing for self-hosted stores (MinIO, Ceph), which rarely have wildcard DNS.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            signature_version="s3v4",
            # boto3 >= 1.36 sends CRC checksums with every upload by default, which several S3-compatible
            # stores refuse; Content-MD5 (below) is understood by all of them.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        client = boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
        return cls(client, bucket, prefix, sse=sse, kms_key_id=kms_key_id, presign_seconds=presign_seconds)

    # -- keys and errors -------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _unprefixed(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    @contextmanager
    def _errors(self, op: str, key: str) -> Iterator[None]:
        """Translate boto3's exceptions: a missing key to BlobNotFound, anything else to BlobStoreUnavailable."""
        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "")) or "error"
            if code in _MISSING:
                raise BlobNotFound(key) from None
            raise BlobStoreUnavailable(f"S3 {op} of {key!r} in bucket {self.bucket!r} failed: {code}") from exc
        except _TRANSPORT_ERRORS as exc:
            raise BlobStoreUnavailable(
                f"S3 {op} of {key!r} in bucket {self.bucket!r} failed: {type(exc).__name__}"
            ) from exc

    # -- the BlobStore interface -----------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        full = self._key(key)
        with self._errors("put", key):
            if len(data) < self._transfer.multipart_threshold:
                # Content-MD5: S3 refuses (and does not store) a body that arrived different from what was sent.
                md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
                self._s3.put_object(Bucket=self.bucket, Key=full, Body=data, ContentMD5=md5, **self._extra)
            else:
                # s3transfer aborts the multipart upload on failure: no parts stay behind, nothing is visible.
                self._s3.upload_fileobj(
                    io.BytesIO(data), self.bucket, full, ExtraArgs=dict(self._extra), Config=self._transfer
                )

    def get(self, key: str) -> bytes:
        full = self._key(key)
        with self._errors("get", key):
            body = self._s3.get_object(Bucket=self.bucket, Key=full)["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        full = self._key(key)
        with self._errors("get", key):  # a missing key or a store that is down fails here, before any byte
            body = self._s3.get_object(Bucket=self.bucket, Key=full)["Body"]
        return self._stream(body, key, chunk_size)

    def _stream(self, body: Any, key: str, chunk_size: int) -> Iterator[bytes]:
        try:
            with self._errors("read", key):
                yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def size(self, key: str) -> int:
        full = self._key(key)
        with self._errors("head", key):
            return int(self._s3.head_object(Bucket=self.bucket, Key=full)["ContentLength"])

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except BlobNotFound:
            return False
        return True

    def delete(self, key: str) -> bool:
        # S3 answers 204 whether or not the object existed: look first, to keep the interface's promise.
        if not self.exists(key):
            return False
        with self._errors("delete", key):
            self._s3.delete_object(Bucket=self.bucket, Key=self._key(key))
        return True

    def delete_prefix(self, prefix: str) -> int:
        keys = self._list(prefix)
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
            batch = keys[start : start + 1000]
            with self._errors("delete", prefix):
                resp = self._s3.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
                )
            if resp.get("Errors"):
                first = resp["Errors"][0]
                raise BlobStoreUnavailable(
                    f"S3 delete of {len(resp['Errors'])} object(s) under {prefix!r} failed: "
                    f"{first.get('Code')} on {first.get('Key')!r}"
                )
        return len(keys)

    def list_prefix(self, prefix: str) -> list[str]:
        return sorted(self._unprefixed(k) for k in self._list(prefix))

    def _list(self, prefix: str) -> list[str]:
        """Full object keys under ``prefix/``."""
        full = self._key(prefix) + "/"
        keys: list[str] = []
        with self._errors("list", prefix):
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                keys.extend(obj["Key"] for obj in page.get("Contents", ()))
        return keys

    def download_url(self, key: str, *, filename: str, media_type: str) -> str | None:
        if self._presign_seconds <= 0:
            return None
        full = self._key(key)
        with self._errors("presign", key):
            return str(
                self._s3.generate_presigned_url(
                    "get_object",
                    Params={
                        "Bucket": self.bucket,
                        "Key": full,
                        "ResponseContentType": media_type,
                        "ResponseContentDisposition": f'attachment; filename="{filename}"',
                    },
                    ExpiresIn=self._presign_seconds,
                )
            )
