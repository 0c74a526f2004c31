"""Liveness measures for enrolment clips: is this a real head turning, continuously, in front of the camera?

Two measures, both on dense optical flow (OpenCV's DIS) over small face crops, so a clip costs a few seconds of
one core whatever its resolution:

* **Parallax** (``parallax``): between the most frontal frame and a turned one, both cut out and aligned on the
  eyes, the flow of every point of the face is fitted with what a *flat* picture can do (a plane seen by a camera:
  a homography, to second order) plus two depth terms: a generic head's curved shape (an ellipsoid, deepest in the
  middle of the face, falling off toward the outline) and its nose (a ridge and tip). A head turning by an angle
  ``a`` moves every point by ``sin(a)`` times its depth on top of what a plane does, so both depth terms come
  out near ``sin(a)``, with the sign of the turn. A photograph, a print or a screen, however it is moved, scaled,
  rotated, sheared or tilted, is explained by the plane alone (both terms near 0). A local warp that pushes the
  nose sideways ("liquify") gives a nose term but no shape term (the cheeks and the outline stay planar).
  A page bent around a vertical axis (a cylinder) does give a shape term, so the fit is made a second time with
  any depth profile across the face allowed (a free function of the horizontal position: what a page bent
  around a vertical axis can do, whatever its bend): what is left of the shape term there is its **vertical
  curvature** (``vertical``), the forehead and chin falling away from the camera. A head is curved both ways,
  a bent page in one only, so it measures about 0. A real turn needs shape, vertical curvature and occlusion.
* **Continuity** (``continuity``): consecutive frames (and frames half a second apart) must be explained by
  motion: after warping one onto the other along the flow (and matching the second's global gain and offset to
  the first's: a webcam's auto-exposure), what differs is noise and a thin strip of occlusion.
  A hard cut between two photographs, or a cross-fade between them, leaves a difference the flow cannot explain;
  and a frame of a cross-fade is explained far better by a per-pixel mix of the frames before and after it than by
  motion, while a moving head is explained by motion (a mix ghosts it).

The depth terms are generic templates built from the 5 landmarks (eye distance ``d``): an ellipsoid 2.5 ``d``
wide and 3.6 ``d`` high, 1.2 ``d`` deep, and a nose 0.4 ``d`` high. Real faces differ, so the decision uses
ratios well below the expected values (see ``MIN_SHAPE_PARALLAX`` and ``MIN_VERTICAL_PARALLAX``). The nose
term is measured and reported but not used: its ratio is too noisy on its own, even averaged over a clip's turns
(synthetic renders of real heads 0.23-1.0 per clip, bent pages up to 0.22).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from kinema.faces.analyzer import yaw_from_landmarks

CROP: Final = 112
"""Side in px of the aligned face crops that flow is computed on."""
CROP_EYE_DISTANCE: Final = 32.0
"""Eye distance in px inside those crops (so the crop spans 3.5 eye distances: the whole face and its outline)."""
_CROP_EYE_Y: Final = 0.40  # eye midpoint height in the crop, as a fraction of its side

MIN_SHAPE_PARALLAX: Final = 0.4
"""Smallest accepted ratio of the measured head-shape parallax to what the landmarks' turn implies. Synthetic 3D
renders of real heads measure 0.7-1.2; a photograph moved, scaled, rotated, sheared or tilted 0 +- 0.15; a
local warp combined with a shear about 0.4-0.5 (refused by occlusion)."""
MIN_VERTICAL_PARALLAX: Final = 0.4
"""Smallest accepted ratio of the head shape's vertical curvature (the shape term fitted again with a free depth
profile across the face, see ``parallax``) to what the landmarks' turn implies, as ``MIN_SHAPE_PARALLAX`` is for
the shape term itself. Synthetic 3D renders of real heads measure 0.5-1.8 (close to their shape ratio: the
renders have the template's shape; 3 of 134 frontal-to-turned pairs lower, 0.16-0.44, each with a better
pair on the same turn); pages bent around a vertical axis (curvature 1.5-3, with and without H.264) -0.2-0.3
(32 of 33 pairs; one at 0.51, on one turn of an H.264 clip). The crops are aligned on the eyes, so a page bent
around an axis tilted from the face's vertical (a rolled photograph) leaks a little into this term."""
_PROFILE_STEP: Final = 0.25
"""Spacing, in eye distances, of the piecewise-linear depth profile across the face that the vertical fit allows."""
MIN_OCCLUSION: Final = 0.25
"""Smallest accepted share of the face's far half (the side the nose turns toward) whose flow does not come back
(forward-backward check), per unit of ``sin(angle)`` of the turn: what the turn hides grows with the turn.
Synthetic renders of real heads measure 0.35-1.3; flat pictures, however warped, 0.0-0.12 (a smooth warp hides
nothing). At least ``MIN_OCCLUDED`` in any case."""
MIN_OCCLUDED: Final = 0.05
"""Smallest accepted hidden share of the far half, whatever the turn."""
MAX_DISCONTINUITY: Final = 0.35
"""Largest accepted unexplained change between frames, relative to the face's contrast (see ``continuity``)."""
MAX_FADE: Final = 0.5
"""The same for frames 0.2 s apart after subtracting 4 times the face's motion (cross-fades)."""
MAX_MIX_RATIO: Final = 3.0
"""Largest accepted ratio of the flow residual to the mix residual of a frame between two others 0.4 s apart
(see ``continuity``): real turns measure 0.5-0.7 (motion is explained by flow, a mix ghosts), cross-fades 11-15."""
_EXPOSURE_GAIN_RANGE: Final = (0.5, 2.0)
"""Bounds of the gain ``_match_exposure`` applies (auto-exposure steps are 15-40 %)."""
MIN_MIX_CHANGE: Final = 0.15
"""Only pairs whose change (mean absolute difference over the face's contrast) reaches this are tested for a mix:
below it, a mix and a small motion are alike."""


def _cv2() -> Any:
    import cv2

    return cv2


@dataclass(frozen=True)
class Parallax:
    """What a frontal-to-turned pair shows. ``shape`` and ``nose``: the two depth terms (in eye distances per
    eye distance of depth: about ``sin(angle)`` for a real head, signed like the turn: positive when the nose
    moves toward the image's right); ``expected``: ``sin(angle)`` implied by the landmarks' change of yaw;
    ``residual``: what neither the plane nor the depth terms explain (px RMS in the crop); ``points``: how many
    face points were used; ``occluded_far``/``occluded_near``: the hidden shares of the far and near halves;
    ``vertical``: the shape term when any depth profile across the face is allowed too (only the template's
    change with height is left: about ``sin(angle)`` for a head, 0 for a page bent around a vertical axis)."""

    shape: float
    nose: float
    expected: float
    residual: float
    points: int
    occluded_far: float = 0.0
    occluded_near: float = 0.0
    vertical: float = 0.0

    @property
    def score(self) -> float:
        """Below 1: one of the pieces of evidence (shape parallax, its vertical curvature, occlusion on the far
        side) is missing."""
        occlusion = self.occluded_far if self.occluded_far >= 0.8 * self.occluded_near else 0.0
        needed = max(MIN_OCCLUDED, MIN_OCCLUSION * abs(self.expected))
        return min(
            self.shape_ratio / MIN_SHAPE_PARALLAX,
            self.vertical_ratio / MIN_VERTICAL_PARALLAX,
            occlusion / needed,
        )

    @property
    def alive(self) -> bool:
        """Parallax shaped like a head (curved across and top to bottom) with the sign of the turn, and the far
        side partly hidden by it."""
        return self.score >= 1.0

    @property
    def shape_ratio(self) -> float:
        return self.shape / self.expected if self.expected else 0.0

    @property
    def nose_ratio(self) -> float:
        return self.nose / self.expected if self.expected else 0.0

    @property
    def vertical_ratio(self) -> float:
        return self.vertical / self.expected if self.expected else 0.0


def eye_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Eye midpoint, unit eye axis (image-left eye to image-right eye) and eye distance from dlib's 5 points."""
    pts = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    right_eye, left_eye = pts[0:2].mean(axis=0), pts[2:4].mean(axis=0)
    axis = right_eye - left_eye
    d = float(np.linalg.norm(axis))
    return (right_eye + left_eye) / 2.0, axis / max(d, 1e-9), d


def align_matrix(landmarks: np.ndarray, size: int = CROP, eye_distance: float = CROP_EYE_DISTANCE) -> np.ndarray:
    """The 2x3 similarity that maps the image onto an upright face crop of ``size`` px with the eyes level,
    ``eye_distance`` px apart, their midpoint at the centre column and ``_CROP_EYE_Y`` of the height."""
    mid, ex, d = eye_frame(landmarks)
    scale = eye_distance / max(d, 1e-9)
    cos, sin = ex
    rot = np.array([[cos, sin], [-sin, cos]]) * scale
    target = np.array([size / 2.0, size * _CROP_EYE_Y])
    return np.hstack([rot, (target - rot @ mid)[:, None]])


def face_crop(grey_image: np.ndarray, landmarks: np.ndarray, size: int = CROP) -> np.ndarray:
    """``grey_image`` (2-D ``uint8``) cut out and aligned on the eyes (``align_matrix``)."""
    cv2 = _cv2()
    return np.asarray(
        cv2.warpAffine(
            grey_image,
            align_matrix(landmarks, size),
            (size, size),
            flags=cv2.INTER_AREA,
            borderMode=cv2.BORDER_REPLICATE,
        )
    )


def _flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense flow from ``a`` to ``b`` (2-D ``uint8`` of one size): ``a(p)`` matches ``b(p + flow(p))``."""
    cv2 = _cv2()
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return np.asarray(dis.calc(a, b, None), dtype=np.float32)


def _templates(landmarks_in_crop: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At each ``grid`` point (crop px): inside-the-face mask, head-shape depth and nose depth (eye distances)."""
    mid, ex, d = eye_frame(landmarks_in_crop)
    ey = np.array([-ex[1], ex[0]])
    nose = landmarks_in_crop[4]
    rel = grid - mid
    u = rel @ ex / d
    v = rel @ ey / d
    nose_u = float((nose - mid) @ ex / d)
    nose_v = max(float((nose - mid) @ ey / d), 0.4)
    r2 = (u / 1.25) ** 2 + ((v - 0.25) / 1.8) ** 2
    inside = (r2 < 0.92) & (v > -0.8) & (v < 1.75)
    shape = 1.2 * np.sqrt(np.clip(1.0 - r2, 0.0, None))
    along = np.clip((v - 0.1) / max(nose_v - 0.15, 0.2), 0.0, 1.0) * (v < nose_v + 0.05)
    nose_depth = 0.38 * along * np.exp(-(((u - nose_u * np.clip(v / nose_v, 0, 1)) / 0.16) ** 2) / 2)
    nose_depth += 0.12 * np.exp(-(((u - nose_u) ** 2 + (v - nose_v + 0.12) ** 2) / (2 * 0.2**2)))
    return inside, shape, nose_depth


def parallax(
    frontal: np.ndarray, frontal_landmarks: np.ndarray, turned: np.ndarray, turned_landmarks: np.ndarray
) -> Parallax:
    """Depth parallax between a frontal and a turned view of a face (``frontal``/``turned``: 2-D grey
    ``uint8`` frames, any size; landmarks: dlib's 5 points in those frames). See the module docstring."""
    a = face_crop(frontal, frontal_landmarks)
    b = face_crop(turned, turned_landmarks)
    m = align_matrix(frontal_landmarks)
    lm_a = np.asarray(frontal_landmarks, dtype=np.float64) @ m[:, :2].T + m[:, 2]
    forward = _flow(a, b)
    backward = _flow(b, a)
    step = 2
    ys, xs = np.mgrid[0:CROP:step, 0:CROP:step]
    grid = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    inside, shape, nose_depth = _templates(lm_a, grid)
    f = forward[ys.ravel(), xs.ravel()].astype(np.float64)
    q = grid + f
    # Forward-backward consistency: drop points whose match does not come back (occluded, or flow failure).
    qi = np.clip(np.rint(q).astype(int), 0, CROP - 1)
    back = backward[qi[:, 1], qi[:, 0]].astype(np.float64)
    consistent = np.linalg.norm(f + back, axis=1) < 1.5
    use = inside & consistent
    # Occlusion: a real turn hides a strip of the far side (behind the nose, at the far outline); a picture
    # moved or warped smoothly hides nothing, so its forward and backward flows agree everywhere.
    mid_c, ex_c, d_c = eye_frame(lm_a)
    side = (grid - mid_c) @ ex_c / d_c
    yaw_sign = np.sign(expected_parallax(yaw_from_landmarks(frontal_landmarks), yaw_from_landmarks(turned_landmarks)))
    fb = np.linalg.norm(f + back, axis=1)
    far = inside & (side * yaw_sign > 0.1)
    near = inside & (side * yaw_sign < -0.1)
    occluded_far = float(np.mean(fb[far] > 1.0)) if far.any() else 0.0
    occluded_near = float(np.mean(fb[near] > 1.0)) if near.any() else 0.0
    n = int(use.sum())
    expected = expected_parallax(yaw_from_landmarks(frontal_landmarks), yaw_from_landmarks(turned_landmarks))
    if n < 50:
        return Parallax(0.0, 0.0, expected, float("inf"), n, occluded_far, occluded_near)
    # Coordinates in eye distances about the eye midpoint (crop units / CROP_EYE_DISTANCE).
    c = np.array([CROP / 2.0, CROP * _CROP_EYE_Y])
    x, y = ((grid[use] - c) / CROP_EYE_DISTANCE).T
    qx, qy = ((q[use] - c) / CROP_EYE_DISTANCE).T
    s1, s2 = shape[use], nose_depth[use]
    one, zero = np.ones(n), np.zeros(n)
    # Unknowns: a0 a1 a2 b0 b1 b2 g1 g2 (plane: affine + the two shared projective terms) | s1 s2 (x) | t1 t2 (y).
    rows_x = np.stack([one, x, y, zero, zero, zero, x * x, x * y, s1, s2, zero, zero], axis=1)
    rows_y = np.stack([zero, zero, zero, one, x, y, x * y, y * y, zero, zero, s1, s2], axis=1)
    design = np.vstack([rows_x, rows_y])
    target = np.concatenate([qx, qy])
    coef = _robust_fit(design, target)
    residual = float(np.sqrt(np.mean((design @ coef - target) ** 2))) * CROP_EYE_DISTANCE
    # Vertical curvature: the same fit plus a free depth profile across the face (piecewise linear in x, in the
    # horizontal flow only), which absorbs whatever a page bent around a vertical axis does; the shape term then
    # keeps only how the head's depth changes with height.
    knots = np.arange(-2.0, 2.0 + 1e-9, _PROFILE_STEP)
    profile = np.clip(1.0 - np.abs(x[:, None] - knots[None, :]) / _PROFILE_STEP, 0.0, None)
    profile = profile[:, (profile > 0).sum(axis=0) >= 10]
    extended = np.vstack([np.hstack([rows_x, profile]), np.hstack([rows_y, np.zeros_like(profile)])])
    vertical = float(_robust_fit(extended, target)[8])
    return Parallax(float(coef[8]), float(coef[9]), expected, residual, n, occluded_far, occluded_near, vertical)


def _robust_fit(design: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least squares ``design @ coef = target``, iteratively reweighted (Huber, 4 rounds): robust to a few bad
    matches of the flow."""
    weights: np.ndarray = np.ones(len(target))
    coef: np.ndarray = np.zeros(design.shape[1])
    for _ in range(4):
        coef, *_ = np.linalg.lstsq(design * weights[:, None], target * weights, rcond=None)
        resid = np.abs(design @ coef - target)
        weights = np.sqrt(1.0 / np.maximum(resid / 0.03, 1.0))
    return coef


def expected_parallax(yaw_from: float, yaw_to: float) -> float:
    """``sin(angle)`` of the head turn that takes the landmarks' yaw from ``yaw_from`` to ``yaw_to`` (signed like
    the yaw: positive when the nose moves toward the image's right). The 5-point yaw is about 0.4 tan(angle)."""
    a_from = np.arctan(yaw_from / 0.4)
    a_to = np.arctan(yaw_to / 0.4)
    return float(np.sin(a_to - a_from))


def continuity(greys: list[np.ndarray], landmarks: list[np.ndarray], rate: float) -> tuple[float, int]:
    """How far the clip is from one continuous take: the largest unexplained change between frames, and the index
    (in ``greys``) of the later frame where it was seen. Above ``MAX_DISCONTINUITY``: spliced.

    ``greys``: the clip's frames (2-D ``uint8``) at ``rate`` frames per second (the full rate, up to 30 fps);
    ``landmarks``: where the face is in each (those of a nearby analysed frame will do: they only place the crop).
    Each pair is cut out with the same eye-aligned crop, the later crop's grey levels are brought to the earlier
    one's exposure (``_match_exposure``: a webcam's auto-exposure steps the whole image's gain), it is warped back
    along the dense flow, and the mean absolute difference over the face is divided by the face's contrast (the
    standard deviation of its grey levels). Two scales:

    * consecutive frames: a hard cut between two pictures leaves 0.6-1.0, real motion, noise and H.264 about
      0.05-0.15 (motion blur and fast turns included), an auto-exposure step of 15-40 % in 1-3 frames 0.09-0.14
      (up to 1.2 without exposure matching);
    * frames 0.2 s apart, minus 4 times the face's motion between them (in eye distances), held to ``MAX_FADE``
      (the result is rescaled to ``MAX_DISCONTINUITY``'s scale): a cross-fade changes the pixels without moving
      them (0.5-0.7 on synthetic fades), while a real head changes its pixels by moving (0.0-0.2; up to about
      0.4 for a fast turn at 60 fps that the flow follows only in part);
    * a frame midway between two frames 0.4 s apart that differ (``MIN_MIX_CHANGE``): the flow residual over the
      residual of the best per-pixel mix of the two (``_mix_ratio``), held to ``MAX_MIX_RATIO`` (rescaled too).
      A cross-fade frame is a mix of the frames before and after, whatever its pace; a real turn is not.
    """
    cv2 = _cv2()
    ys, xs = np.mgrid[0:CROP, 0:CROP].astype(np.float32)
    lo, hi = int(CROP * 0.22), int(CROP * 0.82)

    def unexplained(i: int, j: int) -> tuple[float, float]:
        a = face_crop(greys[i], landmarks[i])
        b = _match_exposure(face_crop(greys[j], landmarks[i]), a, lo, hi)
        flow = _flow(a, b)
        warped = cv2.remap(b, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        region_a = a[lo:hi, lo:hi].astype(np.float32)
        diff = float(np.mean(np.abs(region_a - warped[lo:hi, lo:hi].astype(np.float32))))
        motion = float(np.median(np.linalg.norm(flow[lo:hi, lo:hi], axis=-1))) / CROP_EYE_DISTANCE
        return diff / max(float(region_a.std()), 8.0), motion

    worst, where = 0.0, 0
    for i in range(len(greys) - 1):
        score, _ = unexplained(i, i + 1)
        if score > worst:
            worst, where = score, i + 1
    gap = max(2, round(rate * 0.2))
    for i in range(0, len(greys) - gap, max(1, gap // 2)):
        residual, motion = unexplained(i, i + gap)
        # On the scale of MAX_DISCONTINUITY: a fast real turn that the flow only partly follows can leave up
        # to about 0.4 here, so this scale is held to MAX_FADE instead.
        score = (residual - 4.0 * motion) * MAX_DISCONTINUITY / MAX_FADE
        if score > worst:
            worst, where = score, i + gap
    mix_gap = max(2, round(rate * 0.4))
    mix_gap += mix_gap % 2
    for i in range(0, len(greys) - mix_gap, max(1, mix_gap // 4)):
        ratio = _mix_ratio(greys[i], greys[i + mix_gap // 2], greys[i + mix_gap], landmarks[i], xs, ys, lo, hi)
        score = ratio * MAX_DISCONTINUITY / MAX_MIX_RATIO
        if score > worst:
            worst, where = score, i + mix_gap // 2
    return worst, where


def _match_exposure(image: np.ndarray, reference: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``image`` (a ``uint8`` crop) with its grey levels mapped by the gain and offset that bring its 10th and 90th
    percentiles over ``[lo:hi, lo:hi]`` onto ``reference``'s: a webcam's auto-exposure or white balance changes
    the whole picture's gain and offset within a frame or two, which no motion explains. Percentiles barely move
    when the face moves, and a cut or a fade between two pictures is not a global gain and offset either."""
    region = (slice(lo, hi), slice(lo, hi))
    low, high = np.percentile(image[region], (10, 90))
    ref_low, ref_high = np.percentile(reference[region], (10, 90))
    gain = float(np.clip((ref_high - ref_low) / max(float(high - low), 1.0), *_EXPOSURE_GAIN_RANGE))
    offset = float(ref_low) - gain * float(low)
    return np.asarray(np.clip(image.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8))


def _mix_ratio(
    first: np.ndarray,
    middle: np.ndarray,
    last: np.ndarray,
    landmarks: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    lo: int,
    hi: int,
) -> float:
    """How much better a per-pixel mix of ``first`` and ``last`` explains ``middle`` than motion does: the flow
    residual (``middle`` against ``first`` or ``last`` warped onto it along the flow, the better of the two) over
    the residual of the best mix ``(1 - w) first + w last`` (mean absolute grey levels, at least 1). A cross-fade
    frame is such a mix (ghosting, two sets of edges) that no flow explains; a moving head is explained by flow
    and ghosts as a mix. 0 when the two ends differ too little (``MIN_MIX_CHANGE``) for the two to differ."""
    cv2 = _cv2()
    a = face_crop(first, landmarks).astype(np.float32)
    b = face_crop(last, landmarks).astype(np.float32)
    c = face_crop(middle, landmarks)
    region = (slice(lo, hi), slice(lo, hi))
    change = b[region] - a[region]
    towards = c[region].astype(np.float32) - a[region]
    if float(np.mean(np.abs(change))) < MIN_MIX_CHANGE * max(float(a[region].std()), 8.0):
        return 0.0
    w = float(np.clip((towards * change).sum() / max(float((change * change).sum()), 1e-6), 0.0, 1.0))
    mix_residual = float(np.mean(np.abs(towards - w * change)))
    flow_residual = float("inf")
    for end in (a, b):
        flow = _flow(c, end.astype(np.uint8))
        warped = cv2.remap(end, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        flow_residual = min(flow_residual, float(np.mean(np.abs(c[region].astype(np.float32) - warped[region]))))
    return flow_residual / max(mix_residual, 1.0)
