"""Webhooks end to end: a real ``kinema serve`` driven by the official openai SDK (``client.webhooks``),
delivering to a real HTTP receiver on 127.0.0.1, whose deliveries ``client.webhooks.unwrap`` verifies.

One server for the module, allowed to deliver to 127.0.0.1 over http (KINEMA_WEBHOOK_ALLOW_PRIVATE,
KINEMA_WEBHOOK_ALLOW_HTTP) with short backoff. Refusals under the default settings are tested in
tests/services/test_webhooks.py, without a second server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.conftest import Proc, client_for, provision, start_server, wait_for
from tests.services.test_webhooks import Receiver, receiver, uniq  # noqa: F401  (the module's receiver fixture)

pytestmark = pytest.mark.slow
FAST = {"num_inference_steps": 1}
ABSENT_MODEL = "wan2.1-t2v-1.3b"  # in the catalogue, never pulled here: the worker fails the job


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Proc]:
    d = tmp_path_factory.mktemp("webhooks")
    proc = start_server(
        d,
        f"sqlite:///{d / 'k.db'}",
        models_dir,
        workers=1,
        KINEMA_WEBHOOK_ALLOW_PRIVATE="true",
        KINEMA_WEBHOOK_ALLOW_HTTP="true",
        KINEMA_WEBHOOK_BACKOFF_SECONDS="0.05",
        KINEMA_WEBHOOK_BACKOFF_MAX_SECONDS="0.2",
        KINEMA_WEBHOOK_POLL_SECONDS="0.05",
    )
    yield proc
    proc.stop()


def _user(server: Proc, email: str) -> openai.OpenAI:
    assert server.data_dir is not None
    return client_for(server, provision(server.data_dir, server.db_url, email))


def test_sdk_manages_endpoints_and_verifies_video_completed(server: Proc, receiver: Receiver) -> None:  # noqa: F811
    client = _user(server, "hooks@example.com")
    path = uniq("/ok")
    ep = client.webhooks.create(name="studio", url=receiver.url(path), event_types=["video.completed", "video.failed"])
    assert ep.object == "webhook_endpoint" and ep.signing_secret.startswith("whsec_")
    assert ep.signing_secret_hint is not None and ep.signing_secret_hint.endswith(ep.signing_secret[-4:])
    shown = client.webhooks.with_raw_response.retrieve(ep.id).http_response.json()
    assert "signing_secret" not in shown and shown["event_types"] == ["video.completed", "video.failed"]
    assert [e.id for e in client.webhooks.list()] == [ep.id]
    assert client.webhooks.event_types.list().data == ["video.completed", "video.failed"]

    video = client.videos.create_and_poll(prompt="a kite over a beach", seconds="1", extra_body=FAST)
    assert video.status == "completed"
    wait_for(lambda: len(receiver.at(path)) >= 1, 30, "the video.completed delivery")
    [(headers, body)] = receiver.at(path)
    event = client.webhooks.unwrap(body, headers, secret=ep.signing_secret)
    assert event.type == "video.completed" and event.data.id == video.id  # type: ignore[union-attr]
    assert headers["webhook-id"] == event.id and headers["content-type"] == "application/json"
    with pytest.raises(openai.InvalidWebhookSignatureError):
        client.webhooks.unwrap(body.replace(video.id.encode(), b"video_other"), headers, secret=ep.signing_secret)

    # Another user sees none of it: 404, never 403, and the endpoint is untouched.
    other = _user(server, "other@example.com")
    assert list(other.webhooks.list()) == []
    for call in (
        lambda: other.webhooks.retrieve(ep.id),
        lambda: other.webhooks.update(ep.id, name="mine now"),
        lambda: other.webhooks.rotate_secret(ep.id),
        lambda: other.webhooks.test(ep.id, event_type="video.completed"),
        lambda: other.webhooks.delete(ep.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert client.webhooks.retrieve(ep.id).name == "studio"

    updated = client.webhooks.update(ep.id, name="renamed", event_types=["video.failed"])
    assert (updated.name, updated.event_types) == ("renamed", ["video.failed"])
    rotated = client.webhooks.rotate_secret(ep.id)
    assert rotated.signing_secret != ep.signing_secret
    result = client.webhooks.test(ep.id, event_type="video.failed")
    assert result.status_code == 200 and result.webhook_endpoint_id == ep.id
    headers, body = receiver.at(path)[-1]
    assert client.webhooks.unwrap(body, headers, secret=rotated.signing_secret).type == "video.failed"
    with pytest.raises(openai.InvalidWebhookSignatureError):
        client.webhooks.unwrap(body, headers, secret=ep.signing_secret)  # the old secret stopped at once
    log = client.get(f"/webhook_endpoints/{ep.id}/deliveries", cast_to=object)
    assert [(d["attempt"], d["status_code"]) for d in log["data"]] == [(0, 200), (1, 200)]  # type: ignore[index]

    assert client.webhooks.delete(ep.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.webhooks.retrieve(ep.id)
    with pytest.raises(openai.BadRequestError) as err:
        client.webhooks.create(name="x", url=receiver.url(path), event_types=["batch.completed"])
    assert err.value.body["param"] == "event_types"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as err:
        client.webhooks.create(name="x", url=f"http://user:pw@127.0.0.1:{receiver.port}/", event_types=["video.failed"])
    assert err.value.body["param"] == "url" and "password" in err.value.body["message"]  # type: ignore[index]


def test_failed_video_reaches_a_flaky_receiver_exactly_once_more(server: Proc, receiver: Receiver) -> None:  # noqa: F811
    client = _user(server, "flaky@example.com")
    path = uniq("/fail-3")  # answers 500 three times, then 200
    ep = client.webhooks.create(name="flaky", url=receiver.url(path), event_types=["video.failed"])
    video = client.videos.create(prompt="needs absent weights", model=ABSENT_MODEL, seconds="4")  # type: ignore[arg-type]
    wait_for(lambda: len(receiver.at(path)) >= 4, 60, "four tries of the video.failed delivery")
    wait_for(lambda: client.videos.retrieve(video.id).status == "failed", 10, "the video to fail")
    got = receiver.at(path)
    assert len({h["webhook-id"] for h, _ in got}) == 1 and len({b for _, b in got}) == 1
    event = client.webhooks.unwrap(got[-1][1], got[-1][0], secret=ep.signing_secret)
    assert event.type == "video.failed" and event.data.id == video.id  # type: ignore[union-attr]

    # Delivered on the fourth try: the delivery loop (polling every 50 ms) sends it no more.
    def statuses() -> list[int | None]:
        log = client.get(f"/webhook_endpoints/{ep.id}/deliveries", cast_to=object)
        return [d["status_code"] for d in reversed(log["data"])]  # type: ignore[index]

    wait_for(lambda: len(statuses()) == 4, 10, "the fourth try in the delivery log")
    assert statuses() == [500, 500, 500, 200]
    time.sleep(0.5)
    assert len(receiver.at(path)) == 4
