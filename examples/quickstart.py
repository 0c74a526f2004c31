"""Kinema with the official `openai` SDK, against the server that `bash scripts/serve.sh` started.

Run it from the repository root, in a second terminal: `.venv/bin/python examples/quickstart.py`.
It writes kite.mp4, kite.webp, snow.mp4 and longer.mp4 in the current folder. With `tiny-wan`, the miniature
that scripts/serve.sh runs, every video is coloured noise, made by the real code paths.
"""

import base64
import os
import warnings
from pathlib import Path

import openai
from openai import OpenAI

# The SDK warns on every call that OpenAI's hosted Sora API has shut down; that is not this server.
warnings.filterwarnings("ignore", message="The Sora API is scheduled", category=DeprecationWarning)

# Where scripts/serve.sh listens and keeps its data: the same variables, with the same defaults.
port = os.environ.get("KINEMA_PORT", "8000")
data_dir = os.environ.get("KINEMA_DATA_DIR", "kinema-data")
api_key = Path(data_dir, "dev-api-key").read_text().strip()  # scripts/serve.sh prints it too
client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=api_key)


def finished(video):
    """Stop with the error if a job failed (a refused prompt, say); return the video otherwise."""
    if video.status != "completed":
        raise SystemExit(f"{video.id} {video.status}: {video.error}")
    return video


# Every job below is waited for before the next starts: an account runs at most 4 jobs at a time
# (KINEMA_DEFAULT_CONCURRENT_JOBS), and one more is refused with a 429 until one of them ends.
video = finished(
    client.videos.create_and_poll(
        prompt="a red kite over a beach at dusk", model="sora-2", size="1280x720", seconds="4"
    )
)
print(video.status, video.size, video.seconds)  # completed 256x160 4   (tiny-wan)
Path("kite.mp4").write_bytes(client.videos.download_content(video.id).read())
Path("kite.webp").write_bytes(client.videos.download_content(video.id, variant="thumbnail").read())

remix = finished(client.videos.poll(client.videos.remix(video.id, prompt="the same kite at night").id))

# Edit an uploaded clip: here, the one just downloaded.
with open("kite.mp4", "rb") as clip:
    edit = finished(client.videos.poll(client.videos.edit(prompt="make it snow", video=clip).id))
Path("snow.mp4").write_bytes(client.videos.download_content(edit.id).read())

# A completed video by id: see the note in the README on why this goes through extra_body.
edit = finished(
    client.videos.poll(
        client.videos.edit(prompt="make it snow", video=openai.omit, extra_body={"video": {"id": video.id}}).id
    )
)
longer = finished(
    client.videos.poll(
        client.videos.extend(
            prompt="the kite lands", seconds="4", video=openai.omit, extra_body={"video": {"id": video.id}}
        ).id
    )
)
Path("longer.mp4").write_bytes(client.videos.download_content(longer.id).read())
print("extended to", longer.seconds, "seconds")  # extended to 8 seconds

# Image to video from a first frame (JPEG, PNG or WebP): an uploaded file, or a base64 data URL, which
# also goes through extra_body (the README's note again).
with open("kite.webp", "rb") as image:
    moving = finished(client.videos.create_and_poll(prompt="the kite takes off", input_reference=image))
data_url = "data:image/webp;base64," + base64.b64encode(Path("kite.webp").read_bytes()).decode()
moving = finished(
    client.videos.create_and_poll(
        prompt="the kite takes off",
        input_reference=openai.omit,
        extra_body={"input_reference": {"image_url": data_url}},
    )
)

# Kinema extras go in extra_body:
extras = finished(
    client.videos.create_and_poll(
        prompt="a lighthouse in fog",
        extra_body={"seed": 7, "num_inference_steps": 30, "guidance_scale": 5.0, "negative_prompt": "blurry"},
    )
)

for v in client.videos.list(limit=20):  # pages through `after` automatically
    print(v.id, v.status, v.progress)
client.videos.delete(video.id)
print("wrote kite.mp4 kite.webp snow.mp4 longer.mp4")
