"""RFC 6962 Merkle tree hashing (Certificate Transparency): leaf = SHA-256(0x00 || data),
node = SHA-256(0x01 || left || right), and for n leaves the left subtree holds the largest power
of two strictly below n."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """The RFC 6962 hash of one leaf's bytes."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 hash of an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def root(leaves: Sequence[bytes]) -> bytes:
    """Merkle Tree Hash of a list of *leaf hashes* (not leaf data); SHA-256("") for none.

    Pairing left to right and carrying an odd last node up unchanged builds exactly the RFC 6962
    tree (left subtree = largest power of two below n), in O(n) without recursion.
    """
    level = list(leaves)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def is_prefix(old_size: int, old_root: bytes, leaves: Sequence[bytes]) -> bool:
    """Whether a tree of ``old_size`` leaves with root ``old_root`` is a prefix of ``leaves``
    (consistency by recomputation: the root of the first ``old_size`` leaves must match)."""
    if old_size < 0 or old_size > len(leaves):
        return False
    return root(leaves[:old_size]) == old_root
