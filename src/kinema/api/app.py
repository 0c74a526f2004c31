"""``create_app``: the FastAPI application for one container."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from kinema import __version__
from kinema.api import docs, ops
from kinema.api.body import body_limit
from kinema.api.errors import install_error_handlers
from kinema.api.middleware import BodyLimit, SecurityHeaders
from kinema.api.openapi import install_openapi
from kinema.api.v1.accounts.router import router as accounts_router
from kinema.api.v1.admin.router import router as admin_router
from kinema.api.v1.admin.transparency import router as transparency_router
from kinema.api.v1.characters.router import router as characters_router
from kinema.api.v1.policy import router as policy_router
from kinema.api.v1.provenance.router import router as provenance_router
from kinema.api.v1.videos.router import router as videos_router
from kinema.api.v1.webhooks.router import router as webhooks_router
from kinema.container import Container
from kinema.web.router import router as studio_router


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
        title="Kinema",
        version=__version__,
        description="Self-hosted, privacy-first video generation with an OpenAI-Videos-compatible API.",
        lifespan=lifespan,
        # Swagger UI is served from the package (kinema.api.docs), not from a CDN; ReDoc is not offered.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.metrics = ops.metrics_registry(container.sessions)
    app.state.container = container
    install_error_handlers(app)
    # Outermost last: security headers wrap everything, including the body cap's 413. The cap is ours,
    # not FastAPI's max_body_size, whose 413 is text/plain instead of the error envelope.
    max_upload = container.settings.max_upload_bytes
    app.add_middleware(BodyLimit, limit=body_limit(max_upload), max_upload_bytes=max_upload)
    app.add_middleware(
        SecurityHeaders,
        secure_cookie=container.settings.session_cookie_secure,
        trusted_proxies=container.trusted_proxies,
    )
    app.include_router(ops.router)
    app.include_router(docs.router)
    app.include_router(characters_router)  # before videos: /v1/videos/characters is not a video id
    app.include_router(videos_router)
    app.include_router(provenance_router)
    app.include_router(accounts_router)
    app.include_router(admin_router)
    app.include_router(policy_router)
    app.include_router(transparency_router)
    app.include_router(webhooks_router)
    app.include_router(studio_router)  # the web studio's pages at /, outside /v1 and the OpenAPI schema
    install_openapi(app)
    return app
