"""FastAPI dependencies as ``Annotated`` aliases: the caller (principal) and the services.

Handlers declare ``principal: CurrentPrincipal`` and ``videos: VideoServiceDep``; how a caller is
authenticated lives only here, so real accounts replace the static token without touching routers.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from kinema.container import Container
from kinema.services.auth import Principal
from kinema.services.videos import VideoService


def get_container(request: Request) -> Container:
    """The application's wired services (set once by ``create_app``)."""
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


def get_principal(request: Request, container: ContainerDep) -> Principal:
    """Authenticate ``Authorization: Bearer <token>``; 401 in the OpenAI envelope otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Missing bearer authentication in header: send 'Authorization: Bearer <API key>'.")
    principal = container.authenticator.authenticate(token.strip())
    if principal is None:
        raise _unauthorized("Incorrect API key provided.")
    return principal


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        401,
        detail={"message": message, "type": "invalid_request_error", "code": "invalid_api_key"},
        headers={"WWW-Authenticate": "Bearer"},
    )


def get_video_service(container: ContainerDep) -> VideoService:
    """The video service."""
    return container.videos


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
VideoServiceDep = Annotated[VideoService, Depends(get_video_service)]
