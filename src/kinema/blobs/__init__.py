"""Blob stores: where inputs and outputs live, under server-made keys."""

from kinema.blobs.base import BlobNotFound, BlobStore
from kinema.blobs.local import LocalBlobStore

__all__ = ["BlobNotFound", "BlobStore", "LocalBlobStore"]
