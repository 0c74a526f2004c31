"""The catalogue of models: what each one is, where its weights live, and what requests it accepts.

API requests speak OpenAI's vocabulary (``size="1280x720"``, ``seconds="8"``, ``model="sora-2"``); the
registry maps those onto what a model natively does (a width and height it was trained at, a frame count
its VAE accepts) or says, in one sentence, what it can do instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from kinema.engine.base import SPEEDS, Speed, Task

TASK_ORDER: tuple[Task, ...] = ("t2v", "i2v", "v2v", "vace")

# Wan's reference negative prompt (shared_config.py of Wan-AI/Wan2.1 and Wan2.2), used when a request gives
# none: the models were tuned with it, and an empty negative prompt visibly degrades motion and detail.
WAN_NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，"  # noqa: RUF001
    "最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，"  # noqa: RUF001
    "画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，"  # noqa: RUF001
    "杂乱的背景，三条腿，背景人很多，倒着走"  # noqa: RUF001
)

OPENAI_LANDSCAPE_SIZES = ("1280x720", "1792x1024")
OPENAI_PORTRAIT_SIZES = ("720x1280", "1024x1792")


@dataclass(frozen=True)
class ComponentSource:
    """Where the weights for one task come from, and which diffusers pipeline class runs them.

    Exactly one of ``repo_id`` (a Hugging Face hub repository) and ``subdir`` (a directory under the
    models dir, for locally built miniatures) is set.
    """

    pipeline: str
    repo_id: str | None = None
    revision: str | None = None
    subdir: str | None = None
    weight_name: str | None = None
    """A single weights file inside the repository or directory (LoRAs); None for a diffusers pipeline."""

    def __post_init__(self) -> None:
        if (self.repo_id is None) == (self.subdir is None):
            raise ValueError("a ComponentSource needs exactly one of repo_id and subdir")


@dataclass(frozen=True)
class TurboSpec:
    """The ``turbo`` preset: a step-distilled LoRA fused at run time, few steps, no classifier-free guidance."""

    lora: ComponentSource
    """``pipeline`` is unused for LoRAs; ``weight_name`` names the file. Wan 2.2 A14B: the high-noise expert's."""
    steps: int = 4
    guidance: float = 1.0
    scale: float = 1.0
    lora_2: ComponentSource | None = None
    """The low-noise expert's (``transformer_2``) LoRA, for two-expert models; another file of the same
    repository (or directory) at the same revision as ``lora``, so one pull and one lock entry cover both."""

    def __post_init__(self) -> None:
        if self.lora.weight_name is None:
            raise ValueError("a turbo LoRA source needs weight_name")
        second = self.lora_2
        if second is not None:
            if second.weight_name is None:
                raise ValueError("a turbo LoRA source needs weight_name")
            if (second.repo_id, second.revision, second.subdir) != (
                self.lora.repo_id,
                self.lora.revision,
                self.lora.subdir,
            ):
                raise ValueError("both experts' turbo LoRAs must come from the same repository and revision")

    def sources(self) -> list[ComponentSource]:
        """The LoRA files this preset needs: one, or one per expert."""
        return [self.lora] if self.lora_2 is None else [self.lora, self.lora_2]


@dataclass(frozen=True)
class ModelSpec:
    """One model in the catalogue and the requests it accepts."""

    name: str
    family: str
    description: str
    tasks: Mapping[Task, ComponentSource]
    fps: int
    sizes: Mapping[str, tuple[int, int]]
    """Accepted API size "WxH" -> native (width, height)."""
    default_size: str
    seconds: Mapping[str, int]
    """Accepted API seconds -> number of frames generated."""
    default_seconds: str
    default_steps: int
    default_guidance: float
    default_guidance_2: float | None = None
    """Wan 2.2 A14B: the guidance of the low-noise expert (``transformer_2``) at the default guidance; None
    uses ``default_guidance`` for both (see :meth:`guidance_2_for`)."""
    miniature: bool = False
    """True for randomly initialised miniatures: they run the real code path but make no meaningful video."""
    default_negative_prompt: str | None = None
    """Used when a request gives no negative prompt (its text embedding is computed once per loaded model)."""
    flow_shift: Mapping[str, float] = field(default_factory=dict)
    """Native "WxH" -> the scheduler's flow shift at that size (Wan: 3.0 at 480p, 5.0 at 720p); sizes not
    listed keep the checkpoint's own value."""
    weights_gb: float = 0.0
    """GPU memory the weights take when all are resident (transformer and text encoder in bf16, VAE and image
    encoder in float32); activations come on top (see docs/models.md)."""
    largest_component_gb: float = 0.0
    """The largest single component: the peak for weights with ``offload="model"``."""
    turbo: TurboSpec | None = None
    """The step-distilled LoRA of the ``turbo`` preset; None when the model has none."""
    default_speed: Speed = "exact"

    def __post_init__(self) -> None:
        # Read-only views: a spec is shared by every thread of a worker and must not change under them.
        for name in ("tasks", "sizes", "seconds", "flow_shift"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        if not self.tasks:
            raise ValueError(f"model {self.name!r} has no tasks")
        if self.default_size not in self.sizes:
            raise ValueError(f"model {self.name!r}: default size {self.default_size!r} is not in its sizes")
        if self.default_seconds not in self.seconds:
            raise ValueError(f"model {self.name!r}: default seconds {self.default_seconds!r} is not accepted")
        if self.family == "ltx":
            # LTX's VAE compresses time 8x (one extra leading frame) and space 32x.
            bad = {s: n for s, n in self.seconds.items() if n % 8 != 1}
            if bad:
                raise ValueError(f"model {self.name!r}: LTX needs 8k+1 frames, got {bad}")
            for api_size, (w, h) in self.sizes.items():
                if w % 32 or h % 32:
                    raise ValueError(f"model {self.name!r}: size {api_size} -> {w}x{h} is not a multiple of 32")
        if self.family in ("wan", "hunyuanvideo15"):
            # The Wan and HunyuanVideo 1.5 VAEs compress time 4x with one extra leading frame, so clips are 4k+1
            # frames long; a pipeline given anything else silently rounds, and the caller would get another length.
            bad = {s: n for s, n in self.seconds.items() if n % 4 != 1}
            if bad:
                raise ValueError(f"model {self.name!r}: {self.family} needs 4k+1 frames, got {bad}")
            for api_size, (w, h) in self.sizes.items():
                if w % 16 or h % 16:
                    raise ValueError(f"model {self.name!r}: size {api_size} -> {w}x{h} is not a multiple of 16")
        unknown = [s for s in self.flow_shift if s not in self.native_sizes()]
        if unknown:
            raise ValueError(f"model {self.name!r}: flow_shift for sizes it does not make: {unknown}")
        if self.default_speed not in self.speeds():
            raise ValueError(f"model {self.name!r}: default speed {self.default_speed!r} is not one it offers")

    def __hash__(self) -> int:
        # The generated hash would hash the mappings, which cannot be hashed; a name identifies a spec.
        return hash((self.name, self.family))

    def native_sizes(self) -> list[str]:
        """The sizes the model generates at, as "WxH", in catalogue order."""
        natives: list[str] = []
        for w, h in self.sizes.values():
            label = f"{w}x{h}"
            if label not in natives:
                natives.append(label)
        return natives

    def flow_shift_for(self, width: int, height: int) -> float | None:
        """The scheduler flow shift for a native size, or None to keep the checkpoint's."""
        return self.flow_shift.get(f"{width}x{height}")

    def guidance_2_for(self, guidance: float) -> float | None:
        """The low-noise expert's guidance for a run at ``guidance``: the model's own second value when the run
        uses the default guidance, else ``guidance`` itself (None: the model has one guidance for all steps).

        A caller that picks its own guidance (or the turbo preset's 1.0) gets it for both experts.
        """
        if self.default_guidance_2 is None:
            return None
        return self.default_guidance_2 if guidance == self.default_guidance else guidance

    def speeds(self) -> list[Speed]:
        """The speed presets this model offers: ``exact`` and ``fast`` always, ``turbo`` with a distilled LoRA."""
        return [s for s in SPEEDS if s != "turbo" or self.turbo is not None]

    def task_names(self) -> list[Task]:
        """The tasks this model can do, in a stable order."""
        return [t for t in TASK_ORDER if t in self.tasks]

    def capabilities(self) -> str:
        """One sentence saying what the model accepts, for error messages.

        For example: "sizes 832x480, 480x832 (also accepted: 1280x720, 1792x1024 -> 832x480; 720x1280,
        1024x1792 -> 480x832); seconds 4, 5; tasks t2v, v2v, vace".
        """
        natives = self.native_sizes()
        mapped: dict[str, list[str]] = {}
        for api_size, (w, h) in self.sizes.items():
            target = f"{w}x{h}"
            if api_size != target:
                mapped.setdefault(target, []).append(api_size)
        sizes = "sizes " + ", ".join(natives)
        if mapped:
            also = "; ".join(f"{', '.join(sources)} -> {target}" for target, sources in mapped.items())
            sizes += f" (also accepted: {also})"
        seconds = "seconds " + ", ".join(sorted(self.seconds, key=_seconds_sort_key))
        tasks = "tasks " + ", ".join(self.task_names())
        return f"{sizes}; {seconds}; {tasks}"


def _seconds_sort_key(value: str) -> tuple[float, str]:
    try:
        return (float(value), value)
    except ValueError:
        return (float("inf"), value)


class UnknownModel(LookupError):
    """The requested model name is neither a model nor an alias; the message lists what exists."""

    param = "model"

    def __init__(self, name: str, available: Iterable[str], aliases: Mapping[str, str] | None = None):
        self.name = name
        self.available = list(available)
        message = f"unknown model {name!r}; available models: {', '.join(self.available)}"
        if aliases:
            message += " (aliases: " + ", ".join(f"{a} -> {t}" for a, t in aliases.items()) + ")"
        super().__init__(message)


class UnsupportedRequest(ValueError):
    """A request asks a model for something it cannot do; ``param`` names the offending field."""

    def __init__(self, param: str, message: str):
        self.param = param
        super().__init__(message)


class ModelRegistry:
    """Resolves model names and aliases to specs, and API sizes/seconds to native values."""

    def __init__(self, specs: Iterable[ModelSpec], aliases: Mapping[str, str] | None = None, default: str = ""):
        self._specs: dict[str, ModelSpec] = {}
        for spec in specs:
            key = spec.name.lower()
            if key in self._specs:
                raise ValueError(f"model {spec.name!r} is listed twice")
            self._specs[key] = spec
        self._aliases: dict[str, str] = {}
        for alias, target in (aliases or {}).items():
            if target.lower() not in self._specs:
                raise ValueError(f"alias {alias!r} points at unknown model {target!r}")
            if alias.lower() in self._specs:
                raise ValueError(f"alias {alias!r} shadows a model of the same name")
            self._aliases[alias.lower()] = self._specs[target.lower()].name
        if not self._specs:
            raise ValueError("a registry needs at least one model")
        self._default = self.resolve(default).name if default else next(iter(self._specs.values())).name

    @property
    def default(self) -> str:
        """The name of the model used when a request names none."""
        return self._default

    def names(self) -> list[str]:
        """Real model names (not aliases), in catalogue order."""
        return [s.name for s in self._specs.values()]

    def specs(self) -> list[ModelSpec]:
        """All specs, in catalogue order."""
        return list(self._specs.values())

    def aliases(self) -> dict[str, str]:
        """Alias -> model name."""
        return dict(self._aliases)

    def resolve(self, name: str | None) -> ModelSpec:
        """The spec for a model name or alias (case-insensitive); ``None`` or "" means the default.

        Raises :class:`UnknownModel` listing the available names.
        """
        if name is None or not name.strip():
            return self._specs[self._default.lower()]
        key = name.strip().lower()
        key = self._aliases.get(key, key).lower()
        spec = self._specs.get(key)
        if spec is None:
            raise UnknownModel(name, self.names(), self._aliases)
        return spec

    def source(self, spec: ModelSpec, task: Task) -> ComponentSource:
        """Where ``spec`` gets its weights for ``task``.

        Raises :class:`UnsupportedRequest` (param "model") naming the models that can do the task.
        """
        source = spec.tasks.get(task)
        if source is None:
            able = [s.name for s in self._specs.values() if task in s.tasks]
            hint = f"; models that can: {', '.join(able)}" if able else ""
            raise UnsupportedRequest(
                "model", f"model {spec.name!r} cannot do {task}: it supports {spec.capabilities()}{hint}"
            )
        return source

    def native_size(self, spec: ModelSpec, size: str | None) -> tuple[int, int]:
        """The native (width, height) for an API size "WxH"; ``None`` means the model's default.

        Raises :class:`UnsupportedRequest` (param "size") saying what the model accepts.
        """
        key = spec.default_size if size is None else size.strip().lower().replace(" ", "")
        native = spec.sizes.get(key)
        if native is None:
            raise UnsupportedRequest(
                "size",
                f"model {spec.name!r} does not support size {size!r}: it supports {spec.capabilities()}",
            )
        return native

    def num_frames(self, spec: ModelSpec, seconds: str | int | None) -> int:
        """The frame count for an API duration in seconds; ``None`` means the model's default.

        Raises :class:`UnsupportedRequest` (param "seconds") saying what the model accepts.
        """
        key = spec.default_seconds if seconds is None else str(seconds).strip()
        frames = spec.seconds.get(key)
        if frames is None:
            raise UnsupportedRequest(
                "seconds",
                f"model {spec.name!r} does not support seconds {seconds!r}: it supports {spec.capabilities()}",
            )
        return frames


# --- the built-in catalogue -------------------------------------------------------------------------------


def _sizes(landscape: tuple[int, int]) -> dict[str, tuple[int, int]]:
    """Native landscape and portrait sizes, plus OpenAI's sizes mapped onto the same orientation."""
    w, h = landscape
    sizes = {f"{w}x{h}": (w, h), f"{h}x{w}": (h, w)}
    sizes.update({s: (w, h) for s in OPENAI_LANDSCAPE_SIZES if s not in sizes})
    sizes.update({s: (h, w) for s in OPENAI_PORTRAIT_SIZES if s not in sizes})
    return sizes


def _seconds(fps: int, durations: Iterable[int]) -> dict[str, int]:
    """Seconds -> frames: Wan clips are ``seconds * fps + 1`` frames (4k+1 when fps is a multiple of 4)."""
    return {str(s): s * fps + 1 for s in durations}


WAN22_LIGHTNING = "lightx2v/Wan2.2-Lightning"
WAN22_LIGHTNING_I2V_REVISION = "18bccf8884ec0a078eed79785eb4ef13ea16ce1e"

TINY_WAN = "tiny-wan"
TINY_WAN_A14B = "tiny-wan-a14b"
TINY_TURBO_LORA = "pytorch_lora_weights.safetensors"
TINY_A14B_TURBO_LORAS = ("high_noise_model.safetensors", "low_noise_model.safetensors")


def _shift_480p(landscape: tuple[int, int]) -> dict[str, float]:
    """Flow shift 3.0 at a 480p model's native sizes (the reference value for 480p; 720p uses 5.0)."""
    w, h = landscape
    return {f"{w}x{h}": 3.0, f"{h}x{w}": 3.0}


BUILTIN_ALIASES: Mapping[str, str] = MappingProxyType({"sora-2": "wan2.1-t2v-1.3b", "sora-2-pro": "wan2.2-ti2v-5b"})
BUILTIN_DEFAULT = "wan2.1-t2v-1.3b"


def builtin_specs() -> list[ModelSpec]:
    """The models Kinema knows how to pull and run.

    Revisions are left unpinned here (there is no network to look commit hashes up with when the catalogue
    is written); ``kinema pull`` records the commit it actually fetched in ``models.lock.json`` and loading
    uses exactly that commit.
    """
    wan21_t2v = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    wan22_ti2v = "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
    # Wan 2.2 A14B makes 480p and 720p; 720p is the default, OpenAI's sizes map onto it.
    a14b_sizes = {**_sizes((1280, 720)), "832x480": (832, 480), "480x832": (480, 832)}
    return [
        ModelSpec(
            name="wan2.1-t2v-1.3b",
            family="wan",
            description="Wan 2.1 text-to-video, 1.3B parameters, 480p at 16 fps; fits a 12 GB GPU.",
            tasks={
                "t2v": ComponentSource("WanPipeline", repo_id=wan21_t2v),
                # Video-to-video runs the text-to-video weights from a partially noised source clip.
                "v2v": ComponentSource("WanVideoToVideoPipeline", repo_id=wan21_t2v),
                "vace": ComponentSource("WanVACEPipeline", repo_id="Wan-AI/Wan2.1-VACE-1.3B-diffusers"),
            },
            fps=16,
            sizes=_sizes((832, 480)),
            default_size="832x480",
            seconds=_seconds(16, (4, 5)),
            default_seconds="5",
            default_steps=50,  # the reference sample_steps for text-to-video
            default_guidance=5.0,
            default_negative_prompt=WAN_NEGATIVE_PROMPT,
            flow_shift=_shift_480p((832, 480)),
            # 1.42B transformer (2.8 GB) + UMT5-XXL encoder 5.7B (11.4 GB) in bf16 + VAE 127M in fp32 (0.5 GB).
            weights_gb=14.7,
            largest_component_gb=11.4,
            # No step-distilled LoRA exists for the 1.3B (lightx2v ships them for the 14B models only).
        ),
        ModelSpec(
            name="wan2.1-i2v-14b-480p",
            family="wan",
            description="Wan 2.1 image-to-video, 14B parameters, 480p at 16 fps; animates a first frame.",
            tasks={"i2v": ComponentSource("WanImageToVideoPipeline", repo_id="Wan-AI/Wan2.1-I2V-14B-480P-Diffusers")},
            fps=16,
            sizes=_sizes((832, 480)),
            default_size="832x480",
            seconds=_seconds(16, (4, 5)),
            default_seconds="5",
            default_steps=40,  # the reference sample_steps for image-to-video
            default_guidance=5.0,
            default_negative_prompt=WAN_NEGATIVE_PROMPT,
            flow_shift=_shift_480p((832, 480)),
            # 16.4B transformer with its image cross-attention (32.8 GB) + UMT5-XXL (11.4 GB) in bf16, CLIP
            # ViT-H image encoder 632M (2.5 GB) and VAE (0.5 GB) in fp32.
            weights_gb=47.2,
            largest_component_gb=32.8,
            turbo=TurboSpec(
                lora=ComponentSource(
                    "lora",
                    repo_id="lightx2v/Wan2.1-Distill-Loras",
                    weight_name="wan2.1_i2v_lora_rank64_lightx2v_4step.safetensors",
                ),
            ),
        ),
        ModelSpec(
            name="wan2.2-ti2v-5b",
            family="wan",
            description=(
                "Wan 2.2 text/image-to-video, 5B parameters, 704p at 24 fps, with a 16x-compressing VAE; "
                "one set of weights for both tasks."
            ),
            # The repo's model_index sets expand_timesteps=True (per-token timesteps that keep the first
            # frame clean for image-to-video) and ships no CLIP image encoder: the image goes in through
            # the VAE. Its VAE downsamples 16x and the transformer patches 2x, so sizes are multiples of 32.
            tasks={
                "t2v": ComponentSource("WanPipeline", repo_id=wan22_ti2v),
                "i2v": ComponentSource("WanImageToVideoPipeline", repo_id=wan22_ti2v),
            },
            fps=24,
            sizes=_sizes((1280, 704)),
            default_size="1280x704",
            seconds=_seconds(24, (4, 5)),
            default_seconds="5",
            default_steps=50,
            default_guidance=5.0,
            default_negative_prompt=WAN_NEGATIVE_PROMPT,
            # The reference sample_shift of TI2V-5B (720p class) is 5.0 at both orientations.
            flow_shift={"1280x704": 5.0, "704x1280": 5.0},
            # 5.0B transformer (10.0 GB) + UMT5-XXL (11.4 GB) in bf16, Wan 2.2 VAE 705M in fp32 (2.8 GB).
            weights_gb=24.2,
            largest_component_gb=11.4,
        ),
        # Wan 2.2 A14B: two 14B experts, one for the high-noise steps and one for the low-noise steps, switched
        # at the checkpoint's boundary_ratio (0.875 T2V, 0.9 I2V; model_index.json). Reference settings from
        # Wan-AI/Wan2.2 wan/configs/wan_{t2v,i2v}_A14B.py: 40 steps, one sample_shift for every size (12.0 T2V,
        # 5.0 I2V), boundary 0.875 / 0.900, sample_guide_scale (low noise, high noise) = (3.0, 4.0) T2V and
        # (3.5, 3.5) I2V, i.e. guidance_scale 4.0 and guidance_scale_2 3.0 for T2V in diffusers' terms (checked
        # against those config files).
        # Memory: each expert is 14.3B parameters, 28.6 GB in bf16 (~57 GB of expert weights on disk), + UMT5-XXL
        # (11.4 GB) in bf16 + the Wan 2.1 VAE (0.5 GB) in fp32; the I2V pipeline has no CLIP image encoder.
        # weights_gb counts both experts resident (offload "none"); with offload "model" only the running
        # component is on the GPU, so the peak for weights is one expert (largest_component_gb), and the two
        # experts are swapped over PCIe once per run at the boundary.
        # Turbo: lightx2v's step-distilled LoRAs for A14B (Wan2.2-Lightning, Apache-2.0) come as one LoRA per
        # expert, high_noise_model for ``transformer`` and low_noise_model for ``transformer_2``, 4 steps without
        # CFG. The I2V pair is pinned to a commit seen serving those paths; the T2V V1.1 pair is locked at pull.
        ModelSpec(
            name="wan2.2-t2v-a14b",
            family="wan",
            description=(
                "Wan 2.2 text-to-video, two 14B experts (high-noise and low-noise), 720p or 480p at 16 fps; "
                "69 GB of weights, one 28.6 GB expert at a time on the GPU with model offload."
            ),
            tasks={"t2v": ComponentSource("WanPipeline", repo_id="Wan-AI/Wan2.2-T2V-A14B-Diffusers")},
            fps=16,
            sizes=a14b_sizes,
            default_size="1280x720",
            seconds=_seconds(16, (4, 5)),
            default_seconds="5",
            default_steps=40,
            default_guidance=4.0,
            default_guidance_2=3.0,
            default_negative_prompt=WAN_NEGATIVE_PROMPT,
            flow_shift={size: 12.0 for size in ("1280x720", "720x1280", "832x480", "480x832")},
            weights_gb=69.1,
            largest_component_gb=28.6,
            turbo=TurboSpec(
                lora=ComponentSource(
                    "lora",
                    repo_id=WAN22_LIGHTNING,
                    weight_name="Wan2.2-T2V-A14B-4steps-lora-rank64-Seko-V1.1/high_noise_model.safetensors",
                ),
                lora_2=ComponentSource(
                    "lora",
                    repo_id=WAN22_LIGHTNING,
                    weight_name="Wan2.2-T2V-A14B-4steps-lora-rank64-Seko-V1.1/low_noise_model.safetensors",
                ),
            ),
        ),
        ModelSpec(
            name="wan2.2-i2v-a14b",
            family="wan",
            description=(
                "Wan 2.2 image-to-video, two 14B experts (high-noise and low-noise), 720p or 480p at 16 fps; "
                "69 GB of weights, one 28.6 GB expert at a time on the GPU with model offload."
            ),
            tasks={"i2v": ComponentSource("WanImageToVideoPipeline", repo_id="Wan-AI/Wan2.2-I2V-A14B-Diffusers")},
            fps=16,
            sizes=a14b_sizes,
            default_size="1280x720",
            seconds=_seconds(16, (4, 5)),
            default_seconds="5",
            default_steps=40,
            default_guidance=3.5,
            default_guidance_2=3.5,
            default_negative_prompt=WAN_NEGATIVE_PROMPT,
            flow_shift={size: 5.0 for size in ("1280x720", "720x1280", "832x480", "480x832")},
            weights_gb=69.1,
            largest_component_gb=28.6,
            turbo=TurboSpec(
                lora=ComponentSource(
                    "lora",
                    repo_id=WAN22_LIGHTNING,
                    revision=WAN22_LIGHTNING_I2V_REVISION,
                    weight_name="Wan2.2-I2V-A14B-4steps-lora-rank64-Seko-V1/high_noise_model.safetensors",
                ),
                lora_2=ComponentSource(
                    "lora",
                    repo_id=WAN22_LIGHTNING,
                    revision=WAN22_LIGHTNING_I2V_REVISION,
                    weight_name="Wan2.2-I2V-A14B-4steps-lora-rank64-Seko-V1/low_noise_model.safetensors",
                ),
            ),
        ),
        ModelSpec(
            name="hunyuanvideo-1.5-t2v-480p",
            family="hunyuanvideo15",
            description=(
                "HunyuanVideo 1.5 text-to-video, 8.3B parameters, 480p at 24 fps; renders quoted text as glyphs. "
                "Tencent Hunyuan Community License (not for the EU, UK or South Korea)."
            ),
            tasks={
                "t2v": ComponentSource(
                    "HunyuanVideo15Pipeline", repo_id="hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_t2v"
                )
            },
            fps=24,
            sizes=_sizes((848, 480)),
            default_size="848x480",
            seconds=_seconds(24, (4, 5)),
            default_seconds="5",
            # Tencent's 480p text-to-video settings (PIPELINE_CONFIGS in HunyuanVideo-1.5's code): guidance 6.0,
            # flow shift 5.0; 50 steps is its default sampling.
            default_steps=50,
            default_guidance=6.0,
            flow_shift={"848x480": 5.0, "480x848": 5.0},
            # Estimated from parameter counts, not measured: 8.3B transformer (16.6 GB) and the Qwen2.5-VL-7B
            # text model 7.1B (14.1 GB) in bf16, ByT5 glyph encoder (0.4 GB), VAE in fp32 (~5 GB).
            weights_gb=36.1,
            largest_component_gb=16.6,
        ),
        ModelSpec(
            name="hunyuanvideo-1.5-i2v-480p",
            family="hunyuanvideo15",
            description=(
                "HunyuanVideo 1.5 image-to-video, 8.3B parameters, 480p at 24 fps; animates a first frame. "
                "Tencent Hunyuan Community License (not for the EU, UK or South Korea)."
            ),
            tasks={
                "i2v": ComponentSource(
                    "HunyuanVideo15ImageToVideoPipeline",
                    repo_id="hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_i2v",
                )
            },
            fps=24,
            # The pipeline picks its size from the image's aspect ratio: these are the buckets it picks at 480p
            # (target size 640) for 16:9 and 9:16 images, so a request is made at the size it asked for.
            sizes={
                "848x480": (848, 480),
                "480x832": (480, 832),
                **{s: (848, 480) for s in OPENAI_LANDSCAPE_SIZES},
                **{s: (480, 832) for s in OPENAI_PORTRAIT_SIZES},
            },
            default_size="848x480",
            seconds=_seconds(24, (4, 5)),
            default_seconds="5",
            default_steps=50,
            default_guidance=6.0,  # Tencent's 480p image-to-video settings: guidance 6.0, flow shift 5.0
            flow_shift={"848x480": 5.0, "480x832": 5.0},
            # As the text-to-video entry, plus the SigLIP image encoder (~0.4B) in fp32 (1.7 GB); estimated.
            weights_gb=37.8,
            largest_component_gb=16.6,
        ),
        ModelSpec(
            name=TINY_WAN,
            family="wan",
            description=(
                "Miniature Wan with random weights, built locally in seconds; runs every task's real code "
                "path but makes no meaningful video. For tests and development."
            ),
            tasks={
                "t2v": ComponentSource("WanPipeline", subdir=f"{TINY_WAN}/t2v"),
                "i2v": ComponentSource("WanImageToVideoPipeline", subdir=f"{TINY_WAN}/i2v"),
                "v2v": ComponentSource("WanVideoToVideoPipeline", subdir=f"{TINY_WAN}/t2v"),
                "vace": ComponentSource("WanVACEPipeline", subdir=f"{TINY_WAN}/vace"),
            },
            fps=8,
            # 256x160 is the default, and OpenAI's sizes map onto it, because it is the smallest size whose
            # frames carry a watermark that is found, also after a re-encode (96x64 frames are too small
            # for the 128-px tile: docs/provenance.md#limits). 96x64 stays as the fast size for tests.
            sizes={**_sizes((256, 160)), "96x64": (96, 64), "64x96": (64, 96)},
            default_size="256x160",
            seconds=_seconds(8, (1, 2, 4, 8, 12)),
            default_seconds="2",
            default_steps=4,
            default_guidance=5.0,
            miniature=True,
            default_negative_prompt=WAN_NEGATIVE_PROMPT,
            # The small sizes play 480p (3.0, the checkpoint's own) and the default one 720p (5.0), so tests see
            # the shift change with the size as it does on the real models.
            flow_shift={"96x64": 3.0, "64x96": 3.0, "256x160": 5.0, "160x256": 5.0},
            turbo=TurboSpec(
                lora=ComponentSource("lora", subdir=f"{TINY_WAN}/turbo", weight_name=TINY_TURBO_LORA), steps=2
            ),
        ),
    ]


def tiny_a14b_spec() -> ModelSpec:
    """The ``tiny-wan-a14b`` miniature: Wan 2.2 A14B's shape (two experts and a boundary) with random weights.

    Not in the served catalogue (tests build a registry with it); built offline by
    :func:`kinema.engine.tiny.build_tiny_a14b`.
    """
    return ModelSpec(
        name=TINY_WAN_A14B,
        family="wan",
        description=(
            "Miniature Wan 2.2 A14B with random weights (two tiny experts and the reference boundaries), built "
            "locally; makes no meaningful video. For tests."
        ),
        tasks={
            "t2v": ComponentSource("WanPipeline", subdir=f"{TINY_WAN_A14B}/t2v"),
            "i2v": ComponentSource("WanImageToVideoPipeline", subdir=f"{TINY_WAN_A14B}/i2v"),
        },
        fps=8,
        sizes={"96x64": (96, 64), "64x96": (64, 96)},
        default_size="96x64",
        seconds=_seconds(8, (1, 2)),
        default_seconds="1",
        default_steps=4,
        default_guidance=4.0,
        default_guidance_2=3.0,
        miniature=True,
        default_negative_prompt=WAN_NEGATIVE_PROMPT,
        # One random LoRA per expert, standing in for Wan2.2-Lightning's high- and low-noise pair.
        turbo=TurboSpec(
            lora=ComponentSource("lora", subdir=f"{TINY_WAN_A14B}/turbo", weight_name=TINY_A14B_TURBO_LORAS[0]),
            lora_2=ComponentSource("lora", subdir=f"{TINY_WAN_A14B}/turbo", weight_name=TINY_A14B_TURBO_LORAS[1]),
            steps=2,
        ),
    )


def builtin_registry(default: str = BUILTIN_DEFAULT) -> ModelRegistry:
    """A registry of :func:`builtin_specs` with the OpenAI-style aliases ("sora-2", "sora-2-pro")."""
    return ModelRegistry(builtin_specs(), aliases=BUILTIN_ALIASES, default=default)
