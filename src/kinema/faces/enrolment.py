"""Enrolling a likeness: checking a short clip in which a person shows their own face and turns their head.

``analyze_enrolment`` samples frames evenly from the clip and refuses it (``EnrolmentError`` with a ``code``)
unless, in this order:

1. every sampled frame shows exactly one face (``no_face``, ``multiple_faces``);
2. the face is at least ``min_face_size`` px wide (``face_too_small``) and sharp (``face_blurry``) in every one;
3. it is the same person throughout: every descriptor lies within ``same_person_threshold`` of the medoid
   descriptor, the sampled face closest to all the others (``face_changed``);
4. the face moves at all: a clip made from one still photograph, even zoomed or shifted, keeps the landmarks'
   shape (position, scale and rotation taken out) fixed (``static_clip``);
5. the head turns as the challenge asks, in that order (``movement_not_seen``).

**Directions are the person's own**: "left" means the person turns their head to their left, as they would
understand the instruction. In an unmirrored camera recording (what a camera file or a browser's MediaRecorder
holds; only on-screen previews are usually mirrored) that moves the nose toward the image's right, which is a
positive ``Face.yaw``. Pass ``mirrored=True`` for a recording stored mirrored.

What this is not: a full anti-spoofing (presentation attack) check. The random challenge defeats replaying a
still photograph or a pre-recorded clip that turns the wrong way, but a two-step left/right challenge has only
two possible orders, and a live deepfake or a screen replay is out of its reach.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, get_args

import numpy as np

from kinema.faces.analyzer import Face, FaceAnalyzer, as_rgb, default_analyzer, normalized_landmarks
from kinema.faces.matching import SAME_PERSON

Direction = Literal["left", "right"]
DIRECTIONS: Final[tuple[Direction, ...]] = get_args(Direction)

EnrolmentErrorCode = Literal[
    "no_face",
    "multiple_faces",
    "face_too_small",
    "face_blurry",
    "face_changed",
    "static_clip",
    "movement_not_seen",
]

MIN_FACE_SIZE: Final = 80
"""Smallest accepted face width in px: below it dlib's descriptor (computed on a 150 px chip) is upscaled mush."""
MIN_SHARPNESS: Final = 25.0
"""Smallest accepted ``Face.sharpness``. Sharp test photographs measure 89-580; a Gaussian blur of radius 1 leaves
faces of 160-220 px at 59-103, radius 2 brings them to 12-20, radius 3 to 5-8."""
MIN_TURN: Final = 0.10
"""``|yaw|`` a turn must exceed to count (roughly 14 degrees; the ratio is about 0.4 tan(angle)). The frontal test
photographs measure -0.02 and -0.01 (biden_1, slightly turned and tilted, +0.09), the turned ones -0.14 and
+0.13; a person asked to turn their head usually turns 20-45 degrees (0.15-0.4)."""
MIN_MOTION: Final = 0.05
"""Landmark movement (in eye distances, position, scale and in-plane rotation removed) below which a clip counts
as made from a still image. A photograph zoomed by up to 11 % and shifted by up to 33 px moves by 0.018 (detector
jitter); any turn beyond ``MIN_TURN`` moves the nose by more than 0.1, so a clip that passes the challenge is
never static."""


class EnrolmentError(Exception):
    """An enrolment clip was refused. ``code`` is stable (for APIs and translations), ``message`` is for people.

    ``frame`` is the index (in the clip) of the frame the problem was seen in, when there is one.
    """

    def __init__(self, code: EnrolmentErrorCode, message: str, frame: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code: EnrolmentErrorCode = code
        self.message = message
        self.frame = frame


@dataclass(frozen=True, eq=False)
class Enrolment:
    """What an accepted clip yields; no full frames are kept.

    Attributes:
        descriptors: the face descriptor of every sampled frame (128 ``float32`` each).
        mean_descriptor: their mean, the likeness's reference descriptor.
        chips: up to ``n_chips`` aligned face crops (RGB ``uint8``, ``chip_size`` square) from the most frontal,
            sharpest distinct frames, as references for video generation.
        yaws: ``Face.yaw`` of every sampled frame, in image terms (positive: nose toward the image's right).
        frames_used: the indices in the clip of the sampled frames, in order.
    """

    descriptors: list[np.ndarray]
    mean_descriptor: np.ndarray
    chips: list[np.ndarray]
    yaws: list[float]
    frames_used: list[int]


def random_challenge(rng: random.Random | None = None) -> list[Direction]:
    """Two distinct head turns in random order: ``["left", "right"]`` or ``["right", "left"]``.

    ``rng`` defaults to the operating system's generator (``secrets.SystemRandom``); pass a seeded
    ``random.Random`` only in tests.
    """
    chooser = rng if rng is not None else secrets.SystemRandom()
    first = chooser.choice(DIRECTIONS)
    second: Direction = "right" if first == "left" else "left"
    return [first, second]


def describe_challenge(challenge: Sequence[Direction]) -> str:
    """The instruction to show the person, e.g. ``"Turn your head to your left, then to your right."``."""
    _check_challenge(challenge)
    return "Turn your head " + ", then ".join(f"to your {direction}" for direction in challenge) + "."


def _check_challenge(challenge: Sequence[Direction]) -> None:
    if not challenge:
        raise ValueError("the challenge needs at least one direction")
    for direction in challenge:
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}; expected one of {', '.join(DIRECTIONS)}")
    for a, b in zip(challenge, challenge[1:], strict=False):
        if a == b:
            raise ValueError("the same direction twice in a row cannot be told apart from one turn")


def sample_indices(frame_count: int, samples: int) -> list[int]:
    """``samples`` frame indices spread evenly from the first frame to the last (all frames if there are fewer)."""
    if frame_count <= 0:
        return []
    count = max(1, min(samples, frame_count))
    return sorted({int(i) for i in np.linspace(0, frame_count - 1, num=count).round()})


def analyze_enrolment(
    frames: np.ndarray | Sequence[np.ndarray],
    challenge: Sequence[Direction],
    *,
    samples: int = 12,
    analyzer: FaceAnalyzer | None = None,
    upsample: int = 1,
    min_face_size: int = MIN_FACE_SIZE,
    min_sharpness: float = MIN_SHARPNESS,
    same_person_threshold: float = SAME_PERSON,
    min_turn: float = MIN_TURN,
    min_motion: float = MIN_MOTION,
    mirrored: bool = False,
    n_chips: int = 3,
    chip_size: int = 256,
    chip_padding: float = 0.25,
) -> Enrolment:
    """Check an enrolment clip and extract the likeness from it; see the module docstring for the checks.

    Args:
        frames: the clip, ``(T, H, W, 3)`` RGB ``uint8`` (or a sequence of such frames).
        challenge: the head turns asked of the person, in order, in their own terms (``random_challenge``).
        samples: how many frames to analyse, spread evenly over the clip (about 0.3 s each on one CPU core for
            an 800 px frame). A turn must last at least the gap between two samples to be seen.
        analyzer: the ``FaceAnalyzer`` to use; default: a shared one on the installed models.
        upsample: passed to ``FaceAnalyzer.detect``; 1 finds faces down to about 40 px, so a small face is
            reported as too small rather than missing.
        min_face_size: smallest accepted face width in px.
        min_sharpness: smallest accepted ``Face.sharpness``.
        same_person_threshold: largest accepted distance from the medoid descriptor.
        min_turn: ``|yaw|`` beyond which the head counts as turned.
        min_motion: landmark movement below which the clip counts as made from a still image.
        mirrored: the recording is stored mirrored (swaps which image side is the person's left).
        n_chips, chip_size, chip_padding: how many reference crops to keep, their side and padding.

    Raises:
        EnrolmentError: the clip is refused; ``code`` says why.
        ValueError: the arguments are malformed (bad challenge, frames not RGB ``uint8``).
    """
    _check_challenge(challenge)
    if samples < 1:
        raise ValueError("samples must be >= 1")
    face_analyzer = analyzer if analyzer is not None else default_analyzer()
    indices = sample_indices(len(frames), samples)
    if not indices:
        raise EnrolmentError("no_face", "the clip has no frames")

    # 1. Exactly one face per sampled frame. Identical frames (a repeated still) are analysed once.
    cache: dict[bytes, Face] = {}
    digests: list[bytes] = []
    faces: list[Face] = []
    for index in indices:
        frame = as_rgb(frames[index])
        digest = _digest(frame)
        face = cache.get(digest)
        if face is None:
            found = face_analyzer.detect(frame, upsample=upsample)
            if not found:
                raise EnrolmentError("no_face", "no face was found; face the camera in good light", index)
            if len(found) > 1:
                raise EnrolmentError(
                    "multiple_faces",
                    f"{len(found)} faces were found; only the person enrolling may be in the picture",
                    index,
                )
            face = cache[digest] = found[0]
        digests.append(digest)
        faces.append(face)

    # 2. Size and sharpness.
    smallest = min(range(len(faces)), key=lambda i: faces[i].size)
    if faces[smallest].size < min_face_size:
        raise EnrolmentError(
            "face_too_small",
            f"the face is {faces[smallest].size} px wide, at least {min_face_size} px are needed; come closer",
            indices[smallest],
        )
    blurriest = min(range(len(faces)), key=lambda i: faces[i].sharpness)
    if faces[blurriest].sharpness < min_sharpness:
        raise EnrolmentError(
            "face_blurry",
            f"the face is blurred (sharpness {faces[blurriest].sharpness:.1f}, at least {min_sharpness:g} needed); "
            "hold the camera still, focus and light the face",
            indices[blurriest],
        )

    # 3. One person throughout: every descriptor close to the medoid (a real sample, robust to a minority).
    descriptors = np.stack([f.descriptor for f in faces]).astype(np.float64)
    pairwise = np.linalg.norm(descriptors[:, None, :] - descriptors[None, :, :], axis=-1)
    medoid = int(pairwise.sum(axis=1).argmin())
    farthest = int(pairwise[medoid].argmax())
    if pairwise[medoid, farthest] >= same_person_threshold:
        raise EnrolmentError(
            "face_changed",
            "the face changed during the clip; only the person enrolling may appear in it",
            indices[farthest],
        )

    # 4. A still image, however zoomed or shifted, keeps the normalised landmark shape.
    shapes = np.stack([normalized_landmarks(f.landmarks) for f in faces])
    motion = float(np.linalg.norm(shapes - np.median(shapes, axis=0), axis=-1).max())
    if motion < min_motion:
        raise EnrolmentError(
            "static_clip",
            "the face did not move at all; record yourself live and turn your head as asked",
        )

    # 5. The asked turns, in order, in the person's own terms.
    yaws = [f.yaw for f in faces]
    own = [-y if mirrored else y for y in yaws]  # > 0: turned to the person's own left
    position = 0
    for step, direction in enumerate(challenge):
        hit = next(
            (
                i
                for i in range(position, len(own))
                if (own[i] > min_turn if direction == "left" else own[i] < -min_turn)
            ),
            None,
        )
        if hit is None:
            then = "" if step == 0 else f" after turning to your {challenge[step - 1]}"
            raise EnrolmentError(
                "movement_not_seen",
                f"no clear turn of the head to your {direction} was seen{then}; {describe_challenge(challenge)}",
            )
        position = hit + 1

    chips = [
        face_analyzer.chip(frames[indices[i]], faces[i], size=chip_size, padding=chip_padding)
        for i in _chip_choice(faces, digests, n_chips, min_turn / 2)
    ]
    return Enrolment(
        descriptors=[f.descriptor for f in faces],
        mean_descriptor=descriptors.mean(axis=0).astype(np.float32),
        chips=chips,
        yaws=yaws,
        frames_used=list(indices),
    )


def _digest(frame: np.ndarray) -> bytes:
    """A fingerprint of a frame's shape and pixels, to analyse repeated identical frames once."""
    h = hashlib.blake2b(str(frame.shape).encode(), digest_size=16)
    h.update(frame.data)
    return h.digest()


def _chip_choice(faces: list[Face], digests: list[bytes], count: int, frontal: float) -> list[int]:
    """Indices of up to ``count`` distinct frames for reference crops: frontal ones (``|yaw| <= frontal``)
    sharpest first, then the others least turned first."""
    order = sorted(
        range(len(faces)),
        key=lambda i: (0, -faces[i].sharpness) if abs(faces[i].yaw) <= frontal else (1, abs(faces[i].yaw)),
    )
    chosen: list[int] = []
    seen: set[bytes] = set()
    for i in order:
        if len(chosen) >= count:
            break
        if digests[i] not in seen:
            seen.add(digests[i])
            chosen.append(i)
    return chosen
