"""Comparing face descriptors: distances, the same-person decision and best matches.

Descriptors are dlib's 128-d face embeddings (``FaceAnalyzer.detect`` gives them). Two faces of one person lie
close together in that space: on the test photographs same-identity distances are 0.34-0.51 and different
identities 0.69 and above, and dlib's customary threshold is 0.6 (99.38 % on LFW).

This module needs only numpy, so matching works where dlib is not installed (stored descriptors, a database).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import numpy as np

SAME_PERSON: Final[float] = 0.6
"""Descriptor distance below which two faces are taken as one person (dlib's customary threshold)."""


def _vector(descriptor: np.ndarray, name: str) -> np.ndarray:
    vec = np.asarray(descriptor, dtype=np.float64).reshape(-1)
    if vec.size == 0 or not np.all(np.isfinite(vec)):
        raise ValueError(f"{name} must be a non-empty finite vector")
    return vec


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two face descriptors (0 for the same vector; same person below ~0.6)."""
    va, vb = _vector(a, "a"), _vector(b, "b")
    if va.shape != vb.shape:
        raise ValueError(f"descriptors differ in length: {va.size} and {vb.size}")
    return float(np.linalg.norm(va - vb))


def same_person(a: np.ndarray, b: np.ndarray, threshold: float = SAME_PERSON) -> bool:
    """Whether two descriptors belong to one person: their distance is strictly below ``threshold``."""
    return distance(a, b) < threshold


def best_match(
    descriptor: np.ndarray,
    candidates: Iterable[tuple[str, np.ndarray]],
    threshold: float = SAME_PERSON,
) -> tuple[str, float] | None:
    """The candidate closest to ``descriptor``, as ``(name, distance)``, if it is closer than ``threshold``.

    ``candidates`` are ``(name, descriptor)`` pairs, for instance enrolled likenesses by id. On a tie the first
    candidate wins. ``None`` when there are no candidates or none lies strictly below the threshold.
    """
    best: tuple[str, float] | None = None
    for name, candidate in candidates:
        d = distance(descriptor, candidate)
        if d < threshold and (best is None or d < best[1]):
            best = (name, d)
    return best
