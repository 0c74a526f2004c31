"""RFC 6962 hashing against hand-computed trees; checkpoint signing and the key file."""

from __future__ import annotations

import dataclasses
import hashlib
import stat

from kinema.audit import merkle
from kinema.audit.checkpoint import Checkpoint, CheckpointSigner, public_key_path, verify_signature


def H(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def L(d: bytes) -> bytes:
    return H(b"\x00" + d)


def N(a: bytes, b: bytes) -> bytes:
    return H(b"\x01" + a + b)


D = [b"a", b"b", b"c", b"d", b"e", b"f", b"g"]


def test_known_vectors() -> None:
    # RFC 6962 / CT test vectors: empty tree and the empty leaf.
    assert merkle.root([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle.leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"


def test_roots_by_hand() -> None:
    leaves = [merkle.leaf_hash(d) for d in D]
    assert leaves[0] == L(b"a")
    assert merkle.root(leaves[:1]) == L(b"a")
    assert merkle.root(leaves[:2]) == N(L(b"a"), L(b"b"))
    assert merkle.root(leaves[:3]) == N(N(L(b"a"), L(b"b")), L(b"c"))
    assert merkle.root(leaves[:5]) == N(N(N(L(b"a"), L(b"b")), N(L(b"c"), L(b"d"))), L(b"e"))
    # 7: left = first 4, right = MTH(e, f, g) = N(N(e, f), g)
    left = N(N(L(b"a"), L(b"b")), N(L(b"c"), L(b"d")))
    assert merkle.root(leaves) == N(left, N(N(L(b"e"), L(b"f")), L(b"g")))


def _recursive(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return N(_recursive(leaves[:k]), _recursive(leaves[k:]))


def test_iterative_matches_rfc_split() -> None:
    leaves = [merkle.leaf_hash(str(i).encode()) for i in range(70)]
    for n in range(1, 71):
        assert merkle.root(leaves[:n]) == _recursive(leaves[:n]), n


def test_is_prefix() -> None:
    leaves = [merkle.leaf_hash(d) for d in D]
    r3 = merkle.root(leaves[:3])
    assert merkle.is_prefix(3, r3, leaves)
    assert not merkle.is_prefix(3, r3, [leaves[1], leaves[0], *leaves[2:]])
    assert not merkle.is_prefix(8, r3, leaves)


def test_signer_key_file_and_signature(tmp_path) -> None:
    path = tmp_path / "keys" / "audit-signing.key"
    signer = CheckpointSigner.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_key_path(path).read_text() == signer.public_key_pem
    assert "PRIVATE" not in signer.public_key_pem
    again = CheckpointSigner.load_or_create(path)
    assert again.key_id == signer.key_id

    cp = signer.sign(5, "ab" * 32, 1234.5)
    assert verify_signature(cp, signer.public_key_pem)
    assert Checkpoint.from_json(cp.to_json()) == cp
    assert not verify_signature(dataclasses.replace(cp, size=6), signer.public_key_pem)
    assert not verify_signature(dataclasses.replace(cp, root_hex="cd" * 32), signer.public_key_pem)
    other = CheckpointSigner.generate()
    assert not verify_signature(cp, other.public_key_pem)
    forged = other.sign(5, "ab" * 32, 1234.5)
    assert not verify_signature(dataclasses.replace(forged, key_id=signer.key_id), signer.public_key_pem)
