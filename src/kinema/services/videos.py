"""The video service: validate a request, snapshot its inputs, enqueue it; read, cancel and delete.

Every method takes the caller's owner id and only ever sees that owner's rows, so another owner's
video is indistinguishable from a missing one (404). A refused request writes nothing: inputs are
decoded and checked before any blob or row is written, and the row is inserted last.
"""

from __future__ import annotations

import builtins
import functools
import io
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Concatenate, Literal, ParamSpec, TypeVar

import numpy as np
from PIL import Image
from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session, sessionmaker

from kinema.audit.log import AuditLog
from kinema.blobs import BlobStore
from kinema.db.models import CharacterRow, VideoRow
from kinema.db.usage import refund_in
from kinema.engine.base import DEFAULT_STRENGTH, Speed, Task
from kinema.engine.registry import ModelRegistry, ModelSpec, UnknownModel, UnsupportedRequest
from kinema.services import planning
from kinema.services.auth import Principal
from kinema.services.characters import LikenessUse
from kinema.services.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
)
from kinema.services.jobparams import JobParams
from kinema.services.moderation import PromptGuard
from kinema.services.options import (
    LIKENESS_MODES,
    CreateVideo,
    EditVideo,
    ExtendVideo,
    GenerationOptions,
    VideoSource,
)
from kinema.services.pause import PauseService
from kinema.services.planning import Plan
from kinema.services.purge import input_prefix, purge_videos, scrub_deleted
from kinema.services.quotas import Admission
from kinema.services.uploads import (
    SourceClip,
    UploadLimits,
    decode_image_upload,
    reencode_video_upload,
    source_of_video,
)

Variant = Literal["video", "thumbnail", "spritesheet"]
MEDIA_TYPES: dict[str, str] = {"video": "video/mp4", "thumbnail": "image/webp", "spritesheet": "image/jpeg"}


@dataclass(frozen=True)
class Page:
    """One page of a list: rows plus whether more follow."""

    rows: list[VideoRow]
    has_more: bool


VIDEO_ID = re.compile(r"^video_[0-9a-f]{32}$")


_id_lock = threading.Lock()
_last_id = 0


def new_video_id() -> str:
    """``video_`` + 32 hex digits: 48 bits of milliseconds since the epoch, then 80 random bits.

    UUIDv7's layout: ids sort by creation time, so a list page can continue after an id even when that
    video has since been deleted, and the id reveals nothing but when it was made. Within one process
    ids strictly increase, even inside one millisecond (the random part then counts up, as UUIDv7's
    monotonic option does); across processes, ids made in the same millisecond sort arbitrarily.
    """
    global _last_id
    candidate = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    with _id_lock:
        _last_id = max(candidate, _last_id + 1)
        value = _last_id
    return f"video_{value:032x}"


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _holding_an_upload_slot(
    param: str,
) -> Callable[[Callable[Concatenate[VideoService, _P], _R]], Callable[Concatenate[VideoService, _P], _R]]:
    """Run the method holding one of the upload gate's slots: it decodes a clip and looks for faces in it."""

    def wrap(method: Callable[Concatenate[VideoService, _P], _R]) -> Callable[Concatenate[VideoService, _P], _R]:
        @functools.wraps(method)
        def held(self: VideoService, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            with self._limits.gate.slot(param):
                return method(self, *args, **kwargs)

        return held

    return wrap


class VideoService:
    """Creates and manages video jobs for one owner at a time."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        registry: ModelRegistry,
        limits: UploadLimits,
        guard: PromptGuard,
        audit: AuditLog,
        clock: Callable[[], float] = time.time,
        on_enqueue: Callable[[], None] = lambda: None,
        admission: Admission | None = None,
        pause: PauseService | None = None,
        characters: LikenessUse | None = None,
        on_settled: Callable[[Session, Sequence[str], float], object] | None = None,
    ) -> None:
        self._on_settled = on_settled  # e.g. webhook events, written in the cancelling transaction
        self._characters = characters
        self._admission = admission or Admission()
        self._pause = pause
        self._on_enqueue = on_enqueue
        self._guard = guard
        self._audit = audit
        self._sessions = sessions
        self._blobs = blobs
        self._registry = registry
        self._limits = limits
        self._clock = clock

    # -- create ----------------------------------------------------------------------------------

    def create(self, principal: Principal, req: CreateVideo) -> VideoRow:
        """Validate and enqueue a text-to-video job; image-to-video with an uploaded first frame; with
        likenesses, reference-to-video (vace) where the model has it, else image-to-video (see _likeness_task)."""
        self._check_prompt(principal, "create", req.prompt)
        likenesses = self._likenesses(principal, req.characters, req.prompt)
        if likenesses and req.image is not None:
            raise InvalidRequest(
                "Give either input_reference or likenesses, not both: a likeness is put into the video from its "
                "own reference crop.",
                param="characters",
                code="unsupported_value",
            )
        spec = self._model(req.model)
        task = self._create_task(spec, req, likenesses)
        self._require_task(spec, task, _task_param(req, likenesses))
        plan = self._plan(spec, req.size, req.seconds, req.options)
        params = self._params(spec, req.options)
        image_png = None
        if req.image is not None:
            with self._limits.gate.slot("input_reference"):  # decoding and face analysis, a few at a time
                image = decode_image_upload(req.image, self._limits, "input_reference")
                likenesses = self._face_guard(principal, [np.asarray(image)], "input_reference", req.prompt)
                image_png = _png(image)
        video_id = new_video_id()
        inputs = {"input_image.png": image_png} if image_png else {}
        row = self._row(video_id, principal, "create", task, spec, req.prompt, plan, params)
        row.characters = [c.id for c in likenesses]
        if image_png:
            row.input_image_key = f"{input_prefix(video_id)}/input_image.png"
        return self._enqueue(principal, row, inputs, likenesses)

    def remix(self, principal: Principal, source_id: str, prompt: str, options: GenerationOptions) -> VideoRow:
        """Enqueue the source video's job again with a new prompt (and any given options)."""
        self._check_prompt(principal, "remix", prompt)
        src = self._completed(principal.id, source_id, "remix")
        # The source's likenesses come along, each checked again (a permission may have changed since).
        likenesses = self._likenesses(principal, list(src.characters or []), prompt)
        spec = self._model(src.model)
        video_id = new_video_id()
        source = JobParams.from_json(src.params)
        plan = Plan(src.width, src.height, src.num_frames, src.fps, src.seconds)
        if options.fps is not None and options.fps != src.fps:
            if source.stitch:
                raise InvalidRequest(
                    "fps cannot be changed when remixing an extension: its length includes the source clip.",
                    param="fps",
                    code="unsupported_value",
                )
            plan = self._plan(spec, src.size, source.requested_seconds or src.seconds, options)
        params = self._params(spec, options, source)
        row = self._row(
            video_id, principal, "remix", self._remix_task(spec, src, likenesses), spec, prompt, plan, params
        )
        row.remixed_from_video_id = src.id
        row.source_video_id = src.source_video_id
        row.characters = [c.id for c in likenesses]
        inputs: dict[str, bytes] = {}
        for attr, name in (("input_image_key", "input_image.png"), ("input_video_key", "source.mp4")):
            key = getattr(src, attr)
            if key:
                # A sealed input is opened in memory only to be sealed again, under this video's own blob key.
                inputs[name] = self._open_input(src, key)
                setattr(row, attr, f"{input_prefix(video_id)}/{name}")
        return self._enqueue(principal, row, inputs, likenesses, also_seal_with=list(src.inputs_sealed_by or []))

    @_holding_an_upload_slot("video")
    def edit(self, principal: Principal, req: EditVideo) -> VideoRow:
        """Enqueue a video-to-video job over a completed video or an uploaded clip."""
        self._check_prompt(principal, "edit", req.prompt)
        src_row, clip, spec, (width, height) = self._with_source(principal.id, req.source, req.model, "edit", "v2v")
        seconds = _seconds_for(spec, clip.frame_count / clip.fps)
        num_frames = self._frames(spec, seconds, req.options)
        plan = Plan(width, height, num_frames, req.options.fps or spec.fps, seconds)
        params = replace(self._params(spec, req.options), strength=DEFAULT_STRENGTH)
        return self._enqueue_with_source(principal, "edit", "v2v", spec, req.prompt, plan, params, src_row, clip)

    @_holding_an_upload_slot("video")
    def extend(self, principal: Principal, req: ExtendVideo) -> VideoRow:
        """Enqueue an extension: continue a clip from its last frame; ``seconds`` is the new part."""
        self._check_prompt(principal, "extend", req.prompt)
        src_row, clip, spec, (width, height) = self._with_source(principal.id, req.source, req.model, "extend", "i2v")
        new_frames = self._frames(spec, req.seconds, req.options)
        source_seconds = float(src_row.seconds) if src_row else clip.frame_count / clip.fps
        total = _format_seconds(source_seconds + float(req.seconds))
        plan = Plan(width, height, new_frames, req.options.fps or spec.fps, total)
        params = replace(self._params(spec, req.options), stitch=True)
        return self._enqueue_with_source(principal, "extend", "i2v", spec, req.prompt, plan, params, src_row, clip)

    def _with_source(
        self, owner_id: str, source: VideoSource, model: str | None, action: str, task: Task
    ) -> tuple[VideoRow | None, SourceClip, ModelSpec, tuple[int, int]]:
        """The source clip, the model (the request's, else the source video's) and the output size."""
        src_row, clip = self._source(owner_id, source, action)
        spec = self._model(model or (src_row.model if src_row else None))
        self._require_task(spec, task, "model")
        return src_row, clip, spec, _closest_native(spec, clip.width, clip.height)

    # -- read / manage ---------------------------------------------------------------------------

    def get(self, owner_id: str, video_id: str) -> VideoRow:
        """The caller's video, or :class:`NotFound` (also for another owner's video, or a malformed id)."""
        if not VIDEO_ID.match(video_id):
            raise NotFound("video", video_id[:80].replace("\x00", ""))
        with self._sessions() as s:
            row = s.scalar(select(VideoRow).where(VideoRow.id == video_id, VideoRow.owner_id == owner_id))
        if row is None:
            raise NotFound("video", video_id)
        return row

    def list(self, owner_id: str, *, after: str | None, limit: int, order: str) -> Page:
        """The caller's videos by creation time (ids sort by it); ``after`` continues from a page's last id."""
        desc = order == "desc"
        stmt = select(VideoRow).where(VideoRow.owner_id == owner_id)
        if after:
            if not VIDEO_ID.match(after):
                raise InvalidRequest("'after' must be a video id (video_ + 32 hex digits).", param="after")
            stmt = stmt.where(VideoRow.id < after if desc else VideoRow.id > after)
        key = VideoRow.id.desc() if desc else VideoRow.id
        with self._sessions() as s:
            rows = list(s.scalars(stmt.order_by(key).limit(limit + 1)))
        return Page(rows[:limit], len(rows) > limit)

    def cancel(self, owner_id: str, video_id: str) -> VideoRow:
        """Cancel a queued job at once, or ask a running one to stop at its next step.

        A finished video cannot be cancelled (409). A cancelled job ends as ``failed`` with error
        code ``cancelled``, which SDK code that knows only the four statuses understands.
        """
        self.get(owner_id, video_id)
        now = self._clock()
        with self._sessions.begin() as s:
            mine = and_(VideoRow.id == video_id, VideoRow.owner_id == owner_id)
            cancelled = s.execute(
                update(VideoRow)
                .where(mine, VideoRow.status == "queued")
                .values(
                    status="failed",
                    cancel_requested=True,
                    error_code="cancelled",
                    error_message="The video was cancelled.",
                    completed_at=now,
                )
                .returning(VideoRow.id)
            ).all()
            refund_in(s, [r.id for r in cancelled], now)
            if cancelled and self._on_settled is not None:
                self._on_settled(s, [r.id for r in cancelled], now)
            s.execute(update(VideoRow).where(mine, VideoRow.status == "in_progress").values(cancel_requested=True))
        row = self.get(owner_id, video_id)
        if row.status in ("completed",) or (row.status == "failed" and row.error_code != "cancelled"):
            raise Conflict(
                f"Video '{video_id}' already {row.status}; there is nothing to cancel.",
                param="id",
                code="video_not_cancellable",
            )
        return row

    def delete(self, owner_id: str, video_id: str, *, actor: str | None = None, scrub: bool = True) -> None:
        """Delete the row, its inputs and every output; a running job is stopped by its lost lease.

        ``scrub``: checkpoint SQLite's WAL afterwards (a caller deleting many videos does it once at the end).
        """
        self.get(owner_id, video_id)
        purge_videos(self._sessions, self._blobs, self._audit, [video_id], actor=actor or owner_id, now=self._clock())
        if scrub:
            scrub_deleted(self._sessions)

    def content_key(self, owner_id: str, video_id: str, variant: Variant) -> str:
        """Blob key of a completed video's asset; 409 with the status while it is not ready."""
        row = self.get(owner_id, video_id)
        if row.status != "completed":
            detail = (
                f"{row.progress}% done"
                if row.status in ("queued", "in_progress")
                else (row.error_message or "it failed")
            )
            raise Conflict(
                f"Video '{video_id}' is {row.status} ({detail}); its content is available once it is completed.",
                param="id",
                code="video_not_ready",
            )
        key = {"video": row.video_key, "thumbnail": row.thumbnail_key, "spritesheet": row.spritesheet_key}[variant]
        if key is None or not self._blobs.exists(key):
            raise NotFound("content", video_id)
        return key

    # -- helpers ---------------------------------------------------------------------------------

    def _check_prompt(self, principal: Principal, action: str, prompt: str) -> None:
        """Paused -> 503; empty, too long, or refused by the moderation policy (recorded) -> 400."""
        if self._pause is not None:
            self._pause.check_generation(principal)
        if not prompt.strip():
            raise InvalidRequest("Invalid value for 'prompt': it is empty.", param="prompt", code="invalid_value")
        if len(prompt) > self._limits.max_prompt_chars:
            raise InvalidRequest(
                f"Invalid value for 'prompt': {len(prompt)} characters; at most {self._limits.max_prompt_chars}.",
                param="prompt",
                code="invalid_value",
            )
        self._guard.check(principal.id, action, prompt)

    def _model(self, name: str | None) -> ModelSpec:
        try:
            return self._registry.resolve(name)
        except UnknownModel as exc:
            raise InvalidRequest(str(exc), param="model", code="model_not_found") from None

    def _create_task(self, spec: ModelSpec, req: CreateVideo, likenesses: builtins.list[CharacterRow]) -> Task:
        """t2v; i2v for an uploaded first frame; with likenesses, vace (each one a reference image, in the
        scene) where the model has it, else i2v (the one likeness's reference crop is the first frame)."""
        mode = req.likeness_mode
        if mode is not None and mode not in LIKENESS_MODES:
            raise InvalidRequest(
                f"Invalid value for 'likeness_mode': {str(mode)[:40]!r}; use 'scene' or 'first_frame'.",
                param="likeness_mode",
                code="invalid_value",
            )
        if req.image is not None:
            return "i2v"
        if not likenesses:
            return "t2v"  # likeness_mode only says how likenesses enter a video; without any it changes nothing
        return self._likeness_task(spec, mode, likenesses)

    def _remix_task(self, spec: ModelSpec, src: VideoRow, likenesses: builtins.list[CharacterRow]) -> str:
        """The source's task, unless ``@mentions`` in the remix's prompt brought likenesses its task cannot
        show: a text-to-video source, or a first-frame source that now names several."""
        from_likeness = src.input_image_key is None and src.input_video_key is None
        if from_likeness and likenesses and (src.task == "t2v" or (src.task == "i2v" and len(likenesses) > 1)):
            task = self._likeness_task(spec, None, likenesses)
            self._require_task(spec, task, "prompt")
            return task
        return src.task

    def _likeness_task(self, spec: ModelSpec, mode: str | None, likenesses: builtins.list[CharacterRow]) -> Task:
        """vace (every likeness a reference image, in the scene) or i2v (the one likeness is the first frame)."""
        if mode is None:
            mode = "scene" if "vace" in spec.tasks else "first_frame"
        able = ", ".join(s.name for s in self._registry.specs() if "vace" in s.tasks) or "none in this catalogue"
        if mode == "scene":
            if "vace" not in spec.tasks:
                raise InvalidRequest(
                    f"Model '{spec.name}' cannot put a likeness into the scene: it has no reference-to-video "
                    f"(vace). Use a model that has it ({able}), or likeness_mode 'first_frame'.",
                    param="likeness_mode",
                    code="unsupported_value",
                )
            return "vace"  # resolve() already capped the count at MAX_LIKENESSES_PER_VIDEO
        if len(likenesses) > 1:
            why = (
                "likeness_mode 'first_frame' was asked for"
                if "vace" in spec.tasks
                else f"model '{spec.name}' has no reference-to-video (vace)"
            )
            raise InvalidRequest(
                f"{len(likenesses)} likenesses named, but {why}, so a likeness becomes the first frame of an "
                f"image-to-video clip and only one fits. Name one likeness, or use likeness_mode 'scene' on a "
                f"model with reference-to-video ({able}).",
                param="characters",
                code="unsupported_value",
            )
        return "i2v"

    def _require_task(self, spec: ModelSpec, task: Task, param: str) -> None:
        try:
            self._registry.source(spec, task)
        except UnsupportedRequest as exc:
            raise InvalidRequest(str(exc), param=param, code="unsupported_task") from None

    def _plan(self, spec: ModelSpec, size: str | None, seconds: str | None, options: GenerationOptions) -> Plan:
        return planning.plan(self._registry, spec, size, seconds, options)

    def _frames(self, spec: ModelSpec, seconds: str, options: GenerationOptions) -> int:
        return planning.frames_for(self._registry, spec, seconds, options)

    def _params(self, spec: ModelSpec, options: GenerationOptions, source: JobParams | None = None) -> JobParams:
        """The job's settings: the given options, else the remixed job's (``source``), else the model's defaults."""
        inherited_speed = source.speed if source is not None else spec.default_speed
        speed = self._speed(spec, options.speed if options.speed is not None else inherited_speed)
        steps, guidance = _steps_and_guidance(spec, options, speed, source)
        if steps > self._limits.max_inference_steps:
            raise InvalidRequest(
                f"num_inference_steps may be at most {self._limits.max_inference_steps}.",
                param="num_inference_steps",
                code="unsupported_value",
            )
        seed = options.seed
        if seed is None:
            seed = source.seed if source is not None and source.seed is not None else secrets.randbelow(2**32)
        negative_prompt = options.negative_prompt
        if negative_prompt is None and source is not None:
            negative_prompt = source.negative_prompt
        if source is None:
            return JobParams(
                num_inference_steps=steps,
                guidance_scale=guidance,
                seed=seed,
                negative_prompt=negative_prompt,
                speed=speed,
            )
        # A remix also keeps what its source job was: an edit's strength, an extension's stitch, the clip.
        return replace(
            source,
            num_inference_steps=steps,
            guidance_scale=guidance,
            seed=seed,
            negative_prompt=negative_prompt,
            speed=speed,
        )

    def _speed(self, spec: ModelSpec, speed: str) -> Speed:
        """``speed`` if the model offers that preset, else 400."""
        for offered in spec.speeds():
            if offered == speed:
                return offered
        raise InvalidRequest(
            f"Invalid value for 'speed': model '{spec.name}' offers {', '.join(spec.speeds())}, not {speed!r}.",
            param="speed",
            code="unsupported_value",
        )

    def _row(
        self,
        video_id: str,
        principal: Principal,
        kind: str,
        task: str,
        spec: ModelSpec,
        prompt: str,
        plan: Plan,
        params: JobParams,
    ) -> VideoRow:
        return VideoRow(
            id=video_id,
            owner_id=principal.id,
            key_id=principal.key_id,
            cohort=principal.cohort,
            kind=kind,
            task=task,
            model=spec.name,
            prompt=prompt,
            size=f"{plan.width}x{plan.height}",
            seconds=plan.seconds,
            width=plan.width,
            height=plan.height,
            num_frames=plan.num_frames,
            fps=plan.fps,
            params=replace(params, requested_seconds=plan.seconds).to_json(),
            status="queued",
            progress=0,
            cancel_requested=False,
            created_at=self._clock(),
            lease_token=0,
            attempts=0,
        )

    def _enqueue(
        self,
        principal: Principal,
        row: VideoRow,
        inputs: dict[str, bytes],
        likenesses: builtins.list[CharacterRow] | None = None,
        *,
        also_seal_with: builtins.list[str] | None = None,
    ) -> VideoRow:
        """Write inputs, then admit (quota) and insert the row in one transaction; if that fails,
        remove the inputs again, so a refused request leaves nothing behind.

        Inputs of a video that shows likenesses (named, or found by the face guard in an upload) are
        stored sealed under each of those likenesses' data keys, so deleting any of them shreds the inputs.
        """
        prefix = input_prefix(row.id)
        seal_with = sorted({c.id for c in likenesses or []} | set(also_seal_with or []))
        row.inputs_sealed_by = seal_with if inputs and self._characters is not None else []
        try:
            for name, data in inputs.items():
                key = f"{prefix}/{name}"
                if row.inputs_sealed_by:
                    assert self._characters is not None
                    data = self._characters.seal_input(row.inputs_sealed_by, key, data)
                self._blobs.put(key, data)
            with self._sessions.begin() as s:
                # The seconds this job generates (an extension's new part, not the stitched total).
                seconds = round(row.num_frames / row.fps, 3)
                self._admission.admit_in(s, principal, video_id=row.id, seconds=seconds, now=self._clock())
                s.add(row)
                if likenesses and self._characters is not None:
                    s.flush()
                    self._characters.record_use_in(s, likenesses, row, self._clock())
                # The job id and its settings, never the media; the prompt lives on the row itself.
                self._audit.append_in(
                    s,
                    f"video.{row.kind}",
                    actor=row.owner_id,
                    target=row.id,
                    details={
                        "model": row.model,
                        "task": row.task,
                        "source": row.source_video_id or row.remixed_from_video_id,
                    },
                )
        except BaseException:
            self._blobs.delete_prefix(prefix)
            raise
        self._on_enqueue()
        return row

    def _enqueue_with_source(
        self,
        principal: Principal,
        kind: str,
        task: Task,
        spec: ModelSpec,
        prompt: str,
        plan: Plan,
        params: JobParams,
        src_row: VideoRow | None,
        clip: SourceClip,
    ) -> VideoRow:
        if src_row is not None:  # a video of ours: its likenesses come along, each checked again
            likenesses = self._likenesses(principal, list(src_row.characters or []), prompt)
        else:  # an upload: the face guard looks at frames spread over the clip
            likenesses = self._face_guard(principal, clip.guard_frames, "video", prompt)
        video_id = new_video_id()
        params = replace(params, source_frames=clip.frame_count, source_fps=float(clip.fps))
        row = self._row(video_id, principal, kind, task, spec, prompt, plan, params)
        row.characters = [c.id for c in likenesses]
        row.source_video_id = src_row.id if src_row else None
        # Our own video as stored, or an upload re-encoded by us as it was decoded (reencode_video_upload): the
        # worker then reads a trusted file, and the uploader's container metadata (GPS, device, names) is not kept.
        row.input_video_key = f"{input_prefix(video_id)}/source.mp4"
        return self._enqueue(principal, row, {"source.mp4": clip.mp4}, likenesses)

    def _open_input(self, row: VideoRow, key: str) -> bytes:
        """A video's input blob, opened if it is sealed under likeness keys."""
        data = self._blobs.get(key)
        if row.inputs_sealed_by and self._characters is not None:
            data = self._characters.open_input(row.inputs_sealed_by, key, data)
        return data

    def _completed(self, owner_id: str, video_id: str, action: str) -> VideoRow:
        row = self.get(owner_id, video_id)
        if row.status != "completed":
            raise Conflict(
                f"Video '{video_id}' is {row.status}; only a completed video can be used to {action}.",
                param="video_id" if action == "remix" else "video",
                code="video_not_ready",
            )
        return row

    def _source(self, owner_id: str, source: VideoSource, action: str) -> tuple[VideoRow | None, SourceClip]:
        if source.video_id is not None:
            row = self._completed(owner_id, source.video_id, action)
            assert row.video_key is not None
            return row, source_of_video(self._blobs.get(row.video_key))
        assert source.upload is not None
        return None, reencode_video_upload(source.upload, self._limits, "video")

    def _likenesses(self, principal: Principal, ids: builtins.list[str], prompt: str) -> builtins.list[CharacterRow]:
        """The likenesses a request names, each one the caller may use (404/400/403 otherwise)."""
        if self._characters is None:
            if ids:
                raise InvalidRequest("This deployment has no likenesses.", param="characters")
            return []
        rows = self._characters.resolve(principal, ids, prompt)
        self._check_restrictions(principal, rows, prompt)
        return rows

    def _check_restrictions(self, principal: Principal, rows: builtins.list[CharacterRow], prompt: str) -> None:
        """The owners' free-text restrictions bind everyone else who uses their likeness."""
        for row in rows:
            if row.owner_id != principal.id and row.restrictions:
                self._guard.check_restrictions(principal.id, "likeness", prompt, row.restrictions)

    def _face_guard(
        self, principal: Principal, frames: builtins.list[np.ndarray], param: str, prompt: str
    ) -> builtins.list[CharacterRow]:
        """The face guard: refuse faces the caller may not use; return the likenesses the upload shows."""
        if self._characters is None:
            return []
        rows = self._characters.guard_upload(principal, frames, param)
        self._check_restrictions(principal, rows, prompt)
        return rows


def _task_param(req: CreateVideo, likenesses: list[CharacterRow]) -> str:
    """The request field a model's missing task is blamed on."""
    if req.image is not None:
        return "input_reference"
    if likenesses:
        return "likeness_mode" if req.likeness_mode is not None else "characters"
    return "model"


def _steps_and_guidance(
    spec: ModelSpec, options: GenerationOptions, speed: Speed, source: JobParams | None
) -> tuple[int, float]:
    """Each the given value, else the remixed job's, else the preset's (turbo), else the model's default.

    A remix that changes the preset takes the new preset's steps and guidance, not the source's.
    """
    kept = source if source is not None and source.speed == speed else None
    turbo = spec.turbo if speed == "turbo" else None
    steps = options.num_inference_steps
    if steps is None:
        steps = kept.num_inference_steps if kept else turbo.steps if turbo else spec.default_steps
    guidance = options.guidance_scale
    if guidance is None:
        guidance = kept.guidance_scale if kept else turbo.guidance if turbo else spec.default_guidance
    return steps, guidance


def _png(image: Image.Image) -> bytes:
    """Pixels only, re-encoded as PNG: the upload's EXIF (GPS, device) is not kept."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _closest_native(spec: ModelSpec, width: int, height: int) -> tuple[int, int]:
    """The model's native size whose aspect ratio is nearest the source's."""
    natives = sorted(set(spec.sizes.values()))
    aspect = width / height
    return min(natives, key=lambda wh: abs(np.log((wh[0] / wh[1]) / aspect)))


def _seconds_for(spec: ModelSpec, duration: float) -> str:
    """The longest allowed ``seconds`` value not above ``duration`` (else the shortest)."""
    options = sorted(spec.seconds, key=float)
    fitting = [s for s in options if float(s) <= duration + 1e-6]
    return fitting[-1] if fitting else options[0]


def _format_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
