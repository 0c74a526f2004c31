"""The likeness vault: envelope encryption, AAD binding, tamper detection, rotation and crypto-shredding."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import threading
import uuid
from pathlib import Path

import pytest

from kinema.crypto import (
    DecryptionError,
    FileMasterKey,
    KeyFileError,
    KeyShredded,
    LikenessKeyExists,
    LikenessVault,
    MasterKeyMismatch,
    MasterKeyMissing,
    SqliteDataKeyStore,
    open_file_vault,
    pending_master_path,
    rotate_master_key_file,
)

from .conftest import Keys

FACE = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)  # stands in for a face crop


def new_id() -> str:
    return f"lk_{uuid.uuid4().hex}"


def wrapped_of(keys: Keys, likeness_id: str) -> bytes:
    record = keys.store.get(likeness_id)
    assert record is not None
    return record.wrapped_key


def leftovers(store_path: Path) -> list[Path]:
    """SQLite side files (journal, WAL, shared memory) next to the store."""
    return sorted(store_path.parent.glob(store_path.name + "-*"))


def test_round_trip_and_format(keys: Keys) -> None:
    lk = new_id()
    keys.vault.create(lk)
    assert keys.vault.has_key(lk)
    blob = keys.vault.encrypt(lk, FACE, "chip:0")
    assert blob[0] == 1 and len(blob) == 1 + 12 + len(FACE) + 16
    assert FACE not in blob
    assert keys.vault.encrypt(lk, FACE, "chip:0") != blob  # fresh nonce
    assert keys.vault.decrypt(lk, blob, "chip:0") == FACE
    assert keys.vault.decrypt(lk, keys.vault.encrypt(lk, b"", "descriptor"), "descriptor") == b""
    with pytest.raises(LikenessKeyExists):
        keys.vault.create(lk)
    with pytest.raises(KeyShredded):
        keys.vault.encrypt(new_id(), FACE, "chip:0")  # never created
    with pytest.raises(ValueError):
        keys.vault.encrypt(lk, FACE, "")


def test_files_are_private_and_never_wal(keys: Keys) -> None:
    assert stat.S_IMODE(keys.folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(keys.store_path.stat().st_mode) == 0o600
    keys.vault.create(new_id())
    conn = sqlite3.connect(keys.store_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    finally:
        conn.close()
    assert leftovers(keys.store_path) == []
    os.chmod(keys.store_path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        SqliteDataKeyStore(keys.store_path)


def test_ciphertext_is_bound_to_likeness_and_purpose(keys: Keys) -> None:
    a, b = new_id(), new_id()
    keys.vault.create(a)
    keys.vault.create(b)
    blob = keys.vault.encrypt(a, FACE, "chip:0")
    with pytest.raises(DecryptionError):
        keys.vault.decrypt(b, blob, "chip:0")  # moved to another likeness
    with pytest.raises(DecryptionError):
        keys.vault.decrypt(a, blob, "chip:1")  # moved to another slot
    with pytest.raises(DecryptionError):
        keys.vault.decrypt(a, blob, "descriptor")  # another purpose
    assert keys.vault.decrypt(a, blob, "chip:0") == FACE


def test_length_prefixed_aad_is_unambiguous(keys: Keys) -> None:
    # ("ab", "c:0") and ("a", "bc:0") would collide if the fields were simply concatenated.
    keys.vault.create("ab")
    blob = keys.vault.encrypt("ab", FACE, "c:0")
    keys.store.put("a", wrapped_of(keys, "ab"), keys.master.key_id)
    with pytest.raises(DecryptionError):  # the wrapped key itself is bound to "ab"
        keys.vault.decrypt("a", blob, "bc:0")


def test_tampering_is_detected(keys: Keys) -> None:
    lk = new_id()
    keys.vault.create(lk)
    blob = keys.vault.encrypt(lk, b"descriptor bytes " * 8, "descriptor")
    for i in list(range(0, 1 + 12 + 2)) + [len(blob) // 2, len(blob) - 1]:  # version, nonce, body, tag
        tampered = bytearray(blob)
        tampered[i] ^= 0x01
        with pytest.raises(DecryptionError):
            keys.vault.decrypt(lk, bytes(tampered), "descriptor")
    with pytest.raises(DecryptionError):
        keys.vault.decrypt(lk, blob[:-1], "descriptor")  # truncated
    with pytest.raises(DecryptionError):
        keys.vault.decrypt(lk, blob[:20], "descriptor")


def test_wrapped_key_swapped_between_likenesses_is_refused(keys: Keys) -> None:
    a, b = new_id(), new_id()
    keys.vault.create(a)
    keys.vault.create(b)
    blob_a = keys.vault.encrypt(a, FACE, "chip:0")
    # Someone with write access to the key store copies A's wrapped key onto B's row.
    conn = sqlite3.connect(keys.store_path)
    with conn:
        conn.execute(
            "UPDATE data_keys SET wrapped_key = (SELECT wrapped_key FROM data_keys WHERE likeness_id = ?) "
            "WHERE likeness_id = ?",
            (a, b),
        )
    conn.close()
    with pytest.raises(DecryptionError):
        keys.vault.decrypt(b, blob_a, "chip:0")


def test_unlocked_handle_unwraps_once_and_locks_after(keys: Keys) -> None:
    lk = new_id()
    keys.vault.create(lk)
    with keys.vault.unlocked(lk) as face:
        chips = [face.encrypt(FACE + bytes([i]), f"chip:{i}") for i in range(4)]
        assert face.decrypt(chips[2], "chip:2") == FACE + b"\x02"
    assert keys.vault.decrypt(lk, chips[3], "chip:3") == FACE + b"\x03"
    with pytest.raises(RuntimeError, match="locked"):
        face.encrypt(FACE, "chip:9")
    assert "open=False" in repr(face)


# -- crypto-shredding -------------------------------------------------------------------------------


def test_shredded_likeness_backup_cannot_be_decrypted_even_with_the_master_key(keys: Keys, tmp_path: Path) -> None:
    victim, bystander = new_id(), new_id()
    keys.vault.create(victim)
    keys.vault.create(bystander)
    descriptor = keys.vault.encrypt(victim, b"\x01\x02" * 256, "descriptor")
    chip = keys.vault.encrypt(victim, FACE, "chip:0")
    other = keys.vault.encrypt(bystander, FACE, "chip:0")

    # A backup of the main database and blob folder: ciphertext only (no key lives there).
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "descriptor.bin").write_bytes(descriptor)
    (backup / "chip0.bin").write_bytes(chip)

    wrapped = wrapped_of(keys, victim)
    raw_before = keys.store_path.read_bytes()
    assert wrapped in raw_before and victim.encode() in raw_before  # the check below can see the key

    assert keys.vault.shred(victim) is True
    assert keys.vault.shred(victim) is False
    assert not keys.vault.has_key(victim)

    # The saved ciphertext is undecryptable with the same master key, in this process or a fresh one.
    for vault in (keys.vault, LikenessVault(SqliteDataKeyStore(keys.store_path), FileMasterKey.load(keys.master_path))):
        with pytest.raises(KeyShredded):
            vault.decrypt(victim, (backup / "descriptor.bin").read_bytes(), "descriptor")
        with pytest.raises(KeyShredded):
            vault.decrypt(victim, (backup / "chip0.bin").read_bytes(), "chip:0")
        assert vault.decrypt(bystander, other, "chip:0") == FACE  # others unaffected

    # The key store's file no longer holds the wrapped key (secure_delete zeroed it in place), not even the
    # likeness id, and no journal or WAL file is left holding an old page.
    raw_after = keys.store_path.read_bytes()
    assert wrapped not in raw_after
    assert wrapped[-16:] not in raw_after and wrapped[9:21] not in raw_after  # nor its tag or nonce
    assert victim.encode() not in raw_after
    assert leftovers(keys.store_path) == []

    # Recreating a likeness with the same id gives a new key: the old ciphertext still does not open.
    keys.vault.create(victim)
    with pytest.raises(DecryptionError):
        keys.vault.decrypt(victim, chip, "chip:0")


def test_secure_delete_check_is_meaningful(tmp_path: Path) -> None:
    """Control: without secure_delete SQLite leaves deleted rows in the file, which the check above would catch."""
    path = tmp_path / "plain.db"
    secret = os.urandom(69)
    conn = sqlite3.connect(path, isolation_level=None)
    if conn.execute("PRAGMA secure_delete=OFF").fetchone()[0] != 0:
        pytest.skip("this SQLite build forces secure_delete")
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB)")
    conn.execute("INSERT INTO t VALUES ('x', zeroblob(100))")
    conn.execute("INSERT INTO t VALUES ('y', ?)", (secret,))
    conn.execute("DELETE FROM t WHERE k = 'y'")
    conn.close()
    assert secret in path.read_bytes()


def test_key_store_backup_is_retired_by_master_rotation(keys: Keys, tmp_path: Path) -> None:
    """The boundary of the guarantee: the key store must not be backed up, and rotation retires one that was.

    A copy of the *key store* taken before a shred still holds the wrapped key, so with the master key it
    would decrypt; once `kinema keys rotate-master` has replaced the master key, it no longer can.
    """
    lk = new_id()
    keys.vault.create(lk)
    chip = keys.vault.encrypt(lk, FACE, "chip:0")
    stolen_store = tmp_path / "stolen-datakeys.db"
    shutil.copy(keys.store_path, stolen_store)
    keys.vault.shred(lk)

    os.chmod(stolen_store, 0o600)
    assert LikenessVault(SqliteDataKeyStore(stolen_store), keys.master).decrypt(lk, chip, "chip:0") == FACE

    rotate_master_key_file(keys.master_path, keys.store)
    current = FileMasterKey.load(keys.master_path)
    with pytest.raises(MasterKeyMismatch):
        LikenessVault(SqliteDataKeyStore(stolen_store), current).decrypt(lk, chip, "chip:0")


# -- master rotation --------------------------------------------------------------------------------


def test_rotate_master_rewraps_everything_and_old_master_is_not_needed(keys: Keys, tmp_path: Path) -> None:
    ids = [new_id() for _ in range(600)]  # more than one page of the store's iteration
    blobs = {}
    for lk in ids:
        keys.vault.create(lk)
    for lk in ids[::50]:
        blobs[lk] = keys.vault.encrypt(lk, FACE + lk.encode(), "chip:0")
    old_wrapped = wrapped_of(keys, ids[0])

    new_master = FileMasterKey.load_or_create(tmp_path / "new.key")
    assert keys.vault.rotate_master(new_master) == len(ids)
    assert keys.vault.master_key_id == new_master.key_id
    assert {r.master_key_id for r in keys.store.iterate()} == {new_master.key_id}
    assert keys.vault.rotate_master(new_master) == 0  # idempotent

    # A fresh vault with only the new master reads everything; the old master alone reads nothing.
    fresh = LikenessVault(SqliteDataKeyStore(keys.store_path), FileMasterKey.load(tmp_path / "new.key"))
    for lk, blob in blobs.items():
        assert fresh.decrypt(lk, blob, "chip:0") == FACE + lk.encode()
    with pytest.raises(MasterKeyMismatch):
        LikenessVault(keys.store, keys.master).decrypt(ids[0], blobs[ids[0]], "chip:0")
    # The old wrapping was overwritten in place, not left behind in the file.
    assert old_wrapped not in keys.store_path.read_bytes()
    assert leftovers(keys.store_path) == []


class FlakyStore(SqliteDataKeyStore):
    """The same store, but ``replace`` dies after ``survive`` calls, like a process killed mid-rotation."""

    def __init__(self, path: Path, survive: int) -> None:
        super().__init__(path)
        self.survive = survive

    def replace(self, likeness_id: str, expected: bytes, wrapped_key: bytes, master_key_id: str) -> bool:
        if self.survive == 0:
            raise KeyboardInterrupt("killed")
        self.survive -= 1
        return super().replace(likeness_id, expected, wrapped_key, master_key_id)


def test_rotate_master_key_file_survives_a_crash_and_resumes(keys: Keys) -> None:
    ids = [new_id() for _ in range(10)]
    blobs = {}
    for lk in ids:
        keys.vault.create(lk)
        blobs[lk] = keys.vault.encrypt(lk, FACE, "descriptor")
    old_id = keys.master.key_id

    with pytest.raises(KeyboardInterrupt):
        rotate_master_key_file(keys.master_path, FlakyStore(keys.store_path, survive=4))
    pending = pending_master_path(keys.master_path)
    assert pending.exists() and stat.S_IMODE(pending.stat().st_mode) == 0o600
    assert FileMasterKey.load(keys.master_path).key_id == old_id  # not switched yet
    masters = [r.master_key_id for r in keys.store.iterate()]
    assert masters.count(old_id) == 6 and len(set(masters)) == 2

    # A service started now (mid-rotation) reads every likeness, whichever master wraps it.
    vault = open_file_vault(keys.master_path, keys.store)
    assert all(vault.decrypt(lk, blob, "descriptor") == FACE for lk, blob in blobs.items())

    old, new, count = rotate_master_key_file(keys.master_path, keys.store)  # rerun finishes the job
    assert (old, count) == (old_id, 6)
    assert not pending.exists()
    assert FileMasterKey.load(keys.master_path).key_id == new
    assert {r.master_key_id for r in keys.store.iterate()} == {new}
    vault = open_file_vault(keys.master_path, keys.store)
    assert all(vault.decrypt(lk, blob, "descriptor") == FACE for lk, blob in blobs.items())


def test_open_file_vault_never_replaces_a_lost_master_key(keys: Keys) -> None:
    keys.vault.create(new_id())
    keys.master_path.unlink()
    with pytest.raises(MasterKeyMissing):
        open_file_vault(keys.master_path, keys.store)
    assert not keys.master_path.exists()
    empty = SqliteDataKeyStore(keys.folder / "empty.db")
    open_file_vault(keys.master_path, empty)  # first start: created
    assert stat.S_IMODE(keys.master_path.stat().st_mode) == 0o600


# -- concurrency ------------------------------------------------------------------------------------


def test_threads_encrypt_decrypt_and_shred_concurrently_through_a_rotation(keys: Keys, tmp_path: Path) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(7)

    def worker(n: int) -> None:
        try:
            start.wait()
            for round_ in range(6):
                lk = f"lk_{n}_{round_}"
                keys.vault.create(lk)
                blobs = [keys.vault.encrypt(lk, FACE + bytes([n, i]), f"chip:{i}") for i in range(3)]
                for i, blob in enumerate(blobs):
                    assert keys.vault.decrypt(lk, blob, f"chip:{i}") == FACE + bytes([n, i])
                with keys.vault.unlocked(lk) as face:
                    assert face.decrypt(blobs[0], "chip:0") == FACE + bytes([n, 0])
                if round_ % 2:
                    assert keys.vault.shred(lk)
                    with pytest.raises(KeyShredded):
                        keys.vault.decrypt(lk, blobs[0], "chip:0")
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    start.wait()
    new_master = FileMasterKey.load_or_create(tmp_path / "rotated.key")
    keys.vault.rotate_master(new_master)
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    remaining = list(keys.store.iterate())
    assert len(remaining) == 6 * 3  # the even rounds survive
    assert {r.master_key_id for r in remaining} == {new_master.key_id}  # none left behind on the old master
    assert leftovers(keys.store_path) == []


def test_seal_nests_one_layer_per_likeness_and_any_shred_makes_it_unreadable(keys: Keys) -> None:
    """An upload showing two enrolled people is sealed under both keys: deleting either person shreds it."""
    a, b, stranger = new_id(), new_id(), new_id()
    for lk in (a, b, stranger):
        keys.vault.create(lk)
    purpose = "input:inputs/video_1/input_image.png"
    sealed = keys.vault.seal([a, b], FACE, purpose)
    assert FACE not in sealed and FACE[:8] not in sealed
    assert len(sealed) == len(FACE) + 2 * (1 + 12 + 16)  # two layers
    assert keys.vault.unseal([a, b], sealed, purpose) == FACE
    for wrong_ids in ([b, a], [a], [b], [a, stranger]):  # another order, a missing or a foreign layer
        with pytest.raises(DecryptionError):
            keys.vault.unseal(wrong_ids, sealed, purpose)
    with pytest.raises(DecryptionError):  # bound to its blob: another video's slot does not open it
        keys.vault.unseal([a, b], sealed, "input:inputs/video_2/input_image.png")
    with pytest.raises(ValueError):
        keys.vault.seal([], FACE, purpose)

    other = keys.vault.seal([a, b], FACE, purpose)
    keys.vault.shred(a)  # the inner layer's key
    with pytest.raises(KeyShredded):
        keys.vault.unseal([a, b], sealed, purpose)
    keys.vault.create(a)  # a new key under the same id does not bring it back
    with pytest.raises(DecryptionError):
        keys.vault.unseal([a, b], other, purpose)
    only_b = keys.vault.seal([b], FACE, purpose)
    keys.vault.shred(b)  # the outer layer's key
    with pytest.raises(KeyShredded):
        keys.vault.unseal([b], only_b, purpose)
