"""Synthetic enrolment clips: honest head turns rendered in 3D, and the flat-picture attacks liveness must refuse.

**A synthetic stand-in for real footage.** There is no real video of people here, so an honest clip is a 3D
head turn rendered from one frontal test photograph: a depth map for the head is built from dlib's 5 landmarks
(an ellipsoid around the face, a nose ridge and tip, eye sockets slightly back), rotated about a vertical axis
(plus a little roll and nodding) and re-projected with a z-buffer, so the nose occludes the far cheek and the
outline changes, while the background stays where it is. What real attempts vary is drawn at random: turn
amplitude (15-45 degrees), speed and timing, holds, head roll and nods, camera shake and slow zoom, resolution
and orientation, face size, noise, brightness drift, motion blur, low-quality H.264, mirrored recordings.

Attacks, each from ONE photograph unless said (``attack_clip``): global affine (shear, rotation, scale,
translation), perspective (a tilted print or screen, with keystone skew), a local warp of the nose region by a
smooth displacement field (what two outside testers did), local + affine, a printed page bent around a
vertical axis and turned (cylinder), and photographs of the same person stitched with hard cuts or
cross-fades. Every attack moves the 5 landmarks so that they read as the asked turns, so only liveness can
refuse it.

Clips are ``(T, H, W, 3)`` RGB ``uint8``; ``h264=True`` passes them through an H.264 encode/decode with PyAV
(``encode_h264`` gives the bytes for API tests). Rendering is cached per argument set.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal, cast

import av
import cv2
import numpy as np
from av.video.stream import VideoStream

from kinema.faces import FaceAnalyzer
from testkit.faces.photos import photo

PEOPLE = ("obama_1", "biden_2", "rose_leslie_1", "rose_leslie_2")
"""Frontal test photographs honest clips can be rendered from."""

AttackKind = Literal["affine", "perspective", "local", "local_affine", "cylinder", "stitched_cut", "stitched_fade"]
ATTACKS: tuple[AttackKind, ...] = (
    "affine",
    "perspective",
    "local",
    "local_affine",
    "cylinder",
    "stitched_cut",
    "stitched_fade",
)

_analyzer: FaceAnalyzer | None = None


def _face_analyzer() -> FaceAnalyzer:
    global _analyzer
    if _analyzer is None:
        _analyzer = FaceAnalyzer()
    return _analyzer


@dataclass(frozen=True)
class _Geometry:
    """Where the face is in a photograph: eye midpoint, unit eye axis (image left eye to right eye), the axis
    perpendicular to it pointing down the face, the eye distance, the nose tip and both eye centres."""

    mid: np.ndarray
    ex: np.ndarray
    ey: np.ndarray
    d: float
    nose: np.ndarray
    eyes: tuple[np.ndarray, np.ndarray]


@cache
def _geometry(name: str) -> _Geometry:
    (face,) = _face_analyzer().detect(photo(name))
    pts = face.landmarks
    right_eye, left_eye = pts[0:2].mean(axis=0), pts[2:4].mean(axis=0)
    axis = right_eye - left_eye
    d = float(np.linalg.norm(axis))
    ex = axis / d
    ey = np.array([-ex[1], ex[0]])
    if np.dot(ey, pts[4] - (right_eye + left_eye) / 2) < 0:
        ey = -ey
    return _Geometry((right_eye + left_eye) / 2, ex, ey, d, pts[4].copy(), (left_eye, right_eye))


def head_depth(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A generic head's depth (toward the camera, px, 0 at the head's centre plane) for a frontal photograph,
    and the mask of the pixels that move with the head (face, hair, ears; not the neck or background)."""
    return _head_depth(name)


@cache
def _head_depth(name: str) -> tuple[np.ndarray, np.ndarray]:
    g = _geometry(name)
    h, w = photo(name).shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    rel = np.stack([xx - g.mid[0], yy - g.mid[1]], axis=-1)
    u = rel @ g.ex / g.d  # across the face, in eye distances
    v = rel @ g.ey / g.d  # down the face
    # Head ellipsoid: 1.25 d half-width, 1.8 d half-height, centred a little below the eyes, 1.2 d deep.
    r2 = (u / 1.25) ** 2 + ((v - 0.25) / 1.8) ** 2
    mask = r2 < 1.0
    z = 1.2 * np.sqrt(np.clip(1.0 - r2, 0.0, None))
    nose_v = float(np.dot(g.nose - g.mid, g.ey) / g.d)
    nose_u = float(np.dot(g.nose - g.mid, g.ex) / g.d)
    # Nose: a ridge from between the eyes growing to the tip just above the bottom of the nose.
    along = np.clip((v - 0.1) / max(nose_v - 0.15, 0.2), 0.0, 1.0) * (v < nose_v + 0.05)
    z += 0.38 * along * np.exp(-(((u - nose_u * np.clip(v / nose_v, 0, 1)) / 0.16) ** 2) / 2)
    z += 0.12 * np.exp(-(((u - nose_u) ** 2 + (v - nose_v + 0.12) ** 2) / (2 * 0.2**2)))
    # Eye sockets set back, lips and chin slightly forward.
    for cx in (-0.5, 0.5):
        z -= 0.12 * np.exp(-(((u - cx) ** 2 + (v - 0.02) ** 2) / (2 * 0.22**2)))
    z += 0.06 * np.exp(-((u - nose_u) ** 2 / 0.35**2 + (v - nose_v - 0.45) ** 2 / 0.2**2) / 2)
    return (z * g.d * mask).astype(np.float32), mask


def _cylinder_depth(name: str, curvature: float) -> tuple[np.ndarray, np.ndarray]:
    """A printed page bent around a vertical axis through the face: depth falls off across the page."""
    g = _geometry(name)
    h, w = photo(name).shape[:2]
    xx = np.arange(w, dtype=np.float64) - g.mid[0]
    radius = w / max(curvature, 1e-3)
    z = np.sqrt(np.clip(radius**2 - xx**2, 0, None)) - radius
    return np.broadcast_to(z.astype(np.float32), (h, w)).copy(), np.ones((h, w), dtype=bool)


_sample_cache: dict[tuple[int, int, int, float, int], tuple[np.ndarray, ...] | None] = {}


def _samples(image: np.ndarray, depth: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """The moving region oversampled 3x across and 2x down (so the splats leave no gaps): positions, depth,
    colour; cached per (image, depth, mask)."""
    key = (id(image), id(depth), id(mask), float(depth.sum()), int(mask.sum()))
    if key in _sample_cache:
        return _sample_cache[key]
    ys, xs = np.nonzero(mask)
    result: tuple[np.ndarray, ...] | None = None
    if len(xs):
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        gy, gx = np.mgrid[y0 : y1 - 0.5 : 0.5, x0 : x1 - 0.5 : 1 / 3].astype(np.float32)
        inside = cv2.remap(mask.astype(np.uint8), gx, gy, cv2.INTER_NEAREST) > 0
        z = cv2.remap(depth, gx, gy, cv2.INTER_LINEAR)[inside]
        colour = cv2.remap(np.ascontiguousarray(image), gx, gy, cv2.INTER_LINEAR)[inside]
        result = (gx[inside], gy[inside], z, colour)
    if len(_sample_cache) > 16:
        _sample_cache.clear()
    _sample_cache[key] = result
    return result


def render_turn(
    image: np.ndarray,
    depth: np.ndarray,
    mask: np.ndarray,
    centre: np.ndarray,
    yaw_deg: float,
    pitch_deg: float = 0.0,
) -> np.ndarray:
    """``image`` with the masked surface (``depth`` toward the camera) rotated by ``yaw_deg`` about the vertical
    axis through ``centre`` (positive: the near side moves toward the image's right) and ``pitch_deg`` about the
    horizontal one, re-projected orthographically with a z-buffer; unmasked pixels stay where they are."""
    h, w = image.shape[:2]
    samples = _samples(image, depth, mask)
    if samples is None:
        return image.copy()
    gx, gy, z, colour = samples
    a, b = np.radians(yaw_deg), np.radians(pitch_deg)
    x, y = gx - centre[0], gy - centre[1]
    # Yaw about the vertical axis, then pitch about the horizontal one.
    x1_, z1 = x * np.cos(a) + z * np.sin(a), -x * np.sin(a) + z * np.cos(a)
    y1_, z2 = y * np.cos(b) + z1 * np.sin(b), -y * np.sin(b) + z1 * np.cos(b)
    tx = np.rint(x1_ + centre[0]).astype(np.int64)
    ty = np.rint(y1_ + centre[1]).astype(np.int64)
    ok = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
    tx, ty, z2, colour = tx[ok], ty[ok], z2[ok], colour[ok]
    order = np.argsort(z2, kind="stable")  # nearest last: its write wins
    flat = ty[order] * w + tx[order]
    out = image.reshape(-1, 3).copy()
    covered = np.zeros(h * w, dtype=bool)
    out[flat] = colour[order]
    covered[flat] = True
    out = out.reshape(h, w, 3)
    covered = covered.reshape(h, w)
    # Where the head used to be and nothing landed (the back of the head coming into view, splat gaps),
    # paint in from the surroundings rather than leave the old pixels there.
    holes = (mask & ~covered).astype(np.uint8)
    if holes.any():
        out = cv2.inpaint(out, holes, 3, cv2.INPAINT_TELEA)
    return out


def _ease(t: np.ndarray) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(t, 0.0, 1.0))


def turn_schedule(
    moves: Sequence[str], n: int, rng: np.random.Generator, amplitudes: Sequence[float] | None = None
) -> np.ndarray:
    """Per-frame head yaw in degrees, image terms (positive: nose toward the image's right = the person's own
    left in an unmirrored recording): a frontal start, then each asked turn out and back, with random timing."""
    amps = list(amplitudes) if amplitudes is not None else [float(rng.uniform(15, 45)) for _ in moves]
    # Random durations (relative): lead-in, then per move: out, hold, back, pause; a tail.
    parts: list[tuple[str, float, float]] = [("hold", float(rng.uniform(0.05, 0.6)), 0.0)]
    for move, amp in zip(moves, amps, strict=True):
        target = amp if move == "left" else -amp
        parts += [
            ("go", float(rng.uniform(0.3, 1.0)), target),
            ("hold", float(rng.uniform(0.05, 0.6)), target),
            ("go", float(rng.uniform(0.3, 1.0)), 0.0),
            ("hold", float(rng.uniform(0.05, 0.4)), 0.0),
        ]
    total = sum(p[1] for p in parts)
    t = np.linspace(0, total, n)
    yaw = np.zeros(n)
    start, current = 0.0, 0.0
    for kind, length, target in parts:
        sel = (t >= start) & (t <= start + length)
        if kind == "go":
            yaw[sel] = current + (target - current) * _ease((t[sel] - start) / length)
            current = target
        else:
            yaw[sel] = current
        start += length
    return yaw


def _frame_crop(
    frame: np.ndarray,
    centre: np.ndarray,
    face_px: float,
    out_size: tuple[int, int],
    face_frac: float,
    shake: np.ndarray,
    zoom: float,
    roll_deg: float,
) -> np.ndarray:
    """The camera's view: a window of ``out_size`` (w, h) where the face is ``face_frac`` of the width,
    with roll, shake and zoom, taken from ``frame`` (reflected beyond its edges)."""
    ow, oh = out_size
    scale = ow * face_frac / face_px * zoom
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), roll_deg, scale)
    m[:, 2] += np.array([ow / 2, oh * 0.45]) - centre + shake
    return cv2.warpAffine(frame, m, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def encode_h264(frames: np.ndarray, fps: float, crf: int = 30) -> bytes:
    """The clip as an MP4 (H.264, yuv420p, ``crf``: 30 is a low phone-upload quality), made with PyAV."""
    _, height, width, _ = frames.shape
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = cast(VideoStream, container.add_stream("libx264", rate=round(fps)))
        stream.width, stream.height = width - width % 2, height - height % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: stream.height, : stream.width]))
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


def decode(data: bytes) -> np.ndarray:
    """All frames of a video file as ``(T, H, W, 3)`` RGB ``uint8``."""
    with av.open(io.BytesIO(data)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _finish(
    frames: np.ndarray, fps: float, rng: np.random.Generator, *, noise: float, h264: bool, crf: int, mirrored: bool
) -> np.ndarray:
    if frames.dtype == np.uint8 and noise <= 0:
        clip = frames
    else:
        clip = np.stack([_noisy(frame, rng, noise) for frame in frames])
    if mirrored:
        clip = np.ascontiguousarray(clip[:, :, ::-1])
    if h264:
        clip = decode(encode_h264(clip, fps, crf))
    clip.setflags(write=False)
    return clip


RESOLUTIONS: dict[str, tuple[int, int]] = {
    "360p": (640, 360),
    "480p": (854, 480),
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "portrait": (1080, 1920),
    "4k": (3840, 2160),
}


def head_turn_clip(
    moves: Sequence[str],
    person: str = "obama_1",
    *,
    seconds: float = 4.0,
    fps: float = 15,
    seed: int = 0,
    resolution: str = "360p",
    amplitudes: Sequence[float] | None = None,
    face_frac: float | None = None,
    mirrored: bool = False,
    h264: bool = False,
    crf: int = 30,
    shake: float | None = None,
    noise: float | None = None,
    motion_blur: bool = True,
    exposure_jump: float | None = None,
) -> np.ndarray:
    """An HONEST synthetic enrolment clip (a stand-in for real footage): ``person`` turns their head as
    ``moves`` say, in their own terms ("left": the person's own left, the nose toward the image's right in an
    unmirrored recording; ``mirrored=True`` flips the stored frames as a front camera would).

    ``seed`` draws what real attempts vary (timing, amplitude 15-45 degrees unless ``amplitudes``, roll,
    nods, shake, zoom, brightness, noise); ``resolution`` is a key of ``RESOLUTIONS``; ``face_frac`` the face
    width as a fraction of the frame width (default: drawn, smaller at 360p).

    ``exposure_jump``: a webcam's auto-exposure / white-balance step, the image's gain multiplied by this (e.g.
    0.7-1.4) plus an offset and a per-channel balance, over 1-3 frames at a random point (``_exposure_step``).
    Drawn from its own generator, so the rest of the clip is the same as without it."""
    return _head_turn_clip(
        tuple(moves),
        person,
        seconds,
        fps,
        seed,
        resolution,
        None if amplitudes is None else tuple(amplitudes),
        face_frac,
        mirrored,
        h264,
        crf,
        shake,
        noise,
        motion_blur,
        exposure_jump,
    )


@cache
def _head_turn_clip(
    moves: tuple[str, ...],
    person: str,
    seconds: float,
    fps: float,
    seed: int,
    resolution: str,
    amplitudes: tuple[float, ...] | None,
    face_frac: float | None,
    mirrored: bool,
    h264: bool,
    crf: int,
    shake: float | None,
    noise: float | None,
    motion_blur: bool,
    exposure_jump: float | None,
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = photo(person)
    g = _geometry(person)
    depth, mask = _head_depth(person)
    n = max(2, round(seconds * fps))
    yaw = turn_schedule(moves, n, rng, amplitudes)
    t = np.arange(n) / fps
    pitch = rng.uniform(0, 5) * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t + rng.uniform(0, 6))
    roll = rng.uniform(-6, 6) + rng.uniform(0, 3) * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t)
    # The rotation axis: vertical, through the head's centre (behind the eyes).
    centre = g.mid + 0.25 * g.d * g.ey
    out_size = RESOLUTIONS[resolution]
    frac = (
        face_frac
        if face_frac is not None
        else float(rng.uniform(0.14, 0.22) if out_size[0] <= 640 else rng.uniform(0.15, 0.3))
    )
    if out_size[1] > out_size[0]:  # portrait: the face is a larger part of the narrow width
        frac = face_frac if face_frac is not None else float(rng.uniform(0.3, 0.45))
    shake_px = (shake if shake is not None else float(rng.uniform(0.0, 0.006))) * out_size[0]
    walk = np.cumsum(rng.normal(0, 1, (n, 2)), axis=0)
    walk = (walk - walk.mean(axis=0)) / max(float(np.abs(walk).max()), 1.0) * shake_px * 4
    zoom = 1.0 + rng.uniform(-0.08, 0.08) * t / max(t[-1], 1e-6)
    gain = 1.0 + rng.uniform(-0.1, 0.1) * t / max(t[-1], 1e-6)
    face_px = 2.4 * g.d
    sigma = noise if noise is not None else float(rng.uniform(0.5, 3.0))
    exposure = _exposure_step(n, seed, exposure_jump) if exposure_jump is not None else None
    frames = []
    for k in range(n):
        rendered = render_turn(image, depth, mask, centre, float(yaw[k]), float(pitch[k]))
        view = _frame_crop(rendered, centre, face_px, out_size, frac, walk[k], float(zoom[k]), float(roll[k]))
        if motion_blur and k > 0:
            speed = abs(yaw[k] - yaw[k - 1]) * fps  # degrees per second
            length = int(round(speed / 60.0 * out_size[0] / 640))  # a few px for a brisk turn
            if length >= 2:
                kernel = np.full((1, length), 1.0 / length, dtype=np.float32)
                view = cv2.filter2D(view, -1, kernel)
        frames.append(view.astype(np.float32) * gain[k])
        if exposure is not None:
            channel_gain, offset = exposure
            frames[-1] = frames[-1] * channel_gain[k] + offset[k]
        frames[-1] = _noisy(frames[-1], rng, sigma)  # frame by frame: a 4K clip in float32 would take GBs
    return _finish(np.stack(frames), fps, rng, noise=0.0, h264=h264, crf=crf, mirrored=mirrored)


def _exposure_step(n: int, seed: int, jump: float) -> tuple[np.ndarray, np.ndarray]:
    """Per frame of an ``n``-frame clip: the RGB gain (``n x 3``) and grey offset (``n``) of an auto-exposure
    step to ``jump`` times the gain, with an offset of up to +-10 grey levels and each channel's gain off by up to
    +-8 % (white balance), eased in over 1-3 frames that start anywhere between 15 % and 85 % of the clip. Its
    own generator (from ``seed``): the clip's other draws stay as they are."""
    rng = np.random.default_rng([seed, 0xE1])
    frames = int(rng.integers(1, 4))
    start = int(rng.integers(round(0.15 * n), max(round(0.85 * n) - frames, round(0.15 * n) + 1)))
    final_gain = jump * (1.0 + rng.uniform(-0.08, 0.08, 3))
    final_offset = float(rng.uniform(-10.0, 10.0))
    # 0 before the step, 1 after it, evenly in between over ``frames`` frames.
    progress = np.clip((np.arange(n) - start + 1) / frames, 0.0, 1.0)
    channel_gain = 1.0 + progress[:, None] * (final_gain[None, :] - 1.0)
    return channel_gain.astype(np.float32), (progress * final_offset).astype(np.float32)


def _noisy(frame: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    out = frame.astype(np.float32)
    if sigma > 0:
        out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(sigma)
    return np.clip(out, 0, 255).astype(np.uint8)


def _warp_frames(
    image: np.ndarray,
    maps: list[np.ndarray],
    out_size: tuple[int, int],
    centre: np.ndarray,
    face_px: float,
    frac: float,
) -> np.ndarray:
    """Frames of ``image`` warped by each 3x3 homography in ``maps`` (about ``centre``), then framed."""
    frames = []
    for hmat in maps:
        warped = cv2.warpPerspective(image, hmat, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REPLICATE)
        frames.append(_frame_crop(warped, centre, face_px, out_size, frac, np.zeros(2), 1.0, 0.0))
    return np.stack(frames)


def _about(centre: np.ndarray, m: np.ndarray) -> np.ndarray:
    to = np.array([[1, 0, -centre[0]], [0, 1, -centre[1]], [0, 0, 1]], dtype=np.float64)
    back = np.array([[1, 0, centre[0]], [0, 1, centre[1]], [0, 0, 1]], dtype=np.float64)
    return back @ m @ to


def attack_clip(
    kind: AttackKind,
    moves: Sequence[str],
    person: str = "obama_1",
    *,
    seconds: float = 4.0,
    fps: float = 15,
    seed: int = 0,
    resolution: str = "360p",
    strength: float = 1.0,
    h264: bool = False,
    crf: int = 30,
) -> np.ndarray:
    """A clip made from a FLAT picture (or stitched photographs) whose 5 landmarks read as the asked turns
    (``moves``, the person's own terms, unmirrored): what liveness must refuse. ``strength`` scales the
    apparent turn (1.0: a yaw of about 0.2-0.3, well past the turn threshold)."""
    return _attack_clip(kind, tuple(moves), person, seconds, fps, seed, resolution, strength, h264, crf)


@cache
def _attack_clip(
    kind: AttackKind,
    moves: tuple[str, ...],
    person: str,
    seconds: float,
    fps: float,
    seed: int,
    resolution: str,
    strength: float,
    h264: bool,
    crf: int,
) -> np.ndarray:
    rng = np.random.default_rng(seed + 1000)
    out_size = RESOLUTIONS[resolution]
    frac = float(rng.uniform(0.18, 0.26))
    n = max(2, round(seconds * fps))
    # The apparent turn over time, -1..1 (positive: the nose toward the image's right).
    sched = turn_schedule(moves, n, rng, [1.0] * len(moves))
    if kind in ("stitched_cut", "stitched_fade"):
        frames = _stitched(moves, sched, out_size, frac, fade=kind == "stitched_fade")
        return _finish(frames, fps, rng, noise=1.0, h264=h264, crf=crf, mirrored=False)
    image = photo(person)
    g = _geometry(person)
    centre = g.mid + 0.25 * g.d * g.ey
    face_px = 2.4 * g.d
    # Axes of the face: u across (eye axis), v down.
    basis = np.array([[g.ex[0], g.ey[0]], [g.ex[1], g.ey[1]]])  # columns: ex, ey
    amount = 0.3 * strength  # the yaw the warp should read as
    if kind == "cylinder":
        depth, _ = _cylinder_depth(person, curvature=float(rng.uniform(1.5, 3.0)))
        frames_list = []
        h, w = image.shape[:2]
        xs = np.arange(w, dtype=np.float64)
        zrow = depth[0].astype(np.float64)
        rows = np.arange(h, dtype=np.float32)
        for k in range(n):
            # Turn the bent page far enough that the landmark yaw passes the threshold (shear added to help).
            # The page's depth depends on x only, so the rotation is a 1-D remapping of the columns.
            ang = np.radians(45.0 * float(sched[k]) * strength)
            xp = g.mid[0] + (xs - g.mid[0]) * np.cos(ang) + zrow * np.sin(ang)
            xp = np.maximum.accumulate(xp)  # the front of the page hides what folds behind it
            src = np.interp(xs, xp, xs).astype(np.float32)
            rendered = cv2.remap(
                image,
                np.broadcast_to(src, (h, w)).copy(),
                np.broadcast_to(rows[:, None], (h, w)).copy(),
                cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )
            shear = np.eye(3)
            shear[:2, :2] = basis @ np.array([[1, amount * 0.8 * float(sched[k])], [0, 1]]) @ basis.T
            rendered = cv2.warpPerspective(
                rendered, _about(g.mid, shear), (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REPLICATE
            )
            frames_list.append(_frame_crop(rendered, centre, face_px, out_size, frac, np.zeros(2), 1.0, 0.0))
        return _finish(np.stack(frames_list), fps, rng, noise=1.0, h264=h264, crf=crf, mirrored=False)
    if kind in ("affine", "perspective"):
        maps = []
        rot0, zoom_rate = float(rng.uniform(-8, 8)), float(rng.uniform(-0.1, 0.1))
        for k in range(n):
            s = float(sched[k])
            # A shear along the eye axis growing down the face moves the nose sideways against the eyes.
            local = np.array([[1.0 - 0.1 * abs(s), amount * 1.1 * s], [0.0, 1.0]])
            m = np.eye(3)
            m[:2, :2] = basis @ local @ basis.T
            ang = np.radians(rot0 * k / n)
            rot = np.array([[np.cos(ang), -np.sin(ang), 0], [np.sin(ang), np.cos(ang), 0], [0, 0, 1]])
            m = rot @ m * 1.0
            m[:2, :2] *= 1.0 + zoom_rate * k / n
            m[:2, 2] += np.array([4.0 * np.sin(k / 5.0), 3.0 * np.cos(k / 7.0)])
            if kind == "perspective":
                # A print or screen tilted about its vertical axis: keystone.
                m = m @ np.array([[1, 0, 0], [0, 1, 0], [0.0012 * s * strength, 0, 1]])
            maps.append(_about(centre, m))
        frames = _warp_frames(image, maps, out_size, centre, face_px, frac)
        return _finish(frames, fps, rng, noise=1.0, h264=h264, crf=crf, mirrored=False)
    # Local warps: a smooth Gaussian displacement pushing the nose region sideways (liquify), maybe + affine.
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rel_u = ((xx - g.nose[0]) * g.ex[0] + (yy - g.nose[1]) * g.ex[1]) / g.d
    rel_v = ((xx - g.nose[0]) * g.ey[0] + (yy - g.nose[1]) * g.ey[1]) / g.d
    sigma = float(rng.uniform(0.35, 0.6))
    bump = np.exp(-(rel_u**2 + (rel_v + 0.3) ** 2) / (2 * sigma**2)).astype(np.float32)
    frames_list = []
    for k in range(n):
        s = float(sched[k])
        shift = -amount * 1.4 * s * g.d * bump  # backward map: sample from the opposite side
        mx = (xx + shift * g.ex[0]).astype(np.float32)
        my = (yy + shift * g.ex[1]).astype(np.float32)
        warped = cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if kind == "local_affine":
            m = np.eye(3)
            m[:2, :2] = basis @ np.array([[1.0, 0.5 * amount * s], [0, 1.0 + 0.05 * s]]) @ basis.T
            m[:2, 2] += np.array([6.0 * s, 2.0 * np.sin(k / 4.0)])
            warped = cv2.warpPerspective(warped, _about(centre, m), (w, h), borderMode=cv2.BORDER_REPLICATE)
        frames_list.append(_frame_crop(warped, centre, face_px, out_size, frac, np.zeros(2), 1.0, 0.0))
    return _finish(np.stack(frames_list), fps, rng, noise=1.0, h264=h264, crf=crf, mirrored=False)


def _stitched(
    moves: Sequence[str], sched: np.ndarray, out_size: tuple[int, int], frac: float, *, fade: bool
) -> np.ndarray:
    """obama_1 (front), obama_3 (turned to his left) and obama_2 (to his right), aligned on the eyes so the face
    stays in place, shown as the schedule asks: hard cuts, or cross-fades between them."""
    ref = _geometry("obama_1")
    centre = ref.mid + 0.25 * ref.d * ref.ey
    face_px = 2.4 * ref.d
    aligned = {}
    for name in ("obama_1", "obama_2", "obama_3"):
        g = _geometry(name)
        src = np.float32([g.eyes[0], g.eyes[1]])
        dst = np.float32([ref.eyes[0], ref.eyes[1]])
        m, _ = cv2.estimateAffinePartial2D(src, dst)
        if m is None:  # two points always give a similarity
            m = np.float32([[1, 0, 0], [0, 1, 0]])
        warped = cv2.warpAffine(
            photo(name), m, (photo("obama_1").shape[1], photo("obama_1").shape[0]), borderMode=cv2.BORDER_REPLICATE
        )
        view = _frame_crop(warped, centre, face_px, out_size, frac, np.zeros(2), 1.0, 0.0)
        aligned[name] = view.astype(np.float32)
    frames = []
    for s in sched:
        side = "obama_3" if s > 0 else "obama_2"
        weight = float(np.clip(abs(s), 0.0, 1.0))
        if fade:
            frames.append(aligned["obama_1"] * (1 - weight) + aligned[side] * weight)
        else:
            frames.append(aligned[side] if weight > 0.5 else aligned["obama_1"])
    return np.stack(frames)


def clear_cache() -> None:
    """Forget the rendered clips (a benchmark renders hundreds; each 1080p clip holds about 1 GB)."""
    _head_turn_clip.cache_clear()
    _attack_clip.cache_clear()
    _sample_cache.clear()
