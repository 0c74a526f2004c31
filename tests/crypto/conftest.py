"""Fixtures for the likeness vault: a key folder with a file master key and a SQLite data-key store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from kinema.crypto import FileMasterKey, LikenessVault, SqliteDataKeyStore


@dataclass
class Keys:
    folder: Path
    master_path: Path
    store_path: Path
    master: FileMasterKey
    store: SqliteDataKeyStore
    vault: LikenessVault


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    folder = tmp_path / "keys"
    master_path = folder / "master.key"
    store_path = folder / "datakeys.db"
    master = FileMasterKey.load_or_create(master_path)
    store = SqliteDataKeyStore(store_path)
    return Keys(folder, master_path, store_path, master, store, LikenessVault(store, master))
