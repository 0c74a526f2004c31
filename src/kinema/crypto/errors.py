"""Errors raised by the likeness vault, its master keys and its data-key store.

``KeyShredded`` and ``DecryptionError`` are deliberately separate: the first means "this likeness was
deleted (or never existed); its data is gone for good" and should be handled like a missing record,
the second means "the bytes are not what we wrote" (tampering, corruption, a blob moved to another
likeness or purpose) and deserves an alert. Catch ``CryptoError`` to handle both alike.
"""

from __future__ import annotations


class CryptoError(Exception):
    """Base class of every error in :mod:`kinema.crypto`."""


class KeyShredded(CryptoError):
    """The likeness has no data key: it was shredded (or never created), so its ciphertext is unreadable."""

    def __init__(self, likeness_id: str) -> None:
        super().__init__(f"likeness {likeness_id!r} has no data key (shredded or never created)")
        self.likeness_id = likeness_id


class DecryptionError(CryptoError):
    """Ciphertext or a wrapped key failed authentication: tampered, corrupt, or bound to another likeness/purpose."""


class LikenessKeyExists(CryptoError):
    """``create`` was called for a likeness that already has a data key."""

    def __init__(self, likeness_id: str) -> None:
        super().__init__(f"likeness {likeness_id!r} already has a data key")
        self.likeness_id = likeness_id


class MasterKeyMismatch(CryptoError):
    """A data key was wrapped by a master key this process does not hold (wrong key file, or a rotation
    finished by another process after this one started)."""


class KeyFileError(CryptoError):
    """A master key file or data-key store file is unsafe (accessible by group or others, not a regular file)
    or malformed."""


class MasterKeyMissing(CryptoError):
    """The data-key store holds keys but the master key file is gone; a new master would orphan them all."""
