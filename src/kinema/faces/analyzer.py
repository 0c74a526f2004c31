"""Face detection, landmarks, descriptors and quality measures with dlib.

Models: dlib's HOG frontal face detector (built into dlib), the 5-point landmark predictor
``shape_predictor_5_face_landmarks.dat`` and the ResNet face descriptor
``dlib_face_recognition_resnet_model_v1.dat``. The two ``.dat`` files come from the ``face-recognition-models``
package, read from its installed folder by path: that package's ``__init__`` imports ``pkg_resources`` (gone
from recent setuptools), so it is located with ``importlib.util.find_spec`` and never imported. A folder holding
the two files may be given instead (``FaceAnalyzer(models_dir=...)``), for installs that keep weights elsewhere.

dlib is imported when the models are first needed, so importing ``kinema.faces`` (and matching stored
descriptors) works without it.

Image conventions: images are numpy arrays, RGB, ``uint8``, shaped ``(height, width, 3)``; coordinates are
pixels with x to the right and y down.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

LANDMARKS_MODEL: Final = "shape_predictor_5_face_landmarks.dat"
DESCRIPTOR_MODEL: Final = "dlib_face_recognition_resnet_model_v1.dat"
MODEL_FILES: Final = (LANDMARKS_MODEL, DESCRIPTOR_MODEL)

DESCRIPTOR_CHIP_SIZE: Final = 150
"""Side of the aligned face chip that dlib's descriptor network takes (and that sharpness is measured on)."""
DESCRIPTOR_CHIP_PADDING: Final = 0.25
"""Padding around the face in that chip, as a fraction of the face size (dlib's default for descriptors)."""

# Indices into dlib's 5-point landmarks: two corners of the eye on the image's right (the person's left eye in
# an unmirrored picture), two corners of the other eye, then the bottom of the nose.
_RIGHT_IMAGE_EYE: Final = (0, 1)
_LEFT_IMAGE_EYE: Final = (2, 3)
_NOSE: Final = 4


DETECT_MAX_SIDE: Final = 1024
"""Default longest side of the image that ``FaceAnalyzer.detect`` hands to dlib: larger images are detected on a
downscaled copy. At 1024 px and ``upsample=1`` a detection costs about 0.45 s of one core and finds faces down to
about 40 px of the downscaled copy (4 % of its side); a 40 MP upload costs the same as a 1 MP one."""


class FaceModelsUnavailable(RuntimeError):
    """dlib or the face model files cannot be found; the message says what to install or configure."""


def installed_models_dir() -> Path | None:
    """The ``models`` folder of the installed ``face-recognition-models`` package, without importing it.

    ``importlib.util.find_spec`` on a top-level name locates the package without running its ``__init__``
    (which would import ``pkg_resources``). ``None`` when the package is not installed.
    """
    try:
        spec = importlib.util.find_spec("face_recognition_models")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def resolve_models_dir(models_dir: Path | None = None) -> Path:
    """The folder to load the two ``.dat`` files from: ``models_dir`` if given, else the installed package's.

    Raises ``FaceModelsUnavailable`` naming the missing files when the folder does not hold both.
    """
    folder = Path(models_dir) if models_dir is not None else installed_models_dir()
    if folder is None:
        raise FaceModelsUnavailable(
            "face models not found: install face-recognition-models (pip install face-recognition-models) "
            f"or configure a folder holding {' and '.join(MODEL_FILES)}"
        )
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise FaceModelsUnavailable(f"face models folder {folder} lacks {', '.join(missing)}")
    return folder


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face. Arrays are read-only.

    Attributes:
        box: ``(left, top, right, bottom)`` in pixels, right and bottom exclusive (``image[top:bottom,
            left:right]`` is the face), clipped to the image.
        landmarks: ``(5, 2)`` float array of ``(x, y)`` points from dlib's 5-point model: the two corners of the
            eye on the image's right, the two corners of the eye on the image's left, the bottom of the nose.
        descriptor: 128 ``float32`` values, dlib's face embedding; compare with ``kinema.faces.distance``.
        yaw: how far the head is turned, from the landmarks: the horizontal offset of the nose from the midpoint
            between the eyes, divided by the distance between the eyes (measured along the eye line, so a tilted
            head does not count as turned). About 0 facing the camera, +-0.13 for the turned test photographs
            (roughly 0.4 tan(angle)). **Positive: the nose points toward the image's right** (in an unmirrored
            camera picture the person turned to their own left); negative: toward the image's left.
        size: width of the detection in pixels (before clipping to the image); the face's scale.
        sharpness: variance of the Laplacian of the grey aligned 150x150 face chip (the crop the descriptor
            network sees). Measured on that fixed-size chip, it does not grow or shrink with the face's size in
            pixels: sharp photographs give about 90-580, a Gaussian blur of radius 2 about 12-20.
    """

    box: tuple[int, int, int, int]
    landmarks: np.ndarray
    descriptor: np.ndarray
    yaw: float
    size: int
    sharpness: float


@dataclass(frozen=True, eq=False)
class Located:
    """A face found by ``FaceAnalyzer.locate``: ``box``, ``landmarks``, ``yaw`` and ``size`` as in ``Face``."""

    box: tuple[int, int, int, int]
    landmarks: np.ndarray
    yaw: float
    size: int


def yaw_from_landmarks(landmarks: np.ndarray) -> float:
    """Signed head turn from dlib's 5-point landmarks; see ``Face.yaw`` for its meaning and sign.

    The eye centres are the means of each eye's two corners; the nose's offset from their midpoint is projected
    on the line from the image-left eye to the image-right eye and divided by the eyes' distance.
    """
    pts = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    right_eye = pts[list(_RIGHT_IMAGE_EYE)].mean(axis=0)
    left_eye = pts[list(_LEFT_IMAGE_EYE)].mean(axis=0)
    axis = right_eye - left_eye
    eye_distance = float(np.linalg.norm(axis))
    if eye_distance == 0.0:
        return 0.0
    offset = pts[_NOSE] - (right_eye + left_eye) / 2.0
    return float(np.dot(offset, axis) / (eye_distance * eye_distance))


def normalized_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """Landmarks with position, scale and in-plane rotation taken out: eye midpoint at the origin, eyes on the
    x axis one unit apart. What is left changes only when the head turns or the face changes shape."""
    pts = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    right_eye = pts[list(_RIGHT_IMAGE_EYE)].mean(axis=0)
    left_eye = pts[list(_LEFT_IMAGE_EYE)].mean(axis=0)
    axis = right_eye - left_eye
    scale = float(np.linalg.norm(axis))
    if scale == 0.0:
        return np.zeros_like(pts)
    cos, sin = axis / scale
    rotation = np.array([[cos, sin], [-sin, cos]])
    return ((pts - (right_eye + left_eye) / 2.0) @ rotation.T) / scale


def grey(image: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an RGB image, as float64."""
    rgb = np.asarray(image, dtype=np.float64)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def laplacian_variance(grey_image: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of a 2-D grey image (a standard focus measure); 0 if too small."""
    g = np.asarray(grey_image, dtype=np.float64)
    if g.ndim != 2 or g.shape[0] < 3 or g.shape[1] < 3:
        return 0.0
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]
    return float(lap.var())


def as_rgb(image: np.ndarray) -> np.ndarray:
    """``image`` as a C-contiguous RGB ``uint8`` array, or ``ValueError`` saying what is wrong with it."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {arr.dtype}")
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"image must be shaped (height, width, 3), got {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError("image is empty")
    return np.ascontiguousarray(arr)


def downscaled(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """``image`` shrunk (area interpolation) so that its longest side is at most ``max_side``, and the scale
    factor applied (1.0, and the image itself, when it is small enough or ``max_side`` is ``None``)."""
    height, width = image.shape[:2]
    longest = max(height, width)
    if max_side is None or longest <= max_side:
        return image, 1.0
    import cv2

    scale = max_side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small), size[0] / width


def _read_only(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True)
class _Models:
    dlib: Any
    detector: Any
    predictor: Any
    recognizer: Any


class FaceAnalyzer:
    """Finds faces and describes them with dlib; one instance loads the models once and can be shared.

    The models load on first use, once, under a lock. dlib's descriptor network keeps working buffers, so calls
    on one instance are serialised; use one instance per thread (or process) to analyse in parallel.

    Args:
        models_dir: a folder holding ``shape_predictor_5_face_landmarks.dat`` and
            ``dlib_face_recognition_resnet_model_v1.dat``; default: the installed ``face-recognition-models``.
    """

    def __init__(self, models_dir: Path | None = None) -> None:
        self._models_dir = models_dir
        self._models: _Models | None = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    def load(self) -> None:
        """Load the models now rather than on the first call (for instance at service start)."""
        self._loaded()

    def _loaded(self) -> _Models:
        models = self._models
        if models is not None:
            return models
        with self._load_lock:
            if self._models is None:
                folder = resolve_models_dir(self._models_dir)
                try:
                    import dlib
                except ImportError as exc:
                    raise FaceModelsUnavailable("dlib is not installed (pip install dlib-bin)") from exc
                self._models = _Models(
                    dlib=dlib,
                    detector=dlib.get_frontal_face_detector(),
                    predictor=dlib.shape_predictor(str(folder / LANDMARKS_MODEL)),
                    recognizer=dlib.face_recognition_model_v1(str(folder / DESCRIPTOR_MODEL)),
                )
            return self._models

    def detect(self, image: np.ndarray, upsample: int = 1, *, max_side: int | None = DETECT_MAX_SIDE) -> list[Face]:
        """All faces in an RGB ``uint8`` image, largest first.

        Args:
            image: ``(height, width, 3)`` RGB ``uint8``.
            upsample: how many times the detector doubles the image first; each step finds faces half as small
                (about 80 px wide at 0, 40 px at 1) and costs about four times the time.
            max_side: when the image's longest side exceeds this, the faces are found (and described) on a copy
                downscaled to it (area interpolation), so that the detector never sees more than about
                ``max_side`` squared pixels whatever the upload's size; boxes, landmarks and sizes are still
                given in the original image's pixels. Default ``DETECT_MAX_SIDE`` (1024); ``None``: never
                downscale (the cost grows with the pixel count: 45 s and GBs for 40 MP at ``upsample=1``).
        """
        rgb = as_rgb(image)
        if upsample < 0:
            raise ValueError("upsample must be >= 0")
        if max_side is not None and max_side < 16:
            raise ValueError("max_side must be >= 16")
        m = self._loaded()
        height, width = rgb.shape[:2]
        work, scale = downscaled(rgb, max_side)
        faces: list[Face] = []
        with self._run_lock:
            for rect in m.detector(work, upsample):
                shape = m.predictor(work, rect)
                landmarks = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
                face_chip = m.dlib.get_face_chip(work, shape, DESCRIPTOR_CHIP_SIZE, DESCRIPTOR_CHIP_PADDING)
                descriptor = np.asarray(m.recognizer.compute_face_descriptor(face_chip), dtype=np.float32)
                landmarks = (landmarks + 0.5) / scale - 0.5
                box = (
                    max(int(np.floor(rect.left() / scale)), 0),
                    max(int(np.floor(rect.top() / scale)), 0),
                    min(int(np.ceil((rect.right() + 1) / scale)), width),
                    min(int(np.ceil((rect.bottom() + 1) / scale)), height),
                )
                faces.append(
                    Face(
                        box=box,
                        landmarks=_read_only(landmarks),
                        descriptor=_read_only(descriptor),
                        yaw=yaw_from_landmarks(landmarks),
                        size=round(rect.width() / scale),
                        sharpness=laplacian_variance(grey(face_chip)),
                    )
                )
        faces.sort(key=lambda f: (-f.size, f.box[0], f.box[1]))
        return faces

    def locate(self, image: np.ndarray, upsample: int = 1) -> list[Located]:
        """All faces in a small RGB ``uint8`` image, largest first: where they are and how they are turned,
        without descriptors or sharpness (about a quarter of ``detect``'s time: 0.05 s on 320 x 240 px). For
        live feedback on camera frames; no downscaling, so keep the image small."""
        rgb = as_rgb(image)
        if upsample < 0:
            raise ValueError("upsample must be >= 0")
        m = self._loaded()
        height, width = rgb.shape[:2]
        found: list[Located] = []
        with self._run_lock:
            for rect in m.detector(rgb, upsample):
                shape = m.predictor(rgb, rect)
                landmarks = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
                box = (
                    max(rect.left(), 0),
                    max(rect.top(), 0),
                    min(rect.right() + 1, width),
                    min(rect.bottom() + 1, height),
                )
                found.append(Located(box, _read_only(landmarks), yaw_from_landmarks(landmarks), rect.width()))
        found.sort(key=lambda f: (-f.size, f.box[0], f.box[1]))
        return found

    def landmarks_in(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """dlib's 5 landmarks of the face in ``box`` (``(left, top, right, bottom)``), without detecting it.

        Cheap (well under a millisecond): for following a face found in a nearby frame, also when the detector
        misses it (a strongly turned head).
        """
        rgb = as_rgb(image)
        m = self._loaded()
        left, top, right, bottom = (round(float(v)) for v in box)
        rect = m.dlib.rectangle(left, top, max(right - 1, left + 1), max(bottom - 1, top + 1))
        with self._run_lock:
            shape = m.predictor(rgb, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def chip(self, image: np.ndarray, face: Face, size: int = 256, padding: float = 0.25) -> np.ndarray:
        """The face cut out of ``image``, rotated upright and scaled to ``size`` x ``size`` (dlib's alignment).

        ``padding`` is the margin around the face as a fraction of its size (0.25 shows the forehead and chin;
        more shows hair and neck). ``face`` must come from ``detect`` on this same image.
        """
        rgb = as_rgb(image)
        if size < 1:
            raise ValueError("size must be >= 1")
        dlib = self._loaded().dlib
        left, top, right, bottom = face.box
        rect = dlib.rectangle(left, top, max(right - 1, left), max(bottom - 1, top))
        points = [dlib.point(round(float(x)), round(float(y))) for x, y in face.landmarks]
        shape = dlib.full_object_detection(rect, points)
        return np.asarray(dlib.get_face_chip(rgb, shape, size, padding), dtype=np.uint8)


_default_lock = threading.Lock()
_default: FaceAnalyzer | None = None


def default_analyzer() -> FaceAnalyzer:
    """A process-wide ``FaceAnalyzer`` on the installed models, created on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = FaceAnalyzer()
        return _default
