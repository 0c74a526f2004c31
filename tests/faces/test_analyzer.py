"""FaceAnalyzer on real photographs: detection, descriptors, yaw, sharpness, chips, model loading."""

from __future__ import annotations

import itertools
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from kinema.faces import FaceAnalyzer, FaceModelsUnavailable, best_match, distance, installed_models_dir, same_person
from kinema.faces.analyzer import MODEL_FILES, laplacian_variance
from testkit.faces.photos import blurred, photo

OBAMA = ["obama_1", "obama_2", "obama_3"]
DIFFERENT = ["obama_1", "obama_2", "biden_1", "biden_2", "rose_leslie_1", "rose_leslie_2"]


def _descriptor(analyzer: FaceAnalyzer, name: str) -> np.ndarray:
    faces = analyzer.detect(photo(name))
    assert len(faces) == 1, name
    return faces[0].descriptor


def test_faces_carry_box_landmarks_descriptor_and_measures(analyzer: FaceAnalyzer) -> None:
    image = photo("obama_1")
    (face,) = analyzer.detect(image)
    left, top, right, bottom = face.box
    assert 0 <= left < right <= image.shape[1] and 0 <= top < bottom <= image.shape[0]
    assert face.size == pytest.approx(right - left, abs=1)
    assert face.landmarks.shape == (5, 2)
    assert np.all((face.landmarks >= [left, top]) & (face.landmarks <= [right, bottom]))
    assert face.descriptor.shape == (128,) and face.descriptor.dtype == np.float32
    assert abs(face.yaw) < 0.05  # facing the camera
    assert face.sharpness > 100
    with pytest.raises(ValueError):
        face.descriptor[0] = 1.0  # read-only


def test_same_person_is_accepted_across_poses(analyzer: FaceAnalyzer) -> None:
    descriptors = {name: _descriptor(analyzer, name) for name in OBAMA}
    for a, b in itertools.combinations(OBAMA, 2):
        assert distance(descriptors[a], descriptors[b]) < 0.6, (a, b)
        assert same_person(descriptors[a], descriptors[b])


def test_different_people_are_told_apart(analyzer: FaceAnalyzer) -> None:
    descriptors = {name: _descriptor(analyzer, name) for name in DIFFERENT}
    for a, b in itertools.combinations(DIFFERENT, 2):
        same = a.rsplit("_", 1)[0] == b.rsplit("_", 1)[0]
        assert same_person(descriptors[a], descriptors[b]) == same, (a, b, distance(descriptors[a], descriptors[b]))
    enrolled = [("obama", descriptors["obama_1"]), ("biden", descriptors["biden_1"])]
    match = best_match(descriptors["obama_2"], enrolled)
    assert match is not None and match[0] == "obama"
    assert best_match(descriptors["rose_leslie_1"], enrolled) is None


@pytest.mark.parametrize(("name", "count"), [("group_obama_biden", 3), ("group_two_people", 2)])
def test_group_photos_give_every_face(analyzer: FaceAnalyzer, name: str, count: int) -> None:
    faces = analyzer.detect(photo(name))
    assert len(faces) == count
    assert [f.size for f in faces] == sorted((f.size for f in faces), reverse=True)  # largest first
    for a, b in itertools.combinations(faces, 2):
        assert not same_person(a.descriptor, b.descriptor)


def test_yaw_sign_follows_the_nose_in_the_image(analyzer: FaceAnalyzer) -> None:
    (toward_image_right,) = analyzer.detect(photo("obama_3"))
    (toward_image_left,) = analyzer.detect(photo("obama_2"))
    (mirrored,) = analyzer.detect(np.ascontiguousarray(photo("obama_3")[:, ::-1]))
    assert toward_image_right.yaw > 0.1
    assert toward_image_left.yaw < -0.1
    assert mirrored.yaw == pytest.approx(-toward_image_right.yaw, abs=0.02)


def test_sharpness_drops_with_blur(analyzer: FaceAnalyzer) -> None:
    (sharp,) = analyzer.detect(photo("obama_1"))
    (soft,) = analyzer.detect(blurred(photo("obama_1"), 3))
    assert soft.sharpness < 25 < sharp.sharpness
    flat = np.full((50, 50), 7.0)
    assert laplacian_variance(flat) == 0.0


def test_chip_is_an_aligned_crop_of_the_same_face(analyzer: FaceAnalyzer) -> None:
    image = photo("obama_2")
    (face,) = analyzer.detect(image)
    chip = analyzer.chip(image, face, size=256)
    assert chip.shape == (256, 256, 3) and chip.dtype == np.uint8
    (again,) = analyzer.detect(chip)
    assert distance(again.descriptor, face.descriptor) < 0.3


def test_no_face_and_bad_images(analyzer: FaceAnalyzer) -> None:
    assert analyzer.detect(np.full((240, 320, 3), 90, dtype=np.uint8)) == []
    with pytest.raises(ValueError, match="uint8"):
        analyzer.detect(np.zeros((10, 10, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="height, width, 3"):
        analyzer.detect(np.zeros((10, 10), dtype=np.uint8))


def test_concurrent_use_of_one_analyzer(analyzer: FaceAnalyzer) -> None:
    images = [photo("biden_1"), photo("rose_leslie_1")]
    expected = [analyzer.detect(im)[0].descriptor for im in images]
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = analyzer.detect(images[i])[0].descriptor

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        np.testing.assert_array_equal(results[i], expected[i])


def test_models_load_by_path_without_importing_the_models_package(analyzer: FaceAnalyzer) -> None:
    folder = installed_models_dir()
    assert folder is not None and all((folder / name).is_file() for name in MODEL_FILES)
    assert "face_recognition_models" not in sys.modules  # its __init__ needs pkg_resources


def test_models_dir_override(tmp_path: Path, photos: Path) -> None:
    with pytest.raises(FaceModelsUnavailable, match="lacks"):
        FaceAnalyzer(models_dir=tmp_path).load()
    installed = installed_models_dir()
    assert installed is not None
    for name in MODEL_FILES:
        (tmp_path / name).symlink_to(installed / name)
    faces = FaceAnalyzer(models_dir=tmp_path).detect(photo("biden_1"), upsample=0)
    assert len(faces) == 1


def test_a_huge_image_is_detected_on_a_bounded_downscale(analyzer: FaceAnalyzer) -> None:
    """A 40 MP upload costs what a 1 MP one does; the box still lands on the face in the original's pixels."""
    import resource
    import time

    import cv2

    image = photo("obama_1")  # 640x800
    (small,) = analyzer.detect(image)
    factor = 8.0  # 5120x6400: 33 MP
    huge = cv2.resize(image, (image.shape[1] * 8, image.shape[0] * 8), interpolation=cv2.INTER_LINEAR)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    (face,) = analyzer.detect(huge)
    elapsed = time.perf_counter() - started
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    # dlib's boxes come in steps of its scale pyramid: the same face may be boxed up to ~10 % larger.
    assert np.allclose(np.array(face.box) / factor, small.box, atol=0.1 * small.size)
    assert np.allclose(face.landmarks / factor, small.landmarks, atol=0.03 * small.size)
    assert abs(face.size / factor - small.size) < 0.1 * small.size
    assert distance(face.descriptor, small.descriptor) < 0.2
    assert abs(face.yaw - small.yaw) < 0.05
    # Whole-image detection at 33 MP would take tens of seconds and GBs; the downscale takes well under both.
    assert elapsed < 8.0
    assert grown_mb < 400
    # The chip of the original image is the same face.
    (chip_face,) = analyzer.detect(analyzer.chip(huge, face))
    assert distance(chip_face.descriptor, small.descriptor) < 0.4
    # Without the bound, a small max_side still finds the face and maps it back.
    (coarse,) = analyzer.detect(image, max_side=400)
    assert np.allclose(coarse.box, small.box, atol=0.1 * small.size)
    with pytest.raises(ValueError):
        analyzer.detect(image, max_side=4)
