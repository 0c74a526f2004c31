"""The file master key: created 0600 and atomically, unsafe files refused, wrapping bound to its AAD."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from kinema.crypto import DecryptionError, FileMasterKey, KeyFileError, MasterKey, MasterKeyMismatch


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_created_0600_with_32_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master.key"
    old_umask = os.umask(0)  # even with a permissive umask the file is never wider than 0600
    try:
        master = FileMasterKey.load_or_create(path)
    finally:
        os.umask(old_umask)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert len(path.read_bytes()) == 32
    assert isinstance(master, MasterKey)
    assert len(master.key_id) == 16 and master.key_id != path.read_bytes().hex()[:16]
    assert FileMasterKey.load_or_create(path).key_id == master.key_id  # second start: same key
    assert list(path.parent.iterdir()) == [path]  # no temporary left behind
    assert path.read_bytes().hex() not in repr(master)


@pytest.mark.parametrize("unsafe", [0o644, 0o640, 0o604, 0o660])
def test_group_or_world_accessible_key_file_refused(tmp_path: Path, unsafe: int) -> None:
    path = tmp_path / "master.key"
    path.write_bytes(os.urandom(32))
    os.chmod(path, unsafe)
    with pytest.raises(KeyFileError, match=r"chmod 600"):
        FileMasterKey.load(path)
    with pytest.raises(KeyFileError):
        FileMasterKey.load_or_create(path)
    os.chmod(path, 0o600)
    FileMasterKey.load(path)  # fine once fixed


def test_operator_supplied_key_file_and_bad_lengths(tmp_path: Path) -> None:
    path = tmp_path / "given.key"
    key = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o400)
    os.write(fd, key)
    os.close(fd)
    assert FileMasterKey.load(path).key_id == FileMasterKey(key).key_id
    for size in (16, 33):
        bad = tmp_path / f"bad{size}.key"
        fd = os.open(bad, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, os.urandom(size))
        os.close(fd)
        with pytest.raises(KeyFileError, match="32 raw bytes"):
            FileMasterKey.load(bad)
    with pytest.raises(FileNotFoundError):
        FileMasterKey.load(tmp_path / "absent.key")


def test_concurrent_first_starts_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master.key"
    ids: list[str] = []
    barrier = threading.Barrier(6)

    def start() -> None:
        barrier.wait()
        ids.append(FileMasterKey.load_or_create(path).key_id)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 6 and len(set(ids)) == 1
    assert FileMasterKey.load(path).key_id == ids[0]


def test_wrap_format_and_aad_binding() -> None:
    master = FileMasterKey(os.urandom(32))
    other = FileMasterKey(os.urandom(32))
    data_key = os.urandom(32)
    wrapped = master.wrap(data_key, b"likeness-a")
    assert wrapped[0] == 1 and FileMasterKey.wrapped_key_id(wrapped) == master.key_id
    assert len(wrapped) == 1 + 8 + 12 + 32 + 16
    assert master.wrap(data_key, b"likeness-a") != wrapped  # fresh nonce every time
    assert master.unwrap(wrapped, b"likeness-a") == data_key
    with pytest.raises(DecryptionError):
        master.unwrap(wrapped, b"likeness-b")
    with pytest.raises(MasterKeyMismatch):
        other.unwrap(wrapped, b"likeness-a")
    for i in range(len(wrapped)):
        tampered = bytearray(wrapped)
        tampered[i] ^= 0x01
        with pytest.raises((DecryptionError, MasterKeyMismatch)):
            master.unwrap(bytes(tampered), b"likeness-a")
