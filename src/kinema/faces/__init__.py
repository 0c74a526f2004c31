"""Face analysis for likenesses: a person enrols their own face from a short clip.

* ``analyzer``: ``FaceAnalyzer`` finds faces with dlib and gives each its box, 5 landmarks, 128-d descriptor,
  head turn (``yaw``), size and sharpness; ``chip`` cuts out an aligned face crop.
* ``matching``: ``distance``, ``same_person`` and ``best_match`` compare descriptors (numpy only).
* ``enrolment``: ``analyze_enrolment`` checks an enrolment clip (one face, one person, sharp and large enough,
  alive, performing a random head-turn ``challenge``) and returns the ``Enrolment``, or raises ``EnrolmentError``.
* ``liveness``: the depth-parallax, self-occlusion and continuity measures (OpenCV optical flow) that tell a
  head turning in one continuous take from a flat picture moved or warped, or photos spliced together.

dlib and the model files are needed only once faces are analysed; see ``analyzer`` for where models come from.
"""

from kinema.faces.analyzer import (
    Face,
    FaceAnalyzer,
    FaceModelsUnavailable,
    default_analyzer,
    installed_models_dir,
    resolve_models_dir,
)
from kinema.faces.enrolment import (
    DIRECTIONS,
    MIN_FACE_SIZE,
    MIN_MOTION,
    MIN_SHARPNESS,
    MIN_TURN,
    Direction,
    Enrolment,
    EnrolmentError,
    EnrolmentErrorCode,
    analyze_enrolment,
    describe_challenge,
    random_challenge,
)
from kinema.faces.matching import SAME_PERSON, best_match, distance, same_person

__all__ = [
    "DIRECTIONS",
    "MIN_FACE_SIZE",
    "MIN_MOTION",
    "MIN_SHARPNESS",
    "MIN_TURN",
    "SAME_PERSON",
    "Direction",
    "Enrolment",
    "EnrolmentError",
    "EnrolmentErrorCode",
    "Face",
    "FaceAnalyzer",
    "FaceModelsUnavailable",
    "analyze_enrolment",
    "best_match",
    "default_analyzer",
    "describe_challenge",
    "distance",
    "installed_models_dir",
    "random_challenge",
    "resolve_models_dir",
    "same_person",
]
