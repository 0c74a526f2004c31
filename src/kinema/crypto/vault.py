"""Envelope encryption of likeness data (face images, crops, descriptors), with crypto-shredding.

Each likeness has its own random 256-bit data key. The data key is stored only wrapped by a master
key, in a :class:`~kinema.crypto.keystore.DataKeyStore` that lives apart from the main database, so a
copy of the database and blobs holds ciphertext only. Shredding deletes the wrapped key; afterwards no
copy of that ciphertext can be decrypted, with or without the master key.

Formats (version 1):

* payload: ``version (1 byte) || nonce (12 bytes) || AES-256-GCM ciphertext+tag``, with associated
  data binding the format version, the likeness id and the purpose (``"descriptor"``, ``"chip:0"``...),
  so a blob moved to another likeness or slot fails to decrypt;
* sealed payload (:meth:`LikenessVault.seal`, for data showing several likenesses): payloads nested one per
  likeness, each layer's purpose extended with the ordered list of likeness ids;
* wrapped data key: whatever the master key produces, with associated data binding the likeness id, so
  a wrapped key copied onto another likeness's row fails to unwrap.

Plaintext data keys live only in local variables for the length of one call (or one
:meth:`LikenessVault.unlocked` block); nothing caches them. CPython cannot wipe ``bytes``, so this
bounds their lifetime rather than guaranteeing erasure from process memory.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kinema.crypto.errors import CryptoError, DecryptionError, KeyShredded, MasterKeyMismatch, MasterKeyMissing
from kinema.crypto.keystore import DataKeyStore
from kinema.crypto.master import FileMasterKey, MasterKey, _fsync_dir

PAYLOAD_VERSION = 1
DATA_KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
_MAX_FIELD_BYTES = 1024
_PAYLOAD_DOMAIN = b"kinema/likeness-payload\x00"
_WRAP_DOMAIN = b"kinema/likeness-datakey/v1\x00"
_MAX_ROTATION_PASSES = 8


def _field(name: str, value: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    raw = value.encode("utf-8")
    if len(raw) > _MAX_FIELD_BYTES:
        raise ValueError(f"{name} is longer than {_MAX_FIELD_BYTES} bytes")
    return len(raw).to_bytes(2, "big") + raw


def wrap_aad(likeness_id: str) -> bytes:
    """Associated data under which a likeness's data key is wrapped by the master key."""
    return _WRAP_DOMAIN + _field("likeness_id", likeness_id)


def payload_aad(likeness_id: str, purpose: str, version: int = PAYLOAD_VERSION) -> bytes:
    """Associated data of a payload: domain, format version, likeness id and purpose, length-prefixed."""
    return _PAYLOAD_DOMAIN + bytes([version]) + _field("likeness_id", likeness_id) + _field("purpose", purpose)


def _seal(aead: AESGCM, likeness_id: str, plaintext: bytes, purpose: str) -> bytes:
    nonce = secrets.token_bytes(_NONCE_BYTES)  # random 96-bit nonce: safe far beyond a likeness's few blobs
    return bytes([PAYLOAD_VERSION]) + nonce + aead.encrypt(nonce, plaintext, payload_aad(likeness_id, purpose))


def _open(aead: AESGCM, likeness_id: str, blob: bytes, purpose: str) -> bytes:
    aad = payload_aad(likeness_id, purpose)  # validates the fields before anything else
    if len(blob) < 1 + _NONCE_BYTES + _TAG_BYTES or blob[0] != PAYLOAD_VERSION:
        raise DecryptionError("likeness ciphertext is malformed or of an unknown version")
    try:
        return aead.decrypt(blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :], aad)
    except InvalidTag:
        raise DecryptionError(
            f"likeness ciphertext failed authentication for {likeness_id!r}/{purpose!r} "
            "(tampered, or it belongs to another likeness or purpose)"
        ) from None


def _layer_purpose(likeness_ids: Sequence[str], purpose: str) -> str:
    """The purpose every layer of a sealed payload is bound to: the caller's, plus the ordered likeness ids."""
    if not likeness_ids:
        raise ValueError("sealing needs at least one likeness id")
    return f"{purpose}#sealed-by:{','.join(likeness_ids)}"


class UnlockedLikeness:
    """A likeness's data key, unwrapped for the duration of one ``with vault.unlocked(...)`` block.

    For workers that read or write several blobs of one likeness: the key is unwrapped once (one KMS
    call rather than one per chip). The key is dropped when the block ends; using this afterwards raises.
    """

    __slots__ = ("_aead", "likeness_id")

    def __init__(self, likeness_id: str, aead: AESGCM) -> None:
        self.likeness_id = likeness_id
        self._aead: AESGCM | None = aead

    def __repr__(self) -> str:
        return f"UnlockedLikeness({self.likeness_id!r}, open={self._aead is not None})"

    def _key(self) -> AESGCM:
        if self._aead is None:
            raise RuntimeError("this likeness is locked again: use it inside its `with vault.unlocked(...)` block")
        return self._aead

    def encrypt(self, plaintext: bytes, purpose: str) -> bytes:
        """Same as :meth:`LikenessVault.encrypt`, with the key already unwrapped."""
        return _seal(self._key(), self.likeness_id, plaintext, purpose)

    def decrypt(self, blob: bytes, purpose: str) -> bytes:
        """Same as :meth:`LikenessVault.decrypt`, with the key already unwrapped."""
        return _open(self._key(), self.likeness_id, blob, purpose)

    def _lock(self) -> None:
        self._aead = None


class LikenessVault:
    """Creates, uses and shreds per-likeness data keys, wrapped by a master key.

    ``master`` wraps new keys. ``also_unwrap_with`` are further master keys accepted when unwrapping
    (e.g. the pending key of an interrupted rotation); rows wrapped by them are rewrapped by
    :meth:`rotate_master`. Thread-safe: the only shared state is the master set, swapped under a lock.
    """

    def __init__(self, store: DataKeyStore, master: MasterKey, *, also_unwrap_with: Iterable[MasterKey] = ()) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._master = master
        self._masters: dict[str, MasterKey] = {m.key_id: m for m in also_unwrap_with}
        self._masters[master.key_id] = master

    def __repr__(self) -> str:
        return f"LikenessVault(store={self.store!r}, master_key_id={self._master.key_id!r})"

    @property
    def master_key_id(self) -> str:
        """Id of the master key that wraps new data keys."""
        return self._master.key_id

    # -- lifecycle -------------------------------------------------------------------------------

    def create(self, likeness_id: str) -> None:
        """Give ``likeness_id`` a fresh random data key; raise :class:`LikenessKeyExists` if it has one."""
        aad = wrap_aad(likeness_id)
        master = self._master
        data_key = AESGCM.generate_key(bit_length=256)
        wrapped = master.wrap(data_key, aad)
        self.store.put(likeness_id, wrapped, master.key_id)
        current = self._master
        if current is not master:
            # A rotation switched masters while we wrapped; its last pass may already be over, so rewrap
            # here (compare-and-swap: whichever of us gets there first wins, the other changes nothing).
            self.store.replace(likeness_id, wrapped, current.wrap(data_key, aad), current.key_id)

    def has_key(self, likeness_id: str) -> bool:
        """Whether ``likeness_id`` has a data key (False once shredded)."""
        return self.store.get(likeness_id) is not None

    def shred(self, likeness_id: str) -> bool:
        """Destroy the likeness's data key now; every ciphertext of it, anywhere, becomes undecryptable.

        Returns True if a key existed. Delete the ciphertext and derived data afterwards (or before):
        once this returns, they are unreadable noise either way.
        """
        return self.store.delete(likeness_id)

    # -- data ------------------------------------------------------------------------------------

    def _data_key(self, likeness_id: str) -> AESGCM:
        """Fetch and unwrap ``likeness_id``'s data key; the caller keeps it only as long as it needs it."""
        aad = wrap_aad(likeness_id)  # validates the id
        master_key_id = ""
        for _ in range(2):  # a concurrent rotation may rewrap the row and retire its master in between
            record = self.store.get(likeness_id)
            if record is None:
                raise KeyShredded(likeness_id)
            master_key_id = record.master_key_id
            master = self._masters.get(master_key_id)
            if master is not None:
                return AESGCM(master.unwrap(record.wrapped_key, aad))
        raise MasterKeyMismatch(
            f"the data key of likeness {likeness_id!r} is wrapped by master {master_key_id}, "
            f"which this process does not hold (it holds {', '.join(sorted(self._masters))})"
        )

    def encrypt(self, likeness_id: str, plaintext: bytes, purpose: str) -> bytes:
        """AES-256-GCM-encrypt ``plaintext`` for ``likeness_id``/``purpose``: ``version || nonce || ct+tag``.

        Raises :class:`KeyShredded` if the likeness has no data key.
        """
        return _seal(self._data_key(likeness_id), likeness_id, plaintext, purpose)

    def decrypt(self, likeness_id: str, blob: bytes, purpose: str) -> bytes:
        """Decrypt a blob from :meth:`encrypt`.

        Raises :class:`KeyShredded` if the likeness's key is gone, :class:`DecryptionError` if the blob was
        altered or belongs to another likeness or purpose.
        """
        return _open(self._data_key(likeness_id), likeness_id, blob, purpose)

    def seal(self, likeness_ids: Sequence[str], plaintext: bytes, purpose: str) -> bytes:
        """Encrypt ``plaintext`` under every likeness in ``likeness_ids``, one layer each, nested in that order.

        For data that shows several likenesses at once (an uploaded photo of two enrolled people): shredding
        any one of their keys makes the result unreadable. Each layer binds its likeness id, ``purpose`` and
        the whole ordered list, so opening with a subset or another order fails instead of yielding a layer.
        """
        layer_purpose = _layer_purpose(likeness_ids, purpose)
        sealed = plaintext
        for likeness_id in likeness_ids:
            sealed = self.encrypt(likeness_id, sealed, layer_purpose)
        return sealed

    def unseal(self, likeness_ids: Sequence[str], blob: bytes, purpose: str) -> bytes:
        """Open what :meth:`seal` made with the same ``likeness_ids`` (same order) and ``purpose``.

        Raises :class:`KeyShredded` once any of the likenesses' keys is gone, :class:`DecryptionError` if
        the blob was altered, or belongs to other likenesses, another order or another purpose.
        """
        layer_purpose = _layer_purpose(likeness_ids, purpose)
        opened = blob
        for likeness_id in reversed(likeness_ids):
            opened = self.decrypt(likeness_id, opened, layer_purpose)
        return opened

    @contextmanager
    def unlocked(self, likeness_id: str) -> Iterator[UnlockedLikeness]:
        """Unwrap the data key once for several operations on one likeness; dropped when the block ends."""
        handle = UnlockedLikeness(likeness_id, self._data_key(likeness_id))
        try:
            yield handle
        finally:
            handle._lock()

    # -- rotation --------------------------------------------------------------------------------

    def rotate_master(self, new_master: MasterKey) -> int:
        """Rewrap every data key under ``new_master``; afterwards only ``new_master`` is needed. Returns rows rewrapped.

        Each row is rewrapped in its own transaction, as a compare-and-swap on the old wrapped bytes:

        * crash-safe and resumable: a row is under the old master or the new one, never neither, and a
          rerun skips rows already under ``new_master`` (so ``new_master`` must be stored durably first,
          see :func:`rotate_master_key_file`);
        * it never holds the store's write lock across a (possibly remote, KMS) unwrap/wrap, so creating
          and above all shredding likenesses is not held up for the length of the rotation;
        * a likeness shredded meanwhile is not resurrected (the swap finds no row and does nothing).

        Every new wrapping is unwrapped again and compared before it is written, so a faulty master
        implementation cannot destroy keys. From the start of the call this vault wraps new keys with
        ``new_master``; passes repeat until one rewraps nothing, which picks up keys created meanwhile by
        other processes still on the old master.
        """
        with self._lock:
            # The new master is durable before this is called: wrap new keys with it from now on, and
            # accept it at once for rows this rotation has already rewrapped (copy-on-write: readers
            # look up in whichever dict they saw, without the lock).
            self._masters = {**self._masters, new_master.key_id: new_master}
            self._master = new_master
            masters = self._masters
        total = 0
        for _ in range(_MAX_ROTATION_PASSES):
            rewrapped = 0
            for record in self.store.iterate():
                if record.master_key_id == new_master.key_id:
                    continue
                old = masters.get(record.master_key_id)
                if old is None:
                    raise MasterKeyMismatch(
                        f"cannot rotate: the data key of likeness {record.likeness_id!r} is wrapped by master "
                        f"{record.master_key_id}, which this process does not hold"
                    )
                aad = wrap_aad(record.likeness_id)
                data_key = old.unwrap(record.wrapped_key, aad)
                wrapped = new_master.wrap(data_key, aad)
                if new_master.unwrap(wrapped, aad) != data_key:
                    raise CryptoError(f"new master {new_master.key_id} does not round-trip a data key; nothing lost")
                if self.store.replace(record.likeness_id, record.wrapped_key, wrapped, new_master.key_id):
                    rewrapped += 1
            total += rewrapped
            if rewrapped == 0:
                break
        else:
            raise CryptoError("rotation did not settle: keys keep being created under the old master; stop writers")
        with self._lock:
            self._masters = {new_master.key_id: new_master}  # the old masters are retired
        return total


def pending_master_path(master_path: Path) -> Path:
    """Where :func:`rotate_master_key_file` keeps the next master key until the rotation completes."""
    return master_path.with_name(master_path.name + ".next")


def open_file_vault(master_path: Path, store: DataKeyStore) -> LikenessVault:
    """The vault for a file master key: created (0600) at first start, never silently replaced.

    Refuses to create a new master while the store holds keys (they would all be orphaned), and also
    accepts the pending key of an interrupted rotation, so likenesses already rewrapped stay readable.
    """
    try:
        master = FileMasterKey.load(master_path)
    except FileNotFoundError:
        if next(iter(store.iterate()), None) is not None:
            raise MasterKeyMissing(
                f"master key file {master_path} is missing but the data-key store {store!r} holds keys; "
                "restore the key file (a new one could decrypt none of them)"
            ) from None
        master = FileMasterKey.load_or_create(master_path)
    pending_path = pending_master_path(master_path)
    extra = [FileMasterKey.load(pending_path)] if pending_path.exists() else []
    return LikenessVault(store, master, also_unwrap_with=extra)


def rotate_master_key_file(master_path: Path, store: DataKeyStore) -> tuple[str, str, int]:
    """``kinema keys rotate-master`` for a file master key. Returns (old key id, new key id, rows rewrapped).

    1. the new key is written durably to ``<master>.next`` (0600), or reused if a previous run left one;
    2. every data key is rewrapped under it (:meth:`LikenessVault.rotate_master`, resumable);
    3. ``<master>.next`` atomically replaces the master file, and the old key is gone.

    A crash at any step leaves every data key unwrappable by a key on disk, and rerunning finishes the job.
    Run it with the service stopped: a process started before the rotation holds only the old master,
    so it raises :class:`MasterKeyMismatch` for rewrapped likenesses, and a likeness it creates after the
    final pass would be wrapped by a key that no longer exists on disk.
    """
    old = FileMasterKey.load(master_path)
    pending_path = pending_master_path(master_path)
    new = FileMasterKey.load_or_create(pending_path)
    if new.key_id == old.key_id:  # a crash after step 3 left a hard link? never expected, but never lose the key
        raise CryptoError(f"{pending_path} holds the current master key; remove it and run again")
    count = LikenessVault(store, old).rotate_master(new)
    pending_path.replace(master_path)
    _fsync_dir(master_path.parent)
    # The old key is still in memory: rewrap anything another process created under it in the meantime.
    count += LikenessVault(store, new, also_unwrap_with=[old]).rotate_master(new)
    return old.key_id, new.key_id, count
