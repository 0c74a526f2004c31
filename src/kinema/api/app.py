"""``create_app``: the FastAPI application for one container."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from kinema import __version__
from kinema.api import ops
from kinema.api.body import body_limit
from kinema.api.errors import install_error_handlers
from kinema.api.v1.accounts.router import router as accounts_router
from kinema.api.v1.admin.router import router as admin_router
from kinema.api.v1.admin.transparency import router as transparency_router
from kinema.api.v1.characters.router import router as characters_router
from kinema.api.v1.policy import router as policy_router
from kinema.api.v1.provenance.router import router as provenance_router
from kinema.api.v1.videos.router import router as videos_router
from kinema.container import Container


def create_app(container: Container, *, workers: int = 0) -> FastAPI:
    """The API over ``container``; ``workers`` in-process worker threads run while it serves."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        container.start_workers(workers)
        container.start_sweeper()
        try:
            yield
        finally:
            container.stop_workers()

    app = FastAPI(
        # Also bounds chunked requests, which carry no Content-Length to check up front.
        max_body_size=body_limit(container.settings.max_upload_bytes),
        title="Kinema",
        version=__version__,
        description="Self-hosted, privacy-first video generation with an OpenAI-Videos-compatible API.",
        lifespan=lifespan,
    )
    container.metrics = ops.metrics_registry(container)
    app.state.container = container
    install_error_handlers(app)
    app.include_router(ops.router)
    app.include_router(characters_router)  # before videos: /v1/videos/characters is not a video id
    app.include_router(videos_router)
    app.include_router(provenance_router)
    app.include_router(accounts_router)
    app.include_router(admin_router)
    app.include_router(policy_router)
    app.include_router(transparency_router)
    return app
