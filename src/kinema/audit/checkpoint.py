"""Signed checkpoints: (tree size, root hash, time) signed with an Ed25519 key kept in a 0600 file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

_DOMAIN = b"kinema-audit-checkpoint-v1\n"


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement "the log had ``size`` entries with Merkle root ``root_hex`` at ``at``"."""

    size: int
    root_hex: str
    at: float
    key_id: str
    signature_hex: str

    def signed_bytes(self) -> bytes:
        return signed_message(self.size, self.root_hex, self.at, self.key_id)

    def to_json(self) -> str:
        return json.dumps({"type": "checkpoint", **asdict(self)}, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | dict[str, Any]) -> Checkpoint:
        """Parse ``to_json`` output (or an export's checkpoint line); unknown keys are ignored."""
        d = json.loads(text) if isinstance(text, str) else text
        return cls(
            size=int(d["size"]),
            root_hex=str(d["root_hex"]),
            at=float(d["at"]),
            key_id=str(d["key_id"]),
            signature_hex=str(d["signature_hex"]),
        )


def signed_message(size: int, root_hex: str, at: float, key_id: str) -> bytes:
    body = {"size": int(size), "root_hex": root_hex, "at": float(at), "key_id": key_id}
    return _DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


class CheckpointSigner:
    """Signs checkpoints with an Ed25519 private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = _key_id(self.public_key)
        self.public_key_pem = _public_pem(self.public_key)

    @classmethod
    def generate(cls) -> CheckpointSigner:
        """A signer with a fresh in-memory key (tests; production uses :meth:`load_or_create`)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str]) -> CheckpointSigner:
        """Load the PKCS#8 PEM key at ``path``, creating it (mode 0600, atomically: concurrent
        starters agree on one key) if absent; the public key PEM is written to ``<path>.pub``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(pem)
                    fh.flush()
                    os.fsync(fh.fileno())
                with contextlib.suppress(FileExistsError):  # another process got there first: use theirs
                    os.link(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o600)
        signer = cls(loaded)
        pub = public_key_path(path)
        if not pub.exists() or pub.read_text() != signer.public_key_pem:
            tmp_pub = pub.with_name(f".{pub.name}.{os.getpid()}.tmp")
            tmp_pub.write_text(signer.public_key_pem)
            os.replace(tmp_pub, pub)
        return signer

    def sign(self, size: int, root_hex: str, at: float) -> Checkpoint:
        sig = self._key.sign(signed_message(size, root_hex, at, self.key_id))
        return Checkpoint(size=size, root_hex=root_hex, at=float(at), key_id=self.key_id, signature_hex=sig.hex())


def public_key_path(key_path: str | os.PathLike[str]) -> Path:
    """Where :meth:`CheckpointSigner.load_or_create` puts the public key for ``key_path``."""
    p = Path(key_path)
    return p.with_name(p.name + ".pub")


def verify_signature(checkpoint: Checkpoint, public_key_pem: str | bytes) -> bool:
    """Whether ``checkpoint`` is validly signed by the Ed25519 key in ``public_key_pem``."""
    try:
        pem = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
        key = serialization.load_pem_public_key(pem)
        if not isinstance(key, Ed25519PublicKey) or _key_id(key) != checkpoint.key_id:
            return False
        key.verify(bytes.fromhex(checkpoint.signature_hex), checkpoint.signed_bytes())
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False
