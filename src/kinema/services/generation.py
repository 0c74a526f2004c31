"""Runs one claimed job: inputs -> model -> frames -> MP4, thumbnail, spritesheet -> fenced completion.

At-least-once execution with exactly-once effects: each attempt writes under
``videos/<id>/<lease token>/``; only the attempt whose token is still current can complete the row,
and it then removes any other attempt's leftovers. An attempt that lost its lease removes its own.

A job runs in two parts (:meth:`GenerationRunner.start`): the model's, then the last steps (encode, previews,
sign, upload, complete), which a worker with ``overlap`` runs on its finisher thread while it denoises the next
job. Both parts run under the same lease, kept alive until the second returns, so the fencing above is unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np
import torch
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from kinema.blobs import BlobStore, BlobStoreUnavailable
from kinema.db.models import VideoRow
from kinema.engine.base import CancelFn, Cancelled, GenerationRequest, ModelNotAvailable, ProgressFn
from kinema.engine.frames import fit_image
from kinema.engine.registry import ModelRegistry, UnknownModel
from kinema.engine.runtime import Engine
from kinema.media.device import add_label_tensor
from kinema.media.encode import encode_mp4
from kinema.media.label import add_label
from kinema.media.previews import make_spritesheet, make_thumbnail
from kinema.media.video_decode import stream_mp4
from kinema.provenance.wm_torch import embed_tensor
from kinema.queue.store import JobQueue, Outputs
from kinema.queue.worker import JobContext
from kinema.services.characters import MENTION, LikenessRevoked, LikenessUse
from kinema.services.jobparams import JobParams
from kinema.services.pause import PauseService
from kinema.services.provenance import Marks, ProvenanceService
from kinema.services.purge import output_prefix

log = logging.getLogger(__name__)

MODEL_SHARE = 90
"""Percent of progress given to denoising; encoding and upload take the rest."""


_T = TypeVar("_T")


@runtime_checkable
class _DeviceOutput(Protocol):
    """A backend that can leave its frames on its device (:meth:`kinema.engine.wan.WanBackend.generate_on_device`)."""

    def generate_on_device(
        self, request: GenerationRequest, progress: ProgressFn, should_cancel: CancelFn
    ) -> torch.Tensor: ...


@dataclass(frozen=True)
class _Produced:
    """A job's frames between the model and its last steps."""

    prefix: np.ndarray | None  # an extension's source frames, neither labelled nor marked yet
    frames: np.ndarray  # the model's frames (without the one an extension shares with its prefix)
    marked: bool  # ``frames`` already labelled and watermarked (on the device)
    marks: Marks
    seconds: tuple[float, float]  # inputs+load, model


@dataclass(frozen=True)
class _Inputs:
    request: GenerationRequest
    prefix_frames: np.ndarray | None  # frames an extension continues from


class GenerationRunner:
    """Executes claimed jobs with the engine, the media encoders and the blob store."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        queue: JobQueue,
        blobs: BlobStore,
        registry: ModelRegistry,
        engine: Engine,
        provenance: ProvenanceService,
        *,
        visible_label: str | None = None,
        pause: PauseService | None = None,
        characters: LikenessUse | None = None,
        device_media: bool | None = None,
    ) -> None:
        """``device_media``: label and watermark a backend's frames on its device (True), on the CPU (False), or
        on the device when it is an accelerator (None, the default)."""
        self._device_media = device_media
        self._pause = pause
        self._characters = characters
        self._sessions = sessions
        self._queue = queue
        self._blobs = blobs
        self._registry = registry
        self._engine = engine
        self._provenance = provenance
        self._label = visible_label

    def run(self, ctx: JobContext) -> None:
        """Run the job held by ``ctx.lease`` to completion or a recorded failure."""
        finish = self.start(ctx)
        if finish is not None:
            finish()

    def start(self, ctx: JobContext) -> Callable[[], None] | None:
        """Run the job up to its frames (inputs, model, and on an accelerator the label and watermark), and return
        the rest (encoding, previews, signing, upload, completion) to be called once, maybe on another thread
        while this one starts the next job; None when the job is already settled (failed, cancelled, deleted).

        The caller keeps the lease alive until the returned step has returned. Either part records its own
        failure on the job (exactly as :meth:`run` does), so an error in one job's last steps fails that job only.
        """
        lease = ctx.lease
        with self._sessions() as s:
            row = s.scalar(select(VideoRow).where(VideoRow.id == lease.video_id))
        if row is None:
            return None  # deleted between claim and start
        produced = self._settled(row, ctx, lambda: self._produce(row, ctx))
        if produced is None:
            return None
        return functools.partial(self._settled, row, ctx, functools.partial(self._finish, row, ctx, produced))

    def _settled(self, row: VideoRow, ctx: JobContext, step: Callable[[], _T]) -> _T | None:
        """``step()``, or None once its error is recorded as the job's failure (fenced by the lease)."""
        lease = ctx.lease
        try:
            return step()
        except LikenessRevoked as exc:
            self._queue.fail(lease, "likeness_not_permitted", exc.message)
        except Cancelled:
            if row.characters and self._characters is not None and not self._characters.job_permitted(row):
                self._queue.fail(lease, "likeness_not_permitted", "A likeness in this video may no longer be used.")
            else:
                self._queue.fail(lease, "cancelled", "The video was cancelled.")
        except ModelNotAvailable as exc:
            self._queue.fail(lease, "model_not_available", str(exc))
        except UnknownModel as exc:
            self._queue.fail(lease, "model_not_found", str(exc))
        except BlobStoreUnavailable as exc:
            log.warning("video %s failed: %s", row.id, exc)  # the store's details stay in the log
            self._queue.fail(
                lease,
                "storage_unavailable",
                "The storage service was unavailable, so the video could not be read or saved. Please try again.",
            )
        except Exception as exc:
            log.exception("video %s failed", row.id)
            self._queue.fail(lease, "generation_failed", f"Generation failed: {type(exc).__name__}: {exc}")
        return None

    def _produce(self, row: VideoRow, ctx: JobContext) -> _Produced:
        """The model's part of a job: its frames, labelled and watermarked already when they came off an
        accelerator (only ``uint8`` frames cross to the CPU)."""
        t0 = time.perf_counter()
        if row.characters and self._characters is not None:
            self._characters.check_job(row)  # a revocation since enqueue stops the job here
        spec = self._registry.resolve(row.model)
        inputs = self._inputs(row)
        marks = self._provenance.marks(row.id)
        # Pinned while in use, so another worker thread's load cannot evict it mid-job.
        with self._engine.use(spec, inputs.request.task) as backend:
            if ctx.should_stop():
                raise Cancelled()
            t1 = time.perf_counter()
            log.debug("video %s: denoising", row.id)
            progress: ProgressFn = lambda done, total: ctx.progress(MODEL_SHARE * done // max(total, 1))  # noqa: E731
            should_cancel: CancelFn = lambda: self._between_steps(row, ctx)  # noqa: E731
            marked = False
            if isinstance(backend, _DeviceOutput):
                tensor = backend.generate_on_device(inputs.request, progress, should_cancel)
                if inputs.prefix_frames is not None:
                    tensor = tensor[1:]  # the new segment starts on the source's last frame: keep that frame once
                if self._device_media if self._device_media is not None else tensor.device.type != "cpu":
                    frames = self._mark_tensor(tensor, marks)
                    marked = True
                else:
                    frames = tensor.cpu().numpy()
            else:
                frames = backend.generate(inputs.request, progress, should_cancel).frames
                if inputs.prefix_frames is not None:
                    frames = frames[1:]
        return _Produced(inputs.prefix_frames, frames, marked, marks, (t1 - t0, time.perf_counter() - t1))

    def _mark_tensor(self, frames: torch.Tensor, marks: Marks) -> np.ndarray:
        """Label and watermark frames where they are (as :meth:`_mark` would on the CPU), then bring them over."""
        if self._label:
            frames = add_label_tensor(frames, self._label)
        return embed_tensor(frames, self._provenance.payload(marks)).cpu().numpy()

    def _mark(self, frames: np.ndarray, marks: Marks) -> np.ndarray:
        """The visible label (if configured), then the invisible watermark over everything, label included."""
        if self._label:
            frames = add_label(frames, self._label)
        return self._provenance.watermark(frames, marks)

    def _finish(self, row: VideoRow, ctx: JobContext, produced: _Produced) -> None:
        """Encode, preview, sign and publish a job's frames; may run on a finisher thread (see :meth:`start`)."""
        t2 = time.perf_counter()
        log.debug("video %s: finishing", row.id)
        marks = produced.marks
        if produced.marked:
            head = produced.prefix
            frames = produced.frames if head is None else np.concatenate([self._mark(head, marks), produced.frames])
        else:
            frames = produced.frames
            if produced.prefix is not None:
                frames = np.concatenate([produced.prefix, frames], axis=0)
            frames = self._mark(frames, marks)
        created = time.time()
        sign = functools.partial(self._provenance.sign, model=row.model, marks=marks, created_at=created)
        mp4 = sign(encode_mp4(frames, row.fps), "video/mp4")
        thumbnail = sign(make_thumbnail(frames), "image/webp")
        spritesheet = sign(make_spritesheet(frames), "image/jpeg")
        ctx.progress(95)
        if ctx.should_stop():
            raise Cancelled()
        t3 = time.perf_counter()
        self._publish(row, ctx, marks, mp4, thumbnail, spritesheet)
        log.info(
            "video %s: inputs+load %.3fs, model %.3fs, media %.3fs, publish %.3fs",
            row.id,
            *produced.seconds,
            t3 - t2,
            time.perf_counter() - t3,
        )
        log.debug("video %s: finished", row.id)

    def _between_steps(self, row: VideoRow, ctx: JobContext) -> bool:
        """Called after every denoising step: wait here while a pause holds running jobs (the lease
        heartbeat goes on), then say whether to stop (cancelled, deleted or lease lost)."""
        if self._pause is not None:
            self._pause.wait_while_held(row.cohort, ctx.should_stop)
        return ctx.should_stop()

    def _publish(
        self, row: VideoRow, ctx: JobContext, marks: Marks, mp4: bytes, thumbnail: bytes, spritesheet: bytes
    ) -> None:
        lease = ctx.lease
        prefix = f"{output_prefix(row.id)}/{lease.token}"
        outputs = Outputs(
            f"{prefix}/video.mp4",
            f"{prefix}/thumbnail.webp",
            f"{prefix}/spritesheet.jpg",
            provenance_ref=marks.job_ref,
            watermark_tag=marks.watermark_tag,
        )
        try:
            self._blobs.put(outputs.video_key, mp4)
            self._blobs.put(outputs.thumbnail_key, thumbnail)
            self._blobs.put(outputs.spritesheet_key, spritesheet)
        except BaseException:
            # No half-written attempt left behind; a store that is down keeps them (never referenced, they
            # go with the video), and the error that stopped the upload is the one reported.
            with contextlib.suppress(BlobStoreUnavailable):
                self._blobs.delete_prefix(prefix)
            raise
        if self._queue.complete(lease, outputs):
            for key in self._blobs.list_prefix(output_prefix(row.id)):
                if not key.startswith(prefix + "/"):
                    self._blobs.delete_prefix(key.rsplit("/", 1)[0])
        else:
            # Our lease was lost (reclaimed, cancelled or deleted): this attempt leaves nothing behind.
            self._blobs.delete_prefix(prefix)
            if self._queue.should_stop(lease):
                self._queue.fail(lease, "cancelled", "The video was cancelled.")

    def _inputs(self, row: VideoRow) -> _Inputs:
        p = JobParams.from_json(row.params)
        image: Image.Image | None = None
        video: list[Image.Image] | None = None
        prefix_frames: np.ndarray | None = None
        size = (row.width, row.height)
        if row.input_image_key:
            image = fit_image(Image.open(io.BytesIO(self._input(row, row.input_image_key))).convert("RGB"), *size)
        elif row.characters and row.task == "i2v" and not row.input_video_key and self._characters is not None:
            # The likeness's reference crop, decrypted in this worker's memory only, is the first frame.
            image = fit_image(self._characters.reference_image(row.characters[0]), *size)
        references = self._references(row) if row.task == "vace" else []
        if row.input_video_key:
            # Decoded one frame at a time; only the frames the job uses are kept, at the job's size.
            source = self._input(row, row.input_video_key)
            if p.stitch:  # an extension, or a remix of one: the whole clip at row.fps is the prefix
                prefix = _pick_frames(source, row.fps, size, None)
                prefix_frames = np.stack([np.asarray(f) for f in prefix])
                image = prefix[-1]
            else:
                video = _pick_frames(source, row.fps, size, row.num_frames)
        request = GenerationRequest(
            task=row.task,  # type: ignore[arg-type]
            prompt=MENTION.sub("the person", row.prompt),
            width=row.width,
            height=row.height,
            num_frames=row.num_frames,
            fps=row.fps,
            num_inference_steps=p.num_inference_steps,
            guidance_scale=p.guidance_scale,
            seed=p.seed,
            negative_prompt=p.negative_prompt,
            image=image,
            video=video,
            strength=p.edit_strength,
            reference_images=references,
            speed=p.speed,
        )
        return _Inputs(request, prefix_frames)

    def _references(self, row: VideoRow) -> list[Image.Image]:
        """A vace job's reference images: every likeness's reference crop, in the order the request named
        them, decrypted in this worker's memory only (the pipeline letterboxes each onto the canvas)."""
        if not row.characters:
            return []
        if self._characters is None:
            raise LikenessRevoked("This video features likenesses, and this worker has no access to them.")
        return [self._characters.reference_image(cid) for cid in row.characters]

    def _input(self, row: VideoRow, key: str) -> bytes:
        """An input blob; one sealed under likeness keys is opened here, in this worker's memory only."""
        data = self._blobs.get(key)
        if row.inputs_sealed_by:
            if self._characters is None:
                raise LikenessRevoked("This video's inputs are sealed under likeness keys this worker cannot use.")
            data = self._characters.open_input(list(row.inputs_sealed_by), key, data)
        return data


def _pick_frames(mp4: bytes, fps: int, size: tuple[int, int], count: int | None) -> list[Image.Image]:
    """Frames taken at ``fps`` from our own ``mp4`` (at its rate ``src_fps``), each fitted to ``size``.

    Output frame ``i`` is source frame ``min(N - 1, round(i * src_fps / fps))`` of the ``N`` the file holds:
    ``count`` of them (the last frame repeating if the clip is short), or with ``None`` as many as the clip
    lasts at ``fps``, ``max(1, round(N / src_fps * fps))`` (an extension's prefix). The file is decoded one
    frame at a time and only the picked frames are kept, fitted, so memory follows what the job uses, not the
    source's length or size. A source frame picked more than once is fitted once.
    """
    picked: list[Image.Image] = []
    last: np.ndarray | None = None
    total = 0
    with stream_mp4(mp4) as clip:
        src_fps = clip.fps
        for index, frame in enumerate(clip.frames):
            total = index + 1
            last = frame
            fitted: Image.Image | None = None
            while (count is None or len(picked) < count) and round(len(picked) * src_fps / fps) <= index:
                if fitted is None:
                    fitted = fit_image(Image.fromarray(frame), *size)
                picked.append(fitted)
            if count is not None and len(picked) >= count:
                break
    if last is None:
        raise ValueError("the source video has no frames")
    wanted = count if count is not None else max(1, round(total / src_fps * fps))
    del picked[wanted:]
    if len(picked) < wanted:  # source frames past the end: the last one repeats
        ends_on_last = picked and round((len(picked) - 1) * src_fps / fps) >= total - 1
        tail = picked[-1] if ends_on_last else fit_image(Image.fromarray(last), *size)
        picked += [tail] * (wanted - len(picked))
    return picked
