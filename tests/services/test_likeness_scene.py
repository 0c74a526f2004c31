"""Likenesses in the scene: on a model with reference-to-video (tiny-wan's real WanVACEPipeline), every named
likeness's reference crop is a reference image of a ``vace`` job, several in one video; each is logged and
checked, and revoking any one of them stops the job. Models without vace fall back to image-to-video (the one
likeness is the first frame). In process, on a real database, real face photos and the real miniature model;
only the backend is wrapped, to record what it received."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from kinema.config import Settings
from kinema.container import Container
from kinema.db.models import AlertRow, CharacterRow, CharacterUseRow
from kinema.engine.base import GenerationRequest, Task
from kinema.engine.frames import fit_image
from kinema.engine.registry import ModelSpec
from kinema.queue.worker import JobContext
from kinema.services.auth import Principal
from kinema.services.characters import CONSENT_VERSION, ConsentInput, Permissions
from kinema.services.errors import InvalidRequest
from kinema.services.options import CreateVideo, ExtendVideo, GenerationOptions, VideoSource
from testkit.faces.clips import encode_h264, head_turn_clip
from testkit.faces.photos import faces_dir
from tests.factories import SMALL

FAST = GenerationOptions(num_inference_steps=1)


class Recorder:
    """What the backend received: every request, in order; ``on_step(done)`` runs after each denoising step,
    so a test can change the world mid-way through a job."""

    def __init__(self) -> None:
        self.requests: list[GenerationRequest] = []
        self.on_step: Callable[[int], object] = lambda done: None


class RecordingBackend:
    """Test double around the real backend: records each request it is asked to generate, then runs it."""

    def __init__(self, real: Any, recorder: Recorder) -> None:
        self._real = real
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if not name.startswith("generate") or not callable(attr):
            return attr
        recorder = self._recorder

        def generate(request: GenerationRequest, progress: Callable[[int, int], None], *args: Any, **kw: Any) -> Any:
            recorder.requests.append(request)

            def stepped(done: int, total: int) -> None:
                recorder.on_step(done)
                progress(done, total)

            return attr(request, stepped, *args, **kw)

        return generate


@pytest.fixture
def container(tmp_path: Path, models_dir: Path) -> Iterator[Container]:
    if not (faces_dir() / "obama_1.jpg").is_file():
        pytest.skip(f"face test photographs not found at {faces_dir()} (set KINEMA_TEST_FACES)")
    c = Container.from_settings(
        Settings(
            data_dir=tmp_path,
            database_url=f"sqlite:///{tmp_path / 'k.db'}",
            models_dir=models_dir,
            default_model="tiny-wan",
            password_hash_memory_kib=19456,
            password_hash_time_cost=2,
        )
    )
    yield c
    c.close()


@pytest.fixture
def seen(container: Container, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Every backend the runner uses, wrapped in a :class:`RecordingBackend`."""
    recorder = Recorder()
    real_use = container.engine.use

    @contextmanager
    def use(spec: ModelSpec, task: Task) -> Iterator[Any]:
        with real_use(spec, task) as backend:
            yield RecordingBackend(backend, recorder)

    monkeypatch.setattr(container.engine, "use", use)
    return recorder


def _user(c: Container, email: str) -> Principal:
    row = c.users.create_user(email, "a long enough password")
    return Principal(row.id, cohort=row.cohort)


def _enrol(c: Container, who: Principal, name: str, person: str, signature: str) -> CharacterRow:
    challenge = c.enrolment.new_challenge(who)
    # An honest head turn rendered in 3D from one photograph (testkit/faces/clips.py, a stand-in for real footage).
    frames = head_turn_clip(challenge.moves, person, seconds=3.5, fps=15, seed=3, amplitudes=(30, 30))
    return c.enrolment.enrol(
        who,
        name=name,
        video=encode_h264(frames, 15),
        challenge_id=challenge.id,
        consent=ConsentInput(CONSENT_VERSION, ["generation", "matching"], 365, signature),
    )


def _two(c: Container) -> tuple[Principal, Principal, CharacterRow, CharacterRow]:
    """Alice (likeness @barack) and Bob (likeness @joe), who lets Alice use his."""
    alice, bob = _user(c, "alice@example.com"), _user(c, "bob@example.com")
    barack = _enrol(c, alice, "barack", "obama_1", "Barack Obama")
    joe = _enrol(c, bob, "joe", "biden_2", "Joe Biden")
    c.likenesses.set_permissions(bob, joe.id, Permissions(visibility="users", allowed_users=[alice.id]))
    return alice, bob, barack, joe


def _run_next(c: Container) -> None:
    lease = c.queue.claim("w")
    assert lease is not None
    c.runner.run(JobContext(c.queue, lease, 0.05))


def _same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))


def test_one_likeness_is_a_reference_image_of_a_vace_job(container: Container, seen: Recorder) -> None:
    c = container
    alice = _user(c, "alice@example.com")
    barack = _enrol(c, alice, "barack", "obama_1", "Barack Obama")
    video = c.videos.create(alice, CreateVideo(prompt="@barack on a boat", size=SMALL, seconds="1", options=FAST))
    assert (video.task, video.characters) == ("vace", [barack.id])
    _run_next(c)
    assert c.videos.get(alice.id, video.id).status == "completed"
    (request,) = seen.requests
    assert (request.task, request.image, request.prompt) == ("vace", None, "the person on a boat")
    (reference,) = request.reference_images
    assert _same(reference, c.likeness_use.reference_image(barack.id))  # the decrypted crop, not the first frame

    # A remix of a video of nobody that mentions her puts her in the scene too (not a text-to-video job again).
    plain = c.videos.create(alice, CreateVideo(prompt="a boat", size=SMALL, seconds="1", options=FAST))
    _run_next(c)
    remix = c.videos.remix(alice, plain.id, "@barack on the boat", FAST)
    assert (remix.task, remix.characters) == ("vace", [barack.id])


def test_two_likenesses_in_one_video_are_both_references_logged_and_checked(
    container: Container, seen: Recorder
) -> None:
    c = container
    alice, bob, barack, joe = _two(c)
    video = c.videos.create(
        alice, CreateVideo(prompt="@barack shakes hands with @joe", size=SMALL, seconds="1", options=FAST)
    )
    assert (video.task, video.characters) == ("vace", [barack.id, joe.id])
    # Both uses are in the usage log; Bob is told his likeness was used by someone else, Alice is not.
    with c.sessions() as s:
        uses = {(u.character_id, u.video_id) for u in s.scalars(select(CharacterUseRow))}
        alerted = [a.user_id for a in s.scalars(select(AlertRow).where(AlertRow.kind == "likeness_used"))]
    assert uses == {(barack.id, video.id), (joe.id, video.id)}
    assert alerted == [bob.id]
    assert c.likeness_use.job_permitted(video)
    _run_next(c)
    assert c.videos.get(alice.id, video.id).status == "completed"
    (request,) = seen.requests
    assert request.task == "vace" and len(request.reference_images) == 2
    for got, cid in zip(request.reference_images, (barack.id, joe.id), strict=True):
        assert _same(got, c.likeness_use.reference_image(cid))
    assert not _same(request.reference_images[0], request.reference_images[1])

    # A remix keeps vace and both references; an extension continues from the last frame (i2v), both people kept.
    remix = c.videos.remix(alice, video.id, "@barack and @joe on a bench", FAST)
    assert (remix.task, remix.characters) == ("vace", [barack.id, joe.id])
    _run_next(c)
    assert c.videos.get(alice.id, remix.id).status == "completed"
    assert seen.requests[-1].task == "vace" and len(seen.requests[-1].reference_images) == 2
    extension = c.videos.extend(
        alice, ExtendVideo(prompt="they walk on", seconds="1", source=VideoSource(video.id), options=FAST)
    )
    assert (extension.task, extension.characters) == ("i2v", [barack.id, joe.id])
    _run_next(c)
    assert c.videos.get(alice.id, extension.id).status == "completed"
    assert (
        seen.requests[-1].task == "i2v"
        and seen.requests[-1].image is not None
        and seen.requests[-1].reference_images == []
    )


def test_revoking_either_likeness_stops_the_job(container: Container, seen: Recorder) -> None:
    c = container
    alice, bob, barack, joe = _two(c)
    opts = GenerationOptions(num_inference_steps=3)

    # Revoked after a worker claimed the job, before it starts: the start check refuses it, nothing is generated.
    before = c.videos.create(alice, CreateVideo(prompt="@barack and @joe", size=SMALL, seconds="1", options=FAST))
    lease = c.queue.claim("w")
    assert lease is not None
    c.likenesses.set_permissions(bob, joe.id, Permissions(visibility="private"))
    assert not c.likeness_use.job_permitted(before)
    c.runner.run(JobContext(c.queue, lease, 0.05))
    row = c.videos.get(alice.id, before.id)
    assert (row.status, row.error_code) == ("failed", "likeness_not_permitted")
    assert seen.requests == []

    # Revoked mid-way through denoising (the second likeness of the two): the job stops at its next step.
    c.likenesses.set_permissions(bob, joe.id, Permissions(visibility="users", allowed_users=[alice.id]))
    during = c.videos.create(alice, CreateVideo(prompt="@barack and @joe", size=SMALL, seconds="1", options=opts))
    seen.on_step = lambda done: c.likenesses.revoke(bob, joe.id) if done == 1 else None
    _run_next(c)
    row = c.videos.get(alice.id, during.id)
    assert (row.status, row.error_code) == ("failed", "likeness_not_permitted")
    assert [r.task for r in seen.requests] == ["vace"] and row.video_key is None
    # And it cannot be asked for again.
    with pytest.raises(InvalidRequest) as err:
        c.videos.create(alice, CreateVideo(prompt="@barack and @joe", size=SMALL, seconds="1", options=FAST))
    assert (err.value.param, err.value.code) == ("prompt", "likeness_not_found")


def test_first_frame_mode_and_models_without_vace_use_image_to_video(
    container: Container, seen: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = container
    alice, _, barack, joe = _two(c)

    # Asked for on a model with vace: the likeness's crop is the first frame of an i2v job.
    first = c.videos.create(
        alice,
        CreateVideo(prompt="@barack waves", size=SMALL, seconds="1", options=FAST, likeness_mode="first_frame"),
    )
    assert first.task == "i2v"
    _run_next(c)
    assert c.videos.get(alice.id, first.id).status == "completed"
    (request,) = seen.requests
    assert request.task == "i2v" and request.reference_images == [] and request.image is not None
    assert _same(request.image, fit_image(c.likeness_use.reference_image(barack.id), 96, 64))

    # A model without vace (Wan 2.2 TI2V-5B has t2v and i2v): the fallback, decided when the job is created.
    fallback = c.videos.create(alice, CreateVideo(prompt="@barack waves", model="wan2.2-ti2v-5b", options=FAST))
    assert (fallback.task, fallback.characters) == ("i2v", [barack.id])

    def refused(req: CreateVideo) -> InvalidRequest:
        with pytest.raises(InvalidRequest) as err:
            c.videos.create(alice, req)
        return err.value

    two = "@barack and @joe"
    err = refused(CreateVideo(prompt=two, model="wan2.2-ti2v-5b", options=FAST))
    assert err.param == "characters" and "only one fits" in err.message and "tiny-wan" in err.message
    err = refused(CreateVideo(prompt=two, size=SMALL, seconds="1", options=FAST, likeness_mode="first_frame"))
    assert err.param == "characters" and "first_frame" in err.message
    err = refused(CreateVideo(prompt="@barack", model="wan2.2-ti2v-5b", options=FAST, likeness_mode="scene"))
    assert (err.param, err.code) == ("likeness_mode", "unsupported_value")
    err = refused(CreateVideo(prompt="@barack", size=SMALL, options=FAST, likeness_mode="sideways"))  # type: ignore[arg-type]
    assert (err.param, err.code) == ("likeness_mode", "invalid_value")
    # A model with neither vace nor i2v: the error names the models that can.
    err = refused(CreateVideo(prompt="@barack", model="wan2.2-t2v-a14b", options=FAST))
    assert err.param == "characters" and "cannot do i2v" in err.message
    # Refused requests wrote nothing: only the two accepted jobs exist, each with one use logged.
    with c.sessions() as s:
        uses = sorted((u.character_id, u.video_id) for u in s.scalars(select(CharacterUseRow)))
    assert uses == sorted([(barack.id, first.id), (barack.id, fallback.id)]) and joe.id not in {u[0] for u in uses}

    # More likenesses than fit in one video (the limit lowered here, as there are only two people to enrol).
    from kinema.services.characters import use

    monkeypatch.setattr(use, "MAX_LIKENESSES_PER_VIDEO", 1)
    err = refused(CreateVideo(prompt=two, size=SMALL, seconds="1", options=FAST))
    assert err.param == "characters" and "at most 1" in err.message
