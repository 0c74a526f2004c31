"""Model resolution, aliases, and what a model says when asked for something it cannot do."""

from __future__ import annotations

import pytest

from kinema.engine.registry import (
    BUILTIN_DEFAULT,
    ComponentSource,
    ModelRegistry,
    ModelSpec,
    UnknownModel,
    UnsupportedRequest,
    builtin_specs,
)


def test_none_and_blank_resolve_to_the_default(registry: ModelRegistry) -> None:
    assert registry.resolve(None).name == BUILTIN_DEFAULT
    assert registry.resolve("  ").name == BUILTIN_DEFAULT


def test_aliases_and_case_resolve_to_real_models(registry: ModelRegistry) -> None:
    assert registry.resolve("sora-2").name == "wan2.1-t2v-1.3b"
    assert registry.resolve("Sora-2-Pro").name == "wan2.2-ti2v-5b"
    assert registry.resolve(" TINY-WAN ").name == "tiny-wan"
    assert "sora-2" not in registry.names()


def test_unknown_model_lists_what_exists(registry: ModelRegistry) -> None:
    with pytest.raises(UnknownModel) as info:
        registry.resolve("veo-9")
    message = str(info.value)
    assert "'veo-9'" in message
    for name in registry.names():
        assert name in message
    assert "sora-2 -> wan2.1-t2v-1.3b" in message
    assert info.value.param == "model"
    assert isinstance(info.value, LookupError)


def test_openai_sizes_map_to_native_ones(registry: ModelRegistry) -> None:
    wan = registry.resolve("wan2.1-t2v-1.3b")
    assert registry.native_size(wan, "1280x720") == (832, 480)
    assert registry.native_size(wan, "1792x1024") == (832, 480)
    assert registry.native_size(wan, "720x1280") == (480, 832)
    assert registry.native_size(wan, "1024x1792") == (480, 832)
    assert registry.native_size(wan, "480x832") == (480, 832)
    assert registry.native_size(wan, None) == (832, 480)
    ti2v = registry.resolve("wan2.2-ti2v-5b")
    assert registry.native_size(ti2v, "1280x720") == (1280, 704)
    assert registry.native_size(ti2v, "720x1280") == (704, 1280)


def test_unsupported_size_says_what_the_model_can_do(registry: ModelRegistry) -> None:
    wan = registry.resolve("wan2.1-t2v-1.3b")
    with pytest.raises(UnsupportedRequest) as info:
        registry.native_size(wan, "640x640")
    assert info.value.param == "size"
    assert isinstance(info.value, ValueError)
    assert str(info.value) == (
        "model 'wan2.1-t2v-1.3b' does not support size '640x640': it supports sizes 832x480, 480x832 "
        "(also accepted: 1280x720, 1792x1024 -> 832x480; 720x1280, 1024x1792 -> 480x832); seconds 4, 5; "
        "tasks t2v, v2v, vace"
    )


def test_seconds_map_to_4k_plus_1_frames(registry: ModelRegistry) -> None:
    wan = registry.resolve("wan2.1-t2v-1.3b")
    assert registry.num_frames(wan, "4") == 65
    assert registry.num_frames(wan, "5") == 81
    assert registry.num_frames(wan, None) == 81
    assert registry.num_frames(wan, 4) == 65
    tiny = registry.resolve("tiny-wan")
    assert {s: registry.num_frames(tiny, s) for s in ("1", "2", "4", "8", "12")} == {
        "1": 9,
        "2": 17,
        "4": 33,
        "8": 65,
        "12": 97,
    }
    assert registry.num_frames(registry.resolve("wan2.2-ti2v-5b"), "5") == 121


def test_unsupported_seconds_says_what_the_model_can_do(registry: ModelRegistry) -> None:
    wan = registry.resolve("wan2.1-t2v-1.3b")
    with pytest.raises(UnsupportedRequest) as info:
        registry.num_frames(wan, "12")
    assert info.value.param == "seconds"
    assert "'12'" in str(info.value)
    assert "seconds 4, 5" in str(info.value)


def test_task_the_model_cannot_do_names_models_that_can(registry: ModelRegistry) -> None:
    wan = registry.resolve("wan2.1-t2v-1.3b")
    assert registry.source(wan, "vace").repo_id == "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
    with pytest.raises(UnsupportedRequest) as info:
        registry.source(wan, "i2v")
    assert info.value.param == "model"
    assert "cannot do i2v" in str(info.value)
    assert "wan2.1-i2v-14b-480p, wan2.2-ti2v-5b, wan2.2-i2v-a14b, hunyuanvideo-1.5-i2v-480p, tiny-wan" in str(
        info.value
    )


def test_tiny_capabilities_sentence(registry: ModelRegistry) -> None:
    assert registry.resolve("tiny-wan").capabilities() == (
        "sizes 256x160, 160x256, 96x64, 64x96 "
        "(also accepted: 1280x720, 1792x1024 -> 256x160; 720x1280, 1024x1792 -> 160x256); "
        "seconds 1, 2, 4, 8, 12; tasks t2v, i2v, v2v, vace"
    )


def test_builtin_catalogue_is_consistent() -> None:
    specs = {s.name: s for s in builtin_specs()}
    assert set(specs) >= {"wan2.1-t2v-1.3b", "wan2.1-i2v-14b-480p", "wan2.2-ti2v-5b", "tiny-wan"}
    t2v = specs["wan2.1-t2v-1.3b"]
    # text-to-video and video-to-video run the same weights, through different pipeline classes
    assert t2v.tasks["t2v"].repo_id == t2v.tasks["v2v"].repo_id == "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    assert (t2v.tasks["t2v"].pipeline, t2v.tasks["v2v"].pipeline) == (
        "WanPipeline",
        "WanVideoToVideoPipeline",
    )
    assert specs["wan2.1-i2v-14b-480p"].tasks["i2v"].pipeline == "WanImageToVideoPipeline"
    ti2v = specs["wan2.2-ti2v-5b"]
    assert ti2v.fps == 24 and ti2v.tasks["t2v"].repo_id == ti2v.tasks["i2v"].repo_id
    # Wan 2.2's VAE downsamples 16x and the transformer patches 2x: sizes must be multiples of 32
    assert all(w % 32 == 0 and h % 32 == 0 for w, h in ti2v.sizes.values())
    for spec in specs.values():
        assert all(n % 4 == 1 for n in spec.seconds.values()), spec.name
        assert all(n == int(s) * spec.fps + 1 for s, n in spec.seconds.items()), spec.name
        assert spec.miniature == (spec.name == "tiny-wan")
        for source in spec.tasks.values():
            assert (source.repo_id is None) == spec.miniature
            assert source.revision is None  # pinned by `kinema pull` in models.lock.json instead


def test_specs_reject_lengths_wan_cannot_make() -> None:
    with pytest.raises(ValueError, match="4k\\+1"):
        ModelSpec(
            name="bad",
            family="wan",
            description="",
            tasks={"t2v": ComponentSource("WanPipeline", subdir="x")},
            fps=10,
            sizes={"96x64": (96, 64)},
            default_size="96x64",
            seconds={"1": 11},
            default_seconds="1",
            default_steps=1,
            default_guidance=1.0,
        )


def test_registry_rejects_aliases_to_nowhere() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        ModelRegistry(builtin_specs(), aliases={"sora-2": "nope"})
