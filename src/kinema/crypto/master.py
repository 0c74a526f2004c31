"""Master keys: the key-encryption keys that wrap every likeness data key.

:class:`MasterKey` is the interface; :class:`FileMasterKey` is the embedded implementation (32 random
bytes in a 0600 file). A KMS or Vault-transit implementation only needs ``key_id``, ``wrap`` and
``unwrap``; the associated data maps onto an AWS KMS encryption context or Vault's ``context``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kinema.crypto.errors import DecryptionError, KeyFileError, MasterKeyMismatch

MASTER_KEY_BYTES = 32
"""A master key is 256 bits (AES-256)."""

WRAP_VERSION = 1
"""First byte of every key wrapped by :class:`FileMasterKey`."""

_KEY_ID_BYTES = 8
_NONCE_BYTES = 12
_HEADER_BYTES = 1 + _KEY_ID_BYTES
_TAG_BYTES = 16
_KEY_ID_DOMAIN = b"kinema/master-key-id/v1\x00"


@runtime_checkable
class MasterKey(Protocol):
    """Wraps and unwraps data keys. Implementations must authenticate ``aad`` and never log key material."""

    @property
    def key_id(self) -> str:
        """Stable, non-secret identifier of this master key (version included, for a KMS key)."""
        ...

    def wrap(self, data_key: bytes, aad: bytes) -> bytes:
        """Encrypt ``data_key``, binding ``aad``; the result is opaque and safe to store."""
        ...

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        """Return the data key inside ``wrapped``; raise :class:`DecryptionError` if it or ``aad`` was altered."""
        ...


def key_id_of(key: bytes) -> str:
    """The public id of a master key: 16 hex characters of a domain-separated SHA-256 of the key."""
    return hashlib.sha256(_KEY_ID_DOMAIN + key).digest()[:_KEY_ID_BYTES].hex()


class FileMasterKey:
    """A 256-bit master key held in a local file (mode 0600), wrapping with AES-256-GCM.

    Wrapped format: ``version (1 byte) || key id (8 bytes) || nonce (12 bytes) || ciphertext+tag``.
    The version and key id are authenticated too (they are prepended to the caller's ``aad``).
    """

    __slots__ = ("_aead", "_key_id", "path")

    def __init__(self, key: bytes, *, path: Path | None = None) -> None:
        if len(key) != MASTER_KEY_BYTES:
            raise ValueError(f"a master key is {MASTER_KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)
        self._key_id = key_id_of(key)
        self.path = path

    def __repr__(self) -> str:
        return f"FileMasterKey(key_id={self._key_id!r}, path={str(self.path) if self.path else None!r})"

    @property
    def key_id(self) -> str:
        """16 hex characters derived from the key; does not reveal it."""
        return self._key_id

    # -- files -----------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> FileMasterKey:
        """Read an existing key file; refuse one that group or others may read, or that is malformed."""
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise KeyFileError(f"cannot open master key file {path}: {exc.strerror}") from None
        try:
            st = os.fstat(fd)  # the file we opened, not whatever the path names a moment later
            if not stat.S_ISREG(st.st_mode):
                raise KeyFileError(f"master key file {path} is not a regular file")
            if st.st_mode & 0o077:
                raise KeyFileError(
                    f"master key file {path} has mode {stat.S_IMODE(st.st_mode):04o}; it must not be accessible "
                    f"by group or others. Fix with: chmod 600 {path}"
                )
            key = os.read(fd, MASTER_KEY_BYTES + 1)
        finally:
            os.close(fd)
        if len(key) != MASTER_KEY_BYTES:
            raise KeyFileError(
                f"master key file {path} must hold exactly {MASTER_KEY_BYTES} raw bytes "
                f"(e.g. head -c {MASTER_KEY_BYTES} /dev/urandom), found {len(key)}"
                + (" or more" if len(key) > MASTER_KEY_BYTES else "")
            )
        return cls(key, path=path)

    @classmethod
    def create(cls, path: Path) -> FileMasterKey:
        """Write a fresh random key to ``path`` (which must not exist) atomically, mode 0600 from creation.

        The key is written and fsynced under a temporary name, then hard-linked into place: the link
        fails if ``path`` appeared meanwhile, so two processes starting at once never end up with
        different keys, and a crash never leaves a short key file behind.
        """
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        key = secrets.token_bytes(MASTER_KEY_BYTES)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            try:
                os.write(fd, key)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.link(temporary, path)  # FileExistsError if another process won the race
        finally:
            temporary.unlink(missing_ok=True)
        _fsync_dir(path.parent)
        return cls(key, path=path)

    @classmethod
    def load_or_create(cls, path: Path) -> FileMasterKey:
        """Load the key file at ``path``, creating it (0600) on first start."""
        try:
            return cls.load(path)
        except FileNotFoundError:
            pass
        try:
            return cls.create(path)
        except FileExistsError:
            return cls.load(path)  # created by a concurrent first start

    # -- wrapping --------------------------------------------------------------------------------

    @staticmethod
    def wrapped_key_id(wrapped: bytes) -> str | None:
        """The id of the master key that produced ``wrapped``, or None if it is not in this format."""
        if len(wrapped) < _HEADER_BYTES or wrapped[0] != WRAP_VERSION:
            return None
        return wrapped[1:_HEADER_BYTES].hex()

    def wrap(self, data_key: bytes, aad: bytes) -> bytes:
        """AES-256-GCM-encrypt ``data_key`` under a fresh random 96-bit nonce, binding header and ``aad``."""
        header = bytes([WRAP_VERSION]) + bytes.fromhex(self._key_id)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return header + nonce + self._aead.encrypt(nonce, data_key, header + aad)

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        """Inverse of :meth:`wrap`; raises :class:`MasterKeyMismatch` or :class:`DecryptionError`."""
        if len(wrapped) < _HEADER_BYTES + _NONCE_BYTES + _TAG_BYTES or wrapped[0] != WRAP_VERSION:
            raise DecryptionError("wrapped data key is malformed or of an unknown version")
        header = wrapped[:_HEADER_BYTES]
        if header[1:].hex() != self._key_id:
            raise MasterKeyMismatch(f"data key was wrapped by master {header[1:].hex()}, this is {self._key_id}")
        nonce = wrapped[_HEADER_BYTES : _HEADER_BYTES + _NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, wrapped[_HEADER_BYTES + _NONCE_BYTES :], header + aad)
        except InvalidTag:
            raise DecryptionError("wrapped data key failed authentication (tampered, or bound to another id)") from None


def _fsync_dir(folder: Path) -> None:
    """Make a rename or link inside ``folder`` durable (best effort where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
