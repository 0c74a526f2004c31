"""The visible label changes only its corner, identically in every frame."""

from __future__ import annotations

import numpy as np

from kinema.media.label import add_label


def test_label_marks_the_corner_only() -> None:
    frames = np.full((3, 240, 416, 3), 40, np.uint8)
    out = add_label(frames, "AI-generated")
    changed = np.any(out != frames, axis=(0, 3))
    ys, xs = np.nonzero(changed)
    assert ys.min() > 240 // 2 and xs.min() > 416 // 2  # bottom-right quadrant only
    assert (out[:, ys, xs] > 200).any()  # white text is there
    assert np.array_equal(out[0], out[1]) and np.array_equal(out[1], out[2])
    assert np.array_equal(add_label(frames[:, :64, :96], "AI").shape, (3, 64, 96, 3))  # small frames fit
