"""Descriptor comparison: distances, the same-person decision, best matches (numpy only, no photographs)."""

from __future__ import annotations

import numpy as np
import pytest

from kinema.faces import SAME_PERSON, best_match, distance, same_person


def test_distance_is_euclidean_and_symmetric() -> None:
    a = np.zeros(128, dtype=np.float32)
    b = np.zeros(128, dtype=np.float32)
    b[:4] = 0.3  # norm 0.6
    assert distance(a, a) == 0.0
    assert distance(a, b) == pytest.approx(0.6)
    assert distance(b, a) == distance(a, b)


def test_same_person_is_strictly_below_the_threshold() -> None:
    a = np.zeros(128)
    b = np.zeros(128)
    b[0] = SAME_PERSON
    assert SAME_PERSON == 0.6
    assert not same_person(a, b)
    assert same_person(a, b, threshold=0.61)
    b[0] = 0.59
    assert same_person(a, b)


def test_malformed_descriptors_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        distance(np.zeros(128), np.zeros(127))
    with pytest.raises(ValueError, match="finite"):
        distance(np.full(128, np.nan), np.zeros(128))


def test_best_match_takes_the_closest_within_the_threshold() -> None:
    probe = np.zeros(128)
    near, nearer, far = np.zeros(128), np.zeros(128), np.zeros(128)
    near[0], nearer[0], far[0] = 0.5, 0.3, 0.9
    match = best_match(probe, [("near", near), ("nearer", nearer), ("far", far)])
    assert match is not None
    assert match[0] == "nearer"
    assert match[1] == pytest.approx(0.3)
    assert best_match(probe, [("far", far)]) is None
    assert best_match(probe, []) is None
    assert best_match(probe, iter([("near", near)]), threshold=0.4) is None
    tie = best_match(probe, [("first", near), ("second", near.copy())])
    assert tie is not None and tie[0] == "first"
