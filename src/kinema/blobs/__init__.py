"""Blob stores: where inputs and outputs live, under server-made keys.

:class:`LocalBlobStore` (a folder) needs nothing more; ``kinema.blobs.s3.S3BlobStore`` (an S3-compatible
bucket) needs boto3, from the ``s3`` extra, and is imported only when ``KINEMA_BLOB_URL`` asks for it.
"""

from kinema.blobs.base import BlobNotFound, BlobStore, BlobStoreUnavailable, check_key
from kinema.blobs.local import LocalBlobStore

__all__ = ["BlobNotFound", "BlobStore", "BlobStoreUnavailable", "LocalBlobStore", "check_key"]
