"""The live enrolment guide (kinema.faces.guide) on the real test photographs, at the size the page sends (320 px
wide): its hints, and that "good" lies beyond the enrolment check's own turn threshold."""

from __future__ import annotations

import numpy as np
import pytest

from kinema.faces import FaceAnalyzer
from kinema.faces.enrolment import MIN_TURN
from kinema.faces.guide import TURN_MARGIN, guide
from testkit.faces.photos import photo, scaled


def frame(name: str, width: int = 320) -> np.ndarray:
    """A test photograph as the page would send it: ``width`` px wide."""
    image = photo(name)
    return scaled(image, width / image.shape[1])


def placed(image: np.ndarray, canvas: tuple[int, int], at: tuple[int, int]) -> np.ndarray:
    """``image`` pasted on a grey canvas of ``(width, height)`` with its top left corner at ``at``."""
    out = np.full((canvas[1], canvas[0], 3), 90, dtype=np.uint8)
    part = image[: canvas[1] - at[1], : canvas[0] - at[0]]
    h, w = part.shape[:2]
    out[at[1] : at[1] + h, at[0] : at[0] + w] = part
    return out


def test_a_frontal_face_centred_is_ready(analyzer: FaceAnalyzer) -> None:
    found = guide(analyzer, frame("obama_1"), "straight")
    assert found.hint == "hold", found
    assert found.message == "Hold still."
    assert found.box is not None and found.yaw is not None
    left, top, right, bottom = found.box
    assert 0.0 <= left < right <= 1.0 and 0.0 <= top < bottom <= 1.0
    assert 0.3 < (left + right) / 2 < 0.7  # the face is in the middle of the photograph
    assert abs(found.yaw) < 0.05


def test_turns_are_good_only_past_the_enrolment_threshold(analyzer: FaceAnalyzer) -> None:
    rest = guide(analyzer, frame("obama_1")).yaw
    assert rest is not None
    # obama_3 is turned to the person's own left (nose toward the image's right), obama_2 to their right.
    to_left = guide(analyzer, frame("obama_3"), "left", rest)
    assert to_left.hint == "good", to_left
    assert to_left.turn is not None and to_left.turn > TURN_MARGIN * MIN_TURN
    wrong_way = guide(analyzer, frame("obama_3"), "right", rest)
    assert wrong_way.hint == "turn_further" and wrong_way.message == "Turn your head further to your right."
    assert wrong_way.turn is not None and wrong_way.turn < 0
    assert guide(analyzer, frame("obama_2"), "right", rest).hint == "good"
    # Asked to look straight while turned: not ready.
    assert guide(analyzer, frame("obama_2"), "straight", rest).hint == "look_straight"
    # A resting pose that is itself turned moves the bar: the same photograph is then not far enough.
    shifted = guide(analyzer, frame("obama_3"), "left", rest=to_left.yaw - MIN_TURN)  # type: ignore[operator]
    assert shifted.hint == "turn_further"


def test_no_face_several_faces_too_far_and_off_centre(analyzer: FaceAnalyzer) -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    nothing = guide(analyzer, noise)
    assert nothing.hint == "no_face" and nothing.box is None and nothing.yaw is None
    assert nothing.message.startswith("No face found")
    assert guide(analyzer, frame("group_obama_biden", 480)).hint == "multiple_faces"
    # The face a small part of a large frame: once the frame is analysed at 640 px it is under the minimum.
    small = placed(frame("obama_1", 110), (640, 480), (265, 170))
    far = guide(analyzer, small)
    assert far.hint == "move_closer", far
    # A big enough face at the frame's left edge.
    face = frame("obama_1", 300)[:, 100:]
    corner = placed(face, (480, 360), (0, 0))
    off = guide(analyzer, corner)
    assert off.hint == "centre", off
    assert off.box is not None and (off.box[0] + off.box[2]) / 2 < 0.3


@pytest.mark.parametrize("target", ["left", "right"])
def test_the_turn_hint_names_the_asked_side(analyzer: FaceAnalyzer, target: str) -> None:
    found = guide(analyzer, frame("obama_1"), target)  # type: ignore[arg-type]
    assert found.hint == "turn_further"
    assert found.message.endswith(f"to your {target}.")


def test_locate_finds_what_detect_finds_without_describing(analyzer: FaceAnalyzer) -> None:
    for name in ("obama_1", "obama_3", "group_obama_biden"):
        image = frame(name)
        detected, located = analyzer.detect(image), analyzer.locate(image)
        assert len(located) == len(detected) >= 1
        for d, f in zip(detected, located, strict=True):
            assert f.box == d.box and f.size == d.size and f.yaw == pytest.approx(d.yaw)
            assert not f.landmarks.flags.writeable
