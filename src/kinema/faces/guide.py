"""The live guide of webcam enrolment: what one small camera frame says about the person's pose, in the terms of
the enrolment check (``kinema.faces.enrolment``), so that a clip recorded while the guide says "good" passes.

The thresholds are the enrolment check's own (``MIN_FACE_SIZE`` at ``ANALYSIS_MAX_SIDE``, ``MIN_TURN``), not
copies; a turn is asked ``TURN_MARGIN`` times farther than ``MIN_TURN`` because the check measures turns from
the whole clip's median pose, which can lie a little off the resting pose the guide measured.

Frames are unmirrored (as the camera gives them, like the recording): "left" is the person's own left, a
positive yaw (see ``Face.yaw``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from kinema.faces.analyzer import FaceAnalyzer
from kinema.faces.enrolment import ANALYSIS_MAX_SIDE, MIN_FACE_SIZE, MIN_TURN

Target = Literal["straight", "left", "right"]
Hint = Literal["no_face", "multiple_faces", "move_closer", "centre", "look_straight", "turn_further", "hold", "good"]

TURN_MARGIN: Final = 1.5
"""A turn counts as good from ``TURN_MARGIN * MIN_TURN`` (about 16 degrees): margin for the clip's median pose."""
STRAIGHT_TOLERANCE: Final = MIN_TURN / 2
"""Largest yaw change from the resting pose that still counts as looking straight (the check's end of a turn)."""
SIZE_MARGIN: Final = 1.25
"""The face must be this much wider than the check's smallest face, so a small step back does not refuse it."""
MAX_CENTRE_OFFSET: Final = (0.2, 0.3)
"""Largest distance of the face's centre from the frame's centre, as fractions of the frame's width and height
(more up and down: a face usually sits above the middle, and turns move it sideways)."""

MESSAGES: Final[dict[Hint, str]] = {
    "no_face": "No face found: face the camera in good light.",
    "multiple_faces": "More than one face in view: only you should be in the picture.",
    "move_closer": "Move closer to the camera.",
    "centre": "Centre your face in the frame.",
    "look_straight": "Look straight at the camera.",
    "turn_further": "Turn your head further to your {direction}.",
    "hold": "Hold still.",
    "good": "Good: hold it there.",
}


@dataclass(frozen=True)
class Guidance:
    """What the guide says about one frame.

    Attributes:
        hint: the next thing the person should do (``hold``: ready, looking straight; ``good``: turned far
            enough to the asked side).
        message: ``hint`` in words, for people.
        box: the largest face's ``(left, top, right, bottom)`` as fractions of the frame's width and height
            (unmirrored), or None without a face.
        yaw: that face's ``Face.yaw`` (positive: turned to the person's own left), or None.
        turn: its yaw change from the resting pose toward the asked side (for ``straight``: the absolute
            change), or None.
    """

    hint: Hint
    message: str
    box: tuple[float, float, float, float] | None = None
    yaw: float | None = None
    turn: float | None = None


def guide(
    analyzer: FaceAnalyzer, image: np.ndarray, target: Target = "straight", rest: float | None = None
) -> Guidance:
    """The guidance for one RGB ``uint8`` frame of the camera, for a person asked to look ``target``.

    ``rest`` is the person's resting yaw (measured while they looked straight), from which turns are measured
    as the enrolment check measures them from the clip's median. Before it is known (None), turns are measured
    from 0 and "straight" is anything short of a turn (``MIN_TURN``): a face whose frontal yaw is a little
    off 0 (a camera to one side) must still be able to start. The face must be at least
    ``SIZE_MARGIN * MIN_FACE_SIZE`` px wide once the frame is scaled to ``ANALYSIS_MAX_SIDE`` (as a recording
    of that size is analysed) and centred within ``MAX_CENTRE_OFFSET``.
    """
    height, width = image.shape[:2]
    faces = analyzer.locate(image, 1)
    if not faces:
        return _say("no_face")
    face = faces[0]
    left, top, right, bottom = face.box
    box = (left / width, top / height, right / width, bottom / height)
    yaw = face.yaw
    if len(faces) > 1:
        return _say("multiple_faces", box=box, yaw=yaw)
    if face.size * ANALYSIS_MAX_SIDE / max(width, height) < SIZE_MARGIN * MIN_FACE_SIZE:
        return _say("move_closer", box=box, yaw=yaw)
    centre_x, centre_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    if abs(centre_x - 0.5) > MAX_CENTRE_OFFSET[0] or abs(centre_y - 0.5) > MAX_CENTRE_OFFSET[1]:
        return _say("centre", box=box, yaw=yaw)
    base = 0.0 if rest is None else rest
    if target == "straight":
        change = abs(yaw - base)
        tolerance = MIN_TURN if rest is None else STRAIGHT_TOLERANCE
        return _say("hold" if change <= tolerance else "look_straight", turn=change, box=box, yaw=yaw)
    turn = _sign(target) * (yaw - base)
    if turn > TURN_MARGIN * MIN_TURN:
        return _say("good", turn=turn, box=box, yaw=yaw)
    return _say("turn_further", direction=target, turn=turn, box=box, yaw=yaw)


def _sign(direction: str) -> float:
    """+1 for the person's own left (the nose toward the unmirrored image's right), -1 for their right."""
    return 1.0 if direction == "left" else -1.0


def _say(
    hint: Hint,
    *,
    box: tuple[float, float, float, float] | None = None,
    yaw: float | None = None,
    turn: float | None = None,
    direction: str = "",
) -> Guidance:
    return Guidance(hint, MESSAGES[hint].format(direction=direction), box, yaw, turn)
