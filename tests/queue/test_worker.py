"""In-process workers: woken by an enqueue in the same process, and stopped promptly."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from kinema.config import Settings
from kinema.container import Container
from kinema.services.auth import Principal
from kinema.services.options import CreateVideo, GenerationOptions


def test_enqueue_wakes_an_idle_in_process_worker(tmp_path: Path, models_dir: Path) -> None:
    settings = Settings(
        mode="dev",
        data_dir=tmp_path,
        models_dir=models_dir,
        default_model="tiny-wan",
        poll_seconds=60,
        progress_interval_seconds=0,
    )
    container = Container.from_settings(settings)
    container.start_workers(1)
    try:
        time.sleep(0.5)  # the worker has looked, found nothing, and is now waiting up to 60 s
        row = container.videos.create(
            Principal("owner"),
            CreateVideo(prompt="wake up", seconds="1", options=GenerationOptions(num_inference_steps=1)),
        )
        deadline = time.monotonic() + 30
        while container.videos.get("owner", row.id).status != "completed" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert container.videos.get("owner", row.id).status == "completed"
        assert time.monotonic() < deadline
    finally:
        t0 = time.monotonic()
        container.close()
        assert time.monotonic() - t0 < 10  # stop wakes the waiting worker too
    assert not [t for t in threading.enumerate() if t.name.startswith("kinema-worker")]
