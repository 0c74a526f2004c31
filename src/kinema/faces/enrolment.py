"""Enrolling a likeness: checking a short clip in which a person shows their own face and turns their head.

``analyze_enrolment`` analyses the clip on copies at most ``ANALYSIS_MAX_SIDE`` px on their longest side, at about
``ANALYSIS_FPS`` frames per second, and refuses it (``EnrolmentError`` with a ``code``) unless, in this order:

1. faces are found on most of ``samples`` key frames spread over the clip, never two (``no_face``,
   ``multiple_faces``); in between, and where a strong turn hides the face from the detector, the face is
   followed with the landmark model;
2. the median face is at least ``min_face_size`` px wide (``face_too_small``) and the sharper half of the
   faces is sharp (``face_blurry``);
3. it is the same person throughout: every descriptor lies within ``same_person_threshold`` of the medoid
   descriptor of the faces near the resting pose (the one closest to all the others), a strongly turned face's
   within ``TURNED_FACE_MARGIN`` more (``face_changed``);
4. the face moves at all: a clip made from one still photograph, even zoomed or shifted, keeps the landmarks'
   shape (position, scale and rotation taken out) fixed (``static_clip``);
5. the head turns as the challenge asks, in that order, from its resting pose (``movement_not_seen``);
6. liveness (``kinema.faces.liveness``): the clip is one continuous take (``spliced_clip``), and each turn
   shows the depth parallax and self-occlusion of a head rather than a flat picture moved or warped
   (``flat_image``).

**Directions are the person's own**: "left" means the person turns their head to their left, as they would
understand the instruction. In an unmirrored camera recording (what a camera file or a browser's MediaRecorder
holds; only on-screen previews are usually mirrored) that moves the nose toward the image's right, which is a
positive ``Face.yaw``. Pass ``mirrored=True`` for a recording stored mirrored.

What this is not: a defence against a real 3D head turning in front of the camera. A replayed video of the
person, a live deepfake or a photograph animated in 3D shows what liveness looks for and can pass; the random
challenge only stops a replay that turns the wrong way.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal, get_args

import numpy as np

from kinema.faces.analyzer import (
    Face,
    FaceAnalyzer,
    as_rgb,
    default_analyzer,
    downscaled,
    normalized_landmarks,
    yaw_from_landmarks,
)
from kinema.faces.liveness import (
    MAX_DISCONTINUITY,
    Parallax,
    continuity,
    parallax,
)
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
    "spliced_clip",
    "flat_image",
]

MIN_FACE_SIZE: Final = 64
"""Smallest accepted median face width, in px of the analysed copy (at most ``ANALYSIS_MAX_SIDE`` px on its
longest side): below it dlib's descriptor (computed on a 150 px chip) is upscaled mush. The median over the clip,
not the minimum, so a detection box that jitters or shrinks on a strong turn does not refuse a good clip."""
MIN_SHARPNESS: Final = 12.0
"""Smallest accepted ``Face.sharpness`` of the sharper half of the clip's detected faces (the 75th percentile).
Sharp test photographs measure 89-580; a Gaussian blur of radius 2 brings them to 12-20, radius 3 to 5-8. Real
compressed webcam and phone video (motion, H.264) measures 15-60 on its better frames, so the old per-frame floor
of 25 refused honest clips."""
MIN_TURN: Final = 0.08
"""Change of ``yaw`` from the clip's resting pose (its median) a turn must exceed to count: about 11 degrees (the
ratio is about 0.4 tan(angle)). A person asked to turn their head usually turns 20-45 degrees (0.15-0.4); that a
flat picture cannot fake a turn is checked by liveness, not by this threshold."""
MIN_MOTION: Final = 0.05
"""Landmark movement (in eye distances, position, scale and in-plane rotation removed) below which a clip counts
as made from a still image. A photograph zoomed by up to 11 % and shifted by up to 33 px moves by 0.018 (detector
jitter); any turn beyond ``MIN_TURN`` moves the nose by more than 0.08."""
ANALYSIS_FPS: Final = 10.0
"""Frames per second analysed (when the clip's rate is known): a 6 s clip at 60 fps is analysed on 60 frames."""
ANALYSIS_MAX_SIDE: Final = 640
"""Longest side, in px, of the copy each analysed frame is shrunk to (a 4K frame costs what a 360p one does)."""
MAX_ANALYSED: Final = 72
"""At most this many frames are analysed, spread over the clip."""
CONTINUITY_FPS: Final = 30.0
"""Frames per second at which continuity (no cuts, no cross-fades) is checked: the clip's own rate, up to this."""
MAX_CONTINUITY_FRAMES: Final = 240
"""At most this many frames are checked for continuity (8 s at 30 fps)."""
TURNED_FACE_MARGIN: Final = 0.08
"""How much farther than ``same_person_threshold`` from the frontal medoid a strongly turned face's descriptor may
lie (``face_changed``). dlib's descriptor drifts with the turn: synthetic renders of the test photographs turned
by 35-45 degrees lie 0.46-0.63 from their own frontal photograph, while turned faces lie 0.72 and more from the
other people's frontal photographs (and different people's frontal photographs 0.69 and more from each other)."""


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
        descriptors: the face descriptor of every key frame the face was detected on (128 ``float32`` each).
        mean_descriptor: their mean, the likeness's reference descriptor.
        chips: up to ``n_chips`` aligned face crops (RGB ``uint8``, ``chip_size`` square) from the most frontal,
            sharpest distinct frames, as references for video generation.
        yaws: the head turn of every analysed frame, in image terms (positive: nose toward the image's right).
        frames_used: the indices in the clip of the analysed frames, in order.
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


def analysed_indices(frame_count: int, fps: float | None, analysis_fps: float, max_frames: int) -> list[int]:
    """Which frames of a clip to analyse: every ``fps / analysis_fps``-th (all of them when ``fps`` is unknown
    and the clip is short), at most ``max_frames`` spread over the whole clip."""
    if frame_count <= 0:
        return []
    step = max(1, round(fps / analysis_fps)) if fps and fps > 0 else 1
    if -(-frame_count // step) > max_frames:
        step = -(-frame_count // max_frames)
    return list(range(0, frame_count, step))


def analyze_enrolment(
    frames: np.ndarray | Sequence[np.ndarray],
    challenge: Sequence[Direction],
    *,
    fps: float | None = None,
    samples: int = 16,
    analyzer: FaceAnalyzer | None = None,
    upsample: int = 1,
    min_face_size: int = MIN_FACE_SIZE,
    min_sharpness: float = MIN_SHARPNESS,
    same_person_threshold: float = SAME_PERSON,
    min_turn: float = MIN_TURN,
    min_motion: float = MIN_MOTION,
    mirrored: bool = False,
    liveness: bool = True,
    analysis_fps: float = ANALYSIS_FPS,
    max_side: int = ANALYSIS_MAX_SIDE,
    n_chips: int = 3,
    chip_size: int = 256,
    chip_padding: float = 0.25,
) -> Enrolment:
    """Check an enrolment clip and extract the likeness from it; see the module docstring for the checks.

    Args:
        frames: the clip, ``(T, H, W, 3)`` RGB ``uint8`` (or a sequence of such frames), any size: frames are
            analysed on a copy at most ``max_side`` px on their longest side.
        challenge: the head turns asked of the person, in order, in their own terms (``random_challenge``).
        fps: the clip's frame rate; frames are analysed at about ``analysis_fps`` (unknown: every frame, or
            ``MAX_ANALYSED`` spread over the clip).
        samples: on how many of the analysed frames (spread evenly) faces are detected and described (about
            0.15 s each on one core); the face is followed in between, also where a strong turn hides it from
            the detector.
        analyzer: the ``FaceAnalyzer`` to use; default: a shared one on the installed models.
        upsample: passed to ``FaceAnalyzer.detect``; 1 finds faces down to about 40 px.
        min_face_size: smallest accepted median face width, in px of the analysed copy.
        min_sharpness: smallest accepted sharpness of the sharper half of the detected faces.
        same_person_threshold: largest accepted distance from the medoid descriptor of the faces near the resting
            pose (``TURNED_FACE_MARGIN`` more for a strongly turned face).
        min_turn: ``|yaw|`` change from the clip's resting pose beyond which the head counts as turned.
        min_motion: landmark movement below which the clip counts as made from a still image.
        mirrored: the recording is stored mirrored (swaps which image side is the person's left).
        liveness: run the liveness checks (``spliced_clip``, ``flat_image``); off only in tests of the others.
        n_chips, chip_size, chip_padding: how many reference crops to keep, their side and padding.

    Raises:
        EnrolmentError: the clip is refused; ``code`` says why.
        ValueError: the arguments are malformed (bad challenge, frames not RGB ``uint8``).
    """
    import cv2

    _check_challenge(challenge)
    if samples < 1:
        raise ValueError("samples must be >= 1")
    face_analyzer = analyzer if analyzer is not None else default_analyzer()
    indices = analysed_indices(len(frames), fps, analysis_fps, MAX_ANALYSED)
    if not indices:
        raise EnrolmentError("no_face", "the clip has no frames; record yourself turning your head as asked")

    # The analysed copies: at most max_side px, grey for the flow.
    smalls: list[np.ndarray] = []
    scales: list[float] = []
    for index in indices:
        small, scale = downscaled(as_rgb(frames[index]), max_side)
        smalls.append(small)
        scales.append(scale)
    greys = [np.asarray(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)) for im in smalls]

    # 1. Faces on evenly spread key frames: exactly one where one is found; identical frames analysed once.
    keys = sample_indices(len(indices), samples)
    cache: dict[bytes, list[Face]] = {}
    detected: dict[int, Face] = {}
    digests: dict[int, bytes] = {}
    for k in keys:
        digest = _digest(smalls[k])
        found = cache.get(digest)
        if found is None:
            found = cache[digest] = face_analyzer.detect(smalls[k], upsample=upsample, max_side=None)
        if len(found) > 1 and found[1].size >= 0.4 * found[0].size:
            raise EnrolmentError(
                "multiple_faces",
                f"{len(found)} faces were found; only the person enrolling may be in the picture",
                indices[k],
            )
        if found:
            detected[k] = found[0]
            digests[k] = digest
    if len(detected) * 2 < len(keys):
        raise EnrolmentError(
            "no_face",
            "no face was found in most of the clip; keep your whole face in the picture, in good light",
            indices[next((k for k in keys if k not in detected), keys[0])],
        )
    found_keys = sorted(detected)

    # 2. Size and sharpness, judged on the clip as a whole (a turned or moving frame may be smaller or softer).
    size = float(np.median([detected[k].size for k in found_keys]))
    if size < min_face_size:
        raise EnrolmentError(
            "face_too_small",
            f"the face is about {size:.0f} px wide in a {max_side} px picture, at least {min_face_size} px are "
            "needed; come closer to the camera",
            indices[found_keys[0]],
        )
    sharpness = float(np.percentile([detected[k].sharpness for k in found_keys], 75))
    if sharpness < min_sharpness:
        raise EnrolmentError(
            "face_blurry",
            f"the face is blurred (sharpness {sharpness:.1f}, at least {min_sharpness:g} needed); "
            "hold the camera still, focus and light the face",
            indices[found_keys[0]],
        )

    # 3. One person throughout: every descriptor close to the medoid of the faces near the resting pose (a real
    # sample, robust to a minority); a strongly turned face, whose descriptor drifts with the turn, a little
    # less close.
    descriptors = np.stack([detected[k].descriptor for k in found_keys]).astype(np.float64)
    farthest = _identity_outlier(
        descriptors, np.array([detected[k].yaw for k in found_keys]), same_person_threshold, min_turn
    )
    if farthest is not None:
        raise EnrolmentError(
            "face_changed",
            "the face changed during the clip; only the person enrolling may appear in it",
            indices[found_keys[farthest]],
        )

    # Follow the face through every analysed frame: the box from the nearest detections, the landmarks
    # from dlib's shape model (which also works on turned faces the detector misses).
    landmarks = [_track(face_analyzer, smalls[i], i, detected, found_keys) for i in range(len(indices))]
    yaws = [yaw_from_landmarks(lm) for lm in landmarks]

    # 4. A still image, however zoomed or shifted, keeps the normalised landmark shape.
    shapes = np.stack([normalized_landmarks(lm) for lm in landmarks])
    motion = float(np.linalg.norm(shapes - np.median(shapes, axis=0), axis=-1).max())
    if motion < min_motion:
        raise EnrolmentError(
            "static_clip",
            "the face did not move at all; record yourself live and turn your head as asked",
        )

    # 5. The asked turns, in order, in the person's own terms, from the resting pose.
    smooth = _median3(np.asarray(yaws))
    rest = float(np.median(smooth))
    own = (smooth - rest) * (-1.0 if mirrored else 1.0)  # > 0: turned to the person's own left
    peaks = _find_turns(own, challenge, min_turn)

    # 6. Liveness: one continuous take, and a head with depth rather than a flat picture.
    if liveness:
        # Continuity at the clip's own rate (up to 30 fps), each frame cropped where the nearest analysed one
        # has the face.
        rate = float(fps) if fps and fps > 0 else CONTINUITY_FPS
        step = max(1, round(rate / CONTINUITY_FPS))
        fine = list(range(0, len(frames), step))[:MAX_CONTINUITY_FRAMES]
        positions = np.searchsorted(indices, fine)
        nearest = [
            int(p if p < len(indices) and (p == 0 or indices[p] - f < f - indices[p - 1]) else p - 1)
            for p, f in zip(positions, fine, strict=True)
        ]
        fine_greys = [
            greys[n]
            if indices[n] == f
            else np.asarray(cv2.cvtColor(downscaled(as_rgb(frames[f]), max_side)[0], cv2.COLOR_RGB2GRAY))
            for f, n in zip(fine, nearest, strict=True)
        ]
        jump, where = continuity(fine_greys, [landmarks[n] for n in nearest], rate / step)
        if jump > MAX_DISCONTINUITY:
            raise EnrolmentError(
                "spliced_clip",
                "the clip jumps between different pictures; record one continuous take, without cuts or edits",
                fine[where],
            )
        for step, (start, peak) in enumerate(peaks):
            evidence = _best_parallax(greys, landmarks, own, start, peak)
            if evidence is None:
                raise EnrolmentError(
                    "movement_not_seen",
                    f"the clip starts already turned; start facing the camera. {describe_challenge(challenge)}",
                    indices[peak],
                )
            if not _alive(evidence):
                raise EnrolmentError(
                    "flat_image",
                    f"the turn to your {challenge[step]} looked like a flat picture (a photo or a screen) moving, "
                    "not a head turning; record yourself live, turning your head as asked",
                    indices[peak],
                )

    chip_faces = {k: _in_original(detected[k], scales[k]) for k in found_keys}
    chips = [
        face_analyzer.chip(frames[indices[k]], chip_faces[k], size=chip_size, padding=chip_padding)
        for k in _chip_choice(
            [detected[k] for k in found_keys], [digests[k] for k in found_keys], found_keys, n_chips, min_turn / 2
        )
    ]
    return Enrolment(
        descriptors=[detected[k].descriptor for k in found_keys],
        mean_descriptor=descriptors.mean(axis=0).astype(np.float32),
        chips=chips,
        yaws=yaws,
        frames_used=list(indices),
    )


def _identity_outlier(descriptors: np.ndarray, yaws: np.ndarray, threshold: float, min_turn: float) -> int | None:
    """The index of a face that is not the clip's person, or ``None``: the reference is the medoid of the faces
    within ``min_turn`` of the median yaw (the resting pose); those must lie within ``threshold`` of it, the
    others (strongly turned) within ``threshold + TURNED_FACE_MARGIN``. The farthest offender is returned."""
    pairwise = np.linalg.norm(descriptors[:, None, :] - descriptors[None, :, :], axis=-1)
    resting = np.abs(yaws - np.median(yaws)) <= min_turn
    if resting.sum() < 2:
        resting[:] = True
    near = np.flatnonzero(resting)
    medoid = int(near[pairwise[np.ix_(near, near)].sum(axis=1).argmin()])
    excess = pairwise[medoid] - np.where(resting, threshold, threshold + TURNED_FACE_MARGIN)
    farthest = int(excess.argmax())
    return farthest if excess[farthest] >= 0 else None


def _in_original(face: Face, scale: float) -> Face:
    """``face`` found on a copy scaled by ``scale``, in the original frame's pixels."""
    if scale == 1.0:
        return face
    left, top, right, bottom = face.box
    box = (int(left / scale), int(top / scale), int(np.ceil(right / scale)), int(np.ceil(bottom / scale)))
    return replace(face, box=box, landmarks=(face.landmarks + 0.5) / scale - 0.5, size=round(face.size / scale))


def _track(
    analyzer: FaceAnalyzer, image: np.ndarray, i: int, detected: dict[int, Face], found: list[int]
) -> np.ndarray:
    """Landmarks of the face in analysed frame ``i``: the detection's where there is one, else dlib's shape model
    on a box interpolated between the nearest detections, re-centred on what it finds."""
    if i in detected:
        return np.asarray(detected[i].landmarks, dtype=np.float64)
    before = [k for k in found if k < i]
    after = [k for k in found if k > i]
    boxes = []
    if before:
        boxes.append((before[-1], np.asarray(detected[before[-1]].box, dtype=np.float64)))
    if after:
        boxes.append((after[0], np.asarray(detected[after[0]].box, dtype=np.float64)))
    if len(boxes) == 2:
        (ka, ba), (kb, bb) = boxes
        box = ba + (bb - ba) * (i - ka) / (kb - ka)
    else:
        box = boxes[0][1]
    lm = analyzer.landmarks_in(image, (box[0], box[1], box[2], box[3]))
    # Re-centre the box on the landmarks found and look again (the head may have moved since the detection).
    shift = lm.mean(axis=0) - _landmark_centre(box, detected, found)
    moved = box + np.array([shift[0], shift[1], shift[0], shift[1]])
    return analyzer.landmarks_in(image, (moved[0], moved[1], moved[2], moved[3]))


def _landmark_centre(box: np.ndarray, detected: dict[int, Face], found: list[int]) -> np.ndarray:
    """Where the landmarks' mean usually sits in a detection box of this size (from the detections)."""
    offsets = []
    for k in found:
        left, top, right, bottom = detected[k].box
        width = max(right - left, 1)
        centre = np.array([(left + right) / 2.0, (top + bottom) / 2.0])
        offsets.append((detected[k].landmarks.mean(axis=0) - centre) / width)
    offset = np.median(np.stack(offsets), axis=0)
    width = box[2] - box[0]
    return np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0]) + offset * width


def _median3(values: np.ndarray) -> np.ndarray:
    """A running median over 3 (ends kept), to drop single-frame landmark glitches."""
    if len(values) < 3:
        return values.copy()
    out = values.copy()
    out[1:-1] = np.median(np.stack([values[:-2], values[1:-1], values[2:]]), axis=0)
    return out


def _find_turns(own: np.ndarray, challenge: Sequence[Direction], min_turn: float) -> list[tuple[int, int]]:
    """For each asked turn, in order: (the analysed frame where the search for it started, its peak)."""
    found: list[tuple[int, int]] = []
    position = 0
    for step, direction in enumerate(challenge):
        sign = 1.0 if direction == "left" else -1.0
        hit = next((i for i in range(position, len(own)) if sign * own[i] > min_turn), None)
        if hit is None:
            then = "" if step == 0 else f" after turning to your {challenge[step - 1]}"
            raise EnrolmentError(
                "movement_not_seen",
                f"no clear turn of the head to your {direction} was seen{then}; {describe_challenge(challenge)}",
            )
        end = hit
        while end + 1 < len(own) and sign * own[end + 1] > min_turn / 2:
            end += 1
        peak = hit + int(np.argmax(sign * own[hit : end + 1]))
        found.append((position, peak))
        position = end + 1
    return found


def _best_parallax(
    greys: list[np.ndarray], landmarks: list[np.ndarray], own: np.ndarray, start: int, peak: int
) -> Parallax | None:
    """The strongest depth evidence for one turn: from the most frontal frame before it to its peak and to the
    frame two thirds of the way there."""
    before = list(range(start, peak)) or [peak]
    frontal = min(before, key=lambda i: (abs(own[i]), peak - i))
    if frontal == peak:
        return None
    target = own[frontal] + (own[peak] - own[frontal]) * 0.66
    between = range(frontal + 1, peak + 1)
    middle = min(between, key=lambda i: abs(own[i] - target))
    best: Parallax | None = None
    for turned in sorted({peak, middle}):
        evidence = parallax(greys[frontal], landmarks[frontal], greys[turned], landmarks[turned])
        if best is None or _score(evidence) > _score(best):
            best = evidence
    return best


def _score(evidence: Parallax) -> float:
    return evidence.score


def _alive(evidence: Parallax) -> bool:
    return evidence.alive


def _digest(frame: np.ndarray) -> bytes:
    """A fingerprint of a frame's shape and pixels, to analyse repeated identical frames once."""
    h = hashlib.blake2b(str(frame.shape).encode(), digest_size=16)
    h.update(frame.data)
    return h.digest()


def _chip_choice(faces: list[Face], digests: list[bytes], keys: list[int], count: int, frontal: float) -> list[int]:
    """Of the detected key frames ``keys`` (with their ``faces`` and ``digests``), up to ``count`` distinct ones for
    reference crops: frontal ones (``|yaw| <= frontal``) sharpest first, then the others least turned first."""
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
            chosen.append(keys[i])
    return chosen
