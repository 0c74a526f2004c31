"""Envelope encryption for likeness data (face images, crops, descriptors), with crypto-shredding.

Public API: :class:`LikenessVault` (create / encrypt / decrypt / shred / rotate_master), the
:class:`MasterKey` and :class:`DataKeyStore` interfaces with their embedded implementations
:class:`FileMasterKey` and :class:`SqliteDataKeyStore`, and the errors.
"""

from kinema.crypto.errors import (
    CryptoError,
    DecryptionError,
    KeyFileError,
    KeyShredded,
    LikenessKeyExists,
    MasterKeyMismatch,
    MasterKeyMissing,
)
from kinema.crypto.keystore import DataKeyStore, SqliteDataKeyStore, StoredKey
from kinema.crypto.master import FileMasterKey, MasterKey
from kinema.crypto.vault import (
    LikenessVault,
    UnlockedLikeness,
    open_file_vault,
    pending_master_path,
    rotate_master_key_file,
)

__all__ = [
    "CryptoError",
    "DataKeyStore",
    "DecryptionError",
    "FileMasterKey",
    "KeyFileError",
    "KeyShredded",
    "LikenessKeyExists",
    "LikenessVault",
    "MasterKey",
    "MasterKeyMismatch",
    "MasterKeyMissing",
    "SqliteDataKeyStore",
    "StoredKey",
    "UnlockedLikeness",
    "open_file_vault",
    "pending_master_path",
    "rotate_master_key_file",
]
