"""The data-key store: wrapped likeness data keys, kept apart from the main database.

A copy of the main database and blobs therefore never holds a key, wrapped or not, and deleting a
row here is what shreds a likeness. :class:`DataKeyStore` is the interface (a KMS- or Vault-backed
store can implement it); :class:`SqliteDataKeyStore` is the embedded default.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from kinema.crypto.errors import KeyFileError, LikenessKeyExists


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One row of the store: a data key as wrapped by the master key ``master_key_id``."""

    likeness_id: str
    wrapped_key: bytes
    master_key_id: str
    created_at: datetime

    def __repr__(self) -> str:  # the wrapped key is not secret on its own, but keep it out of logs anyway
        return (
            f"StoredKey(likeness_id={self.likeness_id!r}, master_key_id={self.master_key_id!r}, "
            f"created_at={self.created_at.isoformat()!r})"
        )


@runtime_checkable
class DataKeyStore(Protocol):
    """Durable map likeness id -> wrapped data key. Every mutation is durable when the call returns."""

    def put(self, likeness_id: str, wrapped_key: bytes, master_key_id: str) -> StoredKey:
        """Insert a new key; raise :class:`LikenessKeyExists` if the likeness already has one."""
        ...

    def get(self, likeness_id: str) -> StoredKey | None:
        """The stored key of ``likeness_id``, or None if there is none (shredded or never created)."""
        ...

    def delete(self, likeness_id: str) -> bool:
        """Destroy the key irrecoverably (no copy left in the store's files); True if one existed."""
        ...

    def replace(self, likeness_id: str, expected: bytes, wrapped_key: bytes, master_key_id: str) -> bool:
        """Compare-and-swap: rewrap only if the row still holds ``expected``; never resurrects a deleted row."""
        ...

    def iterate(self) -> Iterator[StoredKey]:
        """Every stored key, ordered by likeness id; must not hold locks between items (callers write meanwhile)."""
        ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS data_keys (
    likeness_id   TEXT PRIMARY KEY,
    wrapped_key   BLOB NOT NULL,
    master_key_id TEXT NOT NULL,
    created_at    TEXT NOT NULL
)
"""
_PAGE = 256


class SqliteDataKeyStore:
    """Wrapped data keys in a SQLite file (default ``<data_dir>/keys/datakeys.db``; folder 0700, file 0600).

    Every connection runs with ``secure_delete=ON`` (deleted or rewritten rows, and freed pages, are
    overwritten with zeros in place), a rollback journal (``journal_mode=DELETE``, never WAL, so no
    second copy of a page outlives its transaction) and ``synchronous=EXTRA`` (the journal's removal
    is fsynced too, so a committed shred survives power loss). Each call opens its own connection and
    commits before returning, which makes the store safe across threads and processes; SQLite's file
    locks serialise writers, and ``busy_timeout`` makes them wait rather than fail.
    """

    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self._timeout = busy_timeout_s
        self._prepare_files()
        with self._connect() as conn:
            conn.execute(_SCHEMA)

    def __repr__(self) -> str:
        return f"SqliteDataKeyStore({str(self.path)!r})"

    # -- files and connections -------------------------------------------------------------------

    def _prepare_files(self) -> None:
        folder = self.path.parent
        if not folder.exists():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask
        # Create the file ourselves with 0600 so SQLite never creates it with umask permissions;
        # SQLite gives its journal the database file's permissions.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"data-key store {self.path} is not a regular file")
        if st.st_mode & 0o077:
            raise KeyFileError(
                f"data-key store {self.path} has mode {stat.S_IMODE(st.st_mode):04o}; it must not be accessible "
                f"by group or others. Fix with: chmod 600 {self.path}"
            )

    def _connect(self, *, write: bool = True) -> _Connection:
        return _Connection(self.path, self._timeout, write=write)

    # -- DataKeyStore ----------------------------------------------------------------------------

    def put(self, likeness_id: str, wrapped_key: bytes, master_key_id: str) -> StoredKey:
        """Insert a new row; raise :class:`LikenessKeyExists` if ``likeness_id`` already has one."""
        created = datetime.now(UTC)
        with self._connect() as conn:
            try:
                conn.execute(
                    "INSERT INTO data_keys (likeness_id, wrapped_key, master_key_id, created_at) VALUES (?, ?, ?, ?)",
                    (likeness_id, wrapped_key, master_key_id, created.isoformat()),
                )
            except sqlite3.IntegrityError:
                raise LikenessKeyExists(likeness_id) from None
        return StoredKey(likeness_id, wrapped_key, master_key_id, created)

    def get(self, likeness_id: str) -> StoredKey | None:
        """The row of ``likeness_id``, or None."""
        with self._connect(write=False) as conn:
            row = conn.execute(
                "SELECT likeness_id, wrapped_key, master_key_id, created_at FROM data_keys WHERE likeness_id = ?",
                (likeness_id,),
            ).fetchone()
        return _row(row) if row else None

    def delete(self, likeness_id: str) -> bool:
        """Delete the row; with ``secure_delete`` its bytes are zeroed in the file before the commit returns."""
        with self._connect() as conn:
            return conn.execute("DELETE FROM data_keys WHERE likeness_id = ?", (likeness_id,)).rowcount > 0

    def replace(self, likeness_id: str, expected: bytes, wrapped_key: bytes, master_key_id: str) -> bool:
        """Rewrap one row if it still holds ``expected``; the old wrapped bytes are overwritten in place."""
        with self._connect() as conn:
            cursor = conn.execute(
                "UPDATE data_keys SET wrapped_key = ?, master_key_id = ? WHERE likeness_id = ? AND wrapped_key = ?",
                (wrapped_key, master_key_id, likeness_id, expected),
            )
            return cursor.rowcount > 0

    def iterate(self) -> Iterator[StoredKey]:
        """Every row by likeness id, fetched in pages so no read lock is held while the caller works."""
        after = ""
        while True:
            with self._connect(write=False) as conn:
                rows = conn.execute(
                    "SELECT likeness_id, wrapped_key, master_key_id, created_at FROM data_keys "
                    "WHERE likeness_id > ? ORDER BY likeness_id LIMIT ?",
                    (after, _PAGE),
                ).fetchall()
            yield from (_row(r) for r in rows)
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    def count(self) -> int:
        """How many data keys are stored."""
        with self._connect(write=False) as conn:
            return int(conn.execute("SELECT count(*) FROM data_keys").fetchone()[0])


class _Connection:
    """One short-lived connection: pragmas set, one transaction, committed (or rolled back) and closed on exit.

    ``journal_mode`` is re-asserted on every connection: it is what turns a WAL file left by some other
    tool back into the main file (and removes it) before we read or write.
    """

    def __init__(self, path: Path, timeout: float, *, write: bool) -> None:
        self._write = write
        self._conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=True)
        try:
            self._conn.execute("PRAGMA secure_delete=ON")
            mode = self._conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
            if str(mode).lower() != "delete":
                raise sqlite3.OperationalError(f"could not set journal_mode=DELETE (got {mode})")
            self._conn.execute("PRAGMA synchronous=EXTRA")
        except BaseException:
            self._conn.close()
            raise

    def __enter__(self) -> sqlite3.Connection:
        # Writers take the write lock up front (IMMEDIATE), so two never deadlock upgrading a read lock.
        self._conn.execute("BEGIN IMMEDIATE" if self._write else "BEGIN")
        return self._conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self._conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")
        finally:
            self._conn.close()


def _row(row: tuple[str, bytes, str, str]) -> StoredKey:
    return StoredKey(row[0], bytes(row[1]), row[2], datetime.fromisoformat(row[3]))
