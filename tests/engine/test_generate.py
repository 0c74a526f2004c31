"""Generation through real diffusers pipelines loaded with from_pretrained from the tiny-wan miniatures."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from kinema.engine.base import Cancelled, GenerationRequest, Task
from kinema.engine.registry import ModelSpec
from kinema.engine.runtime import Engine

Make = Callable[..., GenerationRequest]


def _never() -> bool:
    return False


def _ignore(step: int, total: int) -> None:
    pass


def _image(color: tuple[int, int, int], size: tuple[int, int] = (120, 80)) -> Image.Image:
    """A picture with some structure (a gradient and a block), not a flat colour."""
    w, h = size
    ramp = np.linspace(0, 255, w, dtype=np.uint8)[None, :, None].repeat(h, 0).repeat(3, 2)
    pixels = (ramp // 2 + np.array(color, dtype=np.uint8) // 2).astype(np.uint8)
    pixels[h // 4 : h // 2, w // 4 : w // 2] = 255
    return Image.fromarray(pixels)


def _inputs(task: Task) -> dict[str, object]:
    if task == "i2v":
        return {"image": _image((200, 40, 40))}
    if task == "v2v":
        return {"video": [_image((40, 40, 200 - 8 * i)) for i in range(17)], "strength": 0.75}
    if task == "vace":
        return {"reference_images": [_image((40, 200, 40), size=(64, 64))]}
    return {}


@pytest.mark.parametrize("task", ["t2v", "i2v", "v2v", "vace"])
def test_each_task_makes_frames_of_the_requested_shape(
    engine: Engine, tiny: ModelSpec, make_request: Make, task: Task
) -> None:
    backend = engine.backend_for(tiny, task)
    result = backend.generate(make_request(task, **_inputs(task)), _ignore, _never)
    assert result.frames.shape == (17, 64, 96, 3)
    assert result.frames.dtype == np.uint8
    assert result.fps == tiny.fps
    assert result.frames.std() > 0  # not a blank clip


def test_portrait_and_longer_clips(engine: Engine, tiny: ModelSpec, make_request: Make) -> None:
    backend = engine.backend_for(tiny, "t2v")
    result = backend.generate(make_request(width=64, height=96, num_frames=9, num_inference_steps=2), _ignore, _never)
    assert result.frames.shape == (9, 96, 64, 3)


def test_same_seed_same_frames_different_seed_different(engine: Engine, tiny: ModelSpec, make_request: Make) -> None:
    backend = engine.backend_for(tiny, "t2v")
    first = backend.generate(make_request(seed=7), _ignore, _never).frames
    again = backend.generate(make_request(seed=7), _ignore, _never).frames
    other = backend.generate(make_request(seed=8), _ignore, _never).frames
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - other.astype(int)).mean() > 1.0


def test_i2v_follows_its_first_frame(engine: Engine, tiny: ModelSpec, make_request: Make) -> None:
    backend = engine.backend_for(tiny, "i2v")
    red = backend.generate(make_request("i2v", image=_image((220, 20, 20))), _ignore, _never).frames
    blue = backend.generate(make_request("i2v", image=_image((20, 20, 220))), _ignore, _never).frames
    assert not np.array_equal(red, blue)


def test_progress_is_reported_once_per_step(engine: Engine, tiny: ModelSpec, make_request: Make) -> None:
    calls: list[tuple[int, int]] = []
    engine.backend_for(tiny, "t2v").generate(
        make_request(num_inference_steps=4), lambda d, t: calls.append((d, t)), _never
    )
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_v2v_progress_counts_the_steps_strength_leaves(engine: Engine, tiny: ModelSpec, make_request: Make) -> None:
    calls: list[tuple[int, int]] = []
    request = make_request("v2v", num_inference_steps=4, **{**_inputs("v2v"), "strength": 0.5})
    engine.backend_for(tiny, "v2v").generate(request, lambda d, t: calls.append((d, t)), _never)
    assert calls == [(1, 2), (2, 2)]


def test_v2v_conforms_a_short_odd_sized_source(engine: Engine, tiny: ModelSpec, make_request: Make) -> None:
    source = [_image((90, 90, 30 * i), size=(200, 90)) for i in range(5)]
    # strength 0 still runs one step: the pipeline cannot run zero
    request = make_request("v2v", video=source, strength=0.0, num_frames=9)
    steps: list[int] = []
    result = engine.backend_for(tiny, "v2v").generate(request, lambda d, t: steps.append(d), _never)
    assert result.frames.shape == (9, 64, 96, 3)
    assert steps == [1]


def test_cancel_at_step_2_stops_before_the_vae_decodes(
    engine: Engine, tiny: ModelSpec, make_request: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = engine.backend_for(tiny, "t2v")
    vae = backend.pipeline.vae
    decodes: list[object] = []
    real_decode = vae.decode

    def counting_decode(*args: object, **kwargs: object) -> object:
        decodes.append(args)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(vae, "decode", counting_decode)
    # the hook is live: an uncancelled run decodes exactly once
    before = backend.generate(make_request(num_inference_steps=2), _ignore, _never).frames
    assert len(decodes) == 1
    decodes.clear()

    done: list[int] = []
    with pytest.raises(Cancelled):
        backend.generate(make_request(num_inference_steps=4), lambda d, t: done.append(d), lambda: len(done) >= 2)
    assert done == [1, 2]
    assert decodes == []
    # the cancelled run left no state behind: the same request gives the same clip as before it
    after = backend.generate(make_request(num_inference_steps=2), _ignore, _never).frames
    np.testing.assert_array_equal(before, after)


def test_cancel_before_starting_runs_nothing(engine: Engine, tiny: ModelSpec, make_request: Make) -> None:
    done: list[int] = []
    with pytest.raises(Cancelled):
        engine.backend_for(tiny, "t2v").generate(make_request(), lambda d, t: done.append(d), lambda: True)
    assert done == []


@pytest.mark.parametrize(
    ("task", "overrides", "message"),
    [
        ("i2v", {}, "needs an image"),
        ("v2v", {}, "needs a source video"),
        ("vace", {}, "needs reference images"),
        ("t2v", {"num_frames": 16}, "4k\\+1"),
        ("t2v", {"width": 100}, "multiples of 16"),
        ("i2v", {"task": "t2v"}, "serves i2v"),
    ],
)
def test_bad_requests_are_refused_before_any_work(
    engine: Engine,
    tiny: ModelSpec,
    make_request: Make,
    task: Task,
    overrides: dict[str, object],
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        engine.backend_for(tiny, task).generate(make_request(**{"task": task, **overrides}), _ignore, _never)
