"""Enrolment clips assembled from real photographs: what is accepted and why the rest is refused."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import pytest

from kinema.faces import (
    DIRECTIONS,
    Direction,
    EnrolmentError,
    FaceAnalyzer,
    analyze_enrolment,
    describe_challenge,
    distance,
    random_challenge,
)
from tests.faces.photos import blurred, clip, photo, scaled, zoomed_shifted

# obama_3 has the nose toward the image's right: in an unmirrored picture, the person turned to their own left.
LEFT_THEN_RIGHT = ["obama_1", "obama_3", "obama_1", "obama_2"]


def _refusal(
    analyzer: FaceAnalyzer,
    frames: np.ndarray,
    challenge: Sequence[Direction] = ("left", "right"),
    *,
    mirrored: bool = False,
    min_face_size: int = 80,
) -> str:
    with pytest.raises(EnrolmentError) as info:
        analyze_enrolment(frames, challenge, analyzer=analyzer, mirrored=mirrored, min_face_size=min_face_size)
    assert info.value.message
    return info.value.code


def test_turns_in_the_asked_order_are_accepted(analyzer: FaceAnalyzer) -> None:
    frames = clip([photo(name) for name in LEFT_THEN_RIGHT])
    enrolment = analyze_enrolment(frames, ["left", "right"], analyzer=analyzer)
    assert enrolment.frames_used == list(range(12))
    assert len(enrolment.descriptors) == len(enrolment.yaws) == 12
    assert max(enrolment.yaws) > 0.1 and min(enrolment.yaws) < -0.1
    assert enrolment.mean_descriptor.shape == (128,) and enrolment.mean_descriptor.dtype == np.float32
    (obama,) = analyzer.detect(photo("obama_1"))
    (biden,) = analyzer.detect(photo("biden_1"))
    assert distance(enrolment.mean_descriptor, obama.descriptor) < 0.3
    assert distance(enrolment.mean_descriptor, biden.descriptor) > 0.6
    # One crop per distinct frame, the frontal one first; no frame is kept whole.
    assert len(enrolment.chips) == 3
    assert all(c.shape == (256, 256, 3) and c.dtype == np.uint8 for c in enrolment.chips)
    (first_chip_face,) = analyzer.detect(enrolment.chips[0])
    assert abs(first_chip_face.yaw) < 0.05


def test_the_same_frames_fail_the_opposite_challenge(analyzer: FaceAnalyzer) -> None:
    frames = clip([photo(name) for name in LEFT_THEN_RIGHT])
    assert _refusal(analyzer, frames, ["right", "left"]) == "movement_not_seen"
    assert analyze_enrolment(frames, ["right"], analyzer=analyzer).yaws  # the right turn alone is there
    reversed_frames = clip([photo(name) for name in reversed(LEFT_THEN_RIGHT)])
    assert analyze_enrolment(reversed_frames, ["right", "left"], analyzer=analyzer).yaws


def test_a_mirrored_recording_swaps_the_sides(analyzer: FaceAnalyzer) -> None:
    frames = clip([photo(name) for name in LEFT_THEN_RIGHT])
    assert analyze_enrolment(frames, ["right", "left"], analyzer=analyzer, mirrored=True).yaws
    assert _refusal(analyzer, frames, ["left", "right"], mirrored=True) == "movement_not_seen"


def test_a_still_photograph_is_a_static_clip(analyzer: FaceAnalyzer) -> None:
    still = photo("obama_1")
    assert _refusal(analyzer, clip([still], repeat=12)) == "static_clip"
    moved = [zoomed_shifted(still, 1 + 0.01 * k, 3 * k - 15, 2 * k - 10) for k in range(12)]
    assert _refusal(analyzer, np.stack(moved)) == "static_clip"
    # A still of a turned head shows the turn but never moves.
    assert _refusal(analyzer, clip([photo("obama_3")], repeat=6), ["left"]) == "static_clip"


def test_another_person_in_the_clip_is_a_changed_face(analyzer: FaceAnalyzer) -> None:
    frames = clip([photo(name) for name in ["obama_1", "obama_3", "biden_2", "obama_2"]])
    assert _refusal(analyzer, frames) == "face_changed"


@pytest.mark.parametrize("name", ["group_obama_biden", "group_two_people"])
def test_several_faces_are_refused(analyzer: FaceAnalyzer, name: str) -> None:
    frames = clip([photo("obama_1"), photo(name)], repeat=2)
    with pytest.raises(EnrolmentError) as info:
        analyze_enrolment(frames, ["left", "right"], analyzer=analyzer)
    assert info.value.code == "multiple_faces"
    assert info.value.frame == 2


def test_a_small_face_is_refused(analyzer: FaceAnalyzer) -> None:
    small = scaled(photo("obama_1"), 0.3)  # face about 56 px wide
    assert 40 < analyzer.detect(small)[0].size < 80
    assert _refusal(analyzer, clip([small], repeat=4)) == "face_too_small"
    assert _refusal(analyzer, clip([small], repeat=4), min_face_size=40) != "face_too_small"


def test_a_blurred_face_is_refused(analyzer: FaceAnalyzer) -> None:
    frames = clip([photo("obama_1"), photo("obama_3"), blurred(photo("obama_1"), 3), photo("obama_2")])
    assert _refusal(analyzer, frames) == "face_blurry"


def test_no_face_is_refused(analyzer: FaceAnalyzer) -> None:
    assert _refusal(analyzer, np.full((6, 240, 320, 3), (40, 120, 200), dtype=np.uint8)) == "no_face"
    assert _refusal(analyzer, np.zeros((0, 240, 320, 3), dtype=np.uint8)) == "no_face"


def test_sampling_spreads_over_the_clip(analyzer: FaceAnalyzer) -> None:
    frames = clip([photo(name) for name in LEFT_THEN_RIGHT], repeat=6)  # 24 frames
    enrolment = analyze_enrolment(frames, ["left", "right"], analyzer=analyzer, samples=8)
    assert enrolment.frames_used[0] == 0 and enrolment.frames_used[-1] == 23
    assert len(enrolment.frames_used) == 8
    with pytest.raises(EnrolmentError) as info:  # too few samples to see the turns
        analyze_enrolment(frames, ["left", "right"], analyzer=analyzer, samples=2)
    assert info.value.code in {"static_clip", "movement_not_seen"}


def test_random_challenge_and_its_sentence() -> None:
    rng = random.Random(7)
    seen = {tuple(random_challenge(rng)) for _ in range(40)}
    assert seen == {("left", "right"), ("right", "left")}
    challenge = random_challenge()
    assert sorted(challenge) == sorted(DIRECTIONS)
    assert describe_challenge(["left", "right"]) == "Turn your head to your left, then to your right."
    assert describe_challenge(["right"]) == "Turn your head to your right."
    for bad in ([], ["up"], ["left", "left"]):
        with pytest.raises(ValueError):
            describe_challenge(bad)  # type: ignore[arg-type]
