"""/v1/webhook_endpoints (the openai SDK's ``client.webhooks`` methods) and /v1/webhook_event_types.

Thin routes: every call goes to :class:`kinema.services.webhooks.WebhookService`, which scopes each
endpoint to its owner (another user's id is a 404).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from kinema.api.deps import WebhookServiceDep, require
from kinema.api.v1.webhooks.protocol import (
    CreateEndpointBody,
    DeletedWebhookEndpoint,
    Delivery,
    DeliveryList,
    RotateSecretBody,
    TestEndpointBody,
    UpdateEndpointBody,
    WebhookEndpoint,
    WebhookEndpointList,
    WebhookEndpointTestResult,
    WebhookEndpointWithSecret,
    WebhookEventTypeList,
)
from kinema.services.auth import Principal
from kinema.services.webhooks import EVENT_TYPES, Created

router = APIRouter(prefix="/v1", tags=["webhooks"])
WebhooksRead = Annotated[Principal, Depends(require("webhooks:read"))]
WebhooksWrite = Annotated[Principal, Depends(require("webhooks:write"))]


def _with_secret(created: Created) -> WebhookEndpointWithSecret:
    return WebhookEndpointWithSecret(
        **WebhookEndpoint.from_row(created.row).model_dump(), signing_secret=created.secret
    )


@router.post("/webhook_endpoints", response_model=WebhookEndpointWithSecret)
async def create_endpoint(
    body: CreateEndpointBody, principal: WebhooksWrite, webhooks: WebhookServiceDep
) -> WebhookEndpointWithSecret:
    """A new endpoint; its signing secret is in this response only. The URL's host is resolved and checked."""
    created = await run_in_threadpool(
        webhooks.create, principal.id, name=body.name, url=body.url, event_types=body.event_types
    )
    return _with_secret(created)


@router.get("/webhook_endpoints", response_model=WebhookEndpointList)
def list_endpoints(
    principal: WebhooksRead,
    webhooks: WebhookServiceDep,
    after: str | None = Query(None, max_length=64),
    limit: int = Query(20, ge=1, le=100),
) -> WebhookEndpointList:
    """Your endpoints, oldest first (cursor: ``after`` = the last id of the previous page)."""
    rows, more = webhooks.page(principal.id, after=after, limit=limit)
    data = [WebhookEndpoint.from_row(r) for r in rows]
    return WebhookEndpointList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=more,
    )


@router.get("/webhook_endpoints/{webhook_endpoint_id}", response_model=WebhookEndpoint)
def retrieve_endpoint(
    webhook_endpoint_id: str, principal: WebhooksRead, webhooks: WebhookServiceDep
) -> WebhookEndpoint:
    """One of your endpoints (the secret only as a hint)."""
    return WebhookEndpoint.from_row(webhooks.get(principal.id, webhook_endpoint_id))


@router.post("/webhook_endpoints/{webhook_endpoint_id}", response_model=WebhookEndpoint)
async def update_endpoint(
    webhook_endpoint_id: str, body: UpdateEndpointBody, principal: WebhooksWrite, webhooks: WebhookServiceDep
) -> WebhookEndpoint:
    """Change the name, URL (checked again), event types, or (Kinema) whether deliveries are enabled."""
    row = await run_in_threadpool(
        webhooks.update,
        principal.id,
        webhook_endpoint_id,
        name=body.name,
        url=body.url,
        event_types=body.event_types,
        enabled=body.enabled,
    )
    return WebhookEndpoint.from_row(row)


@router.delete("/webhook_endpoints/{webhook_endpoint_id}", response_model=DeletedWebhookEndpoint)
def delete_endpoint(
    webhook_endpoint_id: str, principal: WebhooksWrite, webhooks: WebhookServiceDep
) -> DeletedWebhookEndpoint:
    """Delete an endpoint with its pending events and delivery log."""
    webhooks.delete(principal.id, webhook_endpoint_id)
    return DeletedWebhookEndpoint(id=webhook_endpoint_id)


@router.post("/webhook_endpoints/{webhook_endpoint_id}/rotate_secret", response_model=WebhookEndpointWithSecret)
def rotate_secret(
    webhook_endpoint_id: str, body: RotateSecretBody, principal: WebhooksWrite, webhooks: WebhookServiceDep
) -> WebhookEndpointWithSecret:
    """A new signing secret, in this response only."""
    created = webhooks.rotate_secret(
        principal.id, webhook_endpoint_id, keep_old_for_24_hours=body.keep_old_secret_active_for_24_hours
    )
    return _with_secret(created)


@router.post("/webhook_endpoints/{webhook_endpoint_id}/test", response_model=WebhookEndpointTestResult)
async def test_endpoint(
    webhook_endpoint_id: str, body: TestEndpointBody, principal: WebhooksWrite, webhooks: WebhookServiceDep
) -> WebhookEndpointTestResult:
    """Send a signed sample event now and report the receiver's status (no retries)."""
    result = await run_in_threadpool(webhooks.test, principal.id, webhook_endpoint_id, body.event_type)
    return WebhookEndpointTestResult(
        webhook_endpoint_id=webhook_endpoint_id,
        event_type=body.event_type,
        status_code=result.status or 0,
        error=result.error,
    )


@router.get("/webhook_endpoints/{webhook_endpoint_id}/deliveries", response_model=DeliveryList)
def list_deliveries(
    webhook_endpoint_id: str,
    principal: WebhooksRead,
    webhooks: WebhookServiceDep,
    limit: int = Query(50, ge=1, le=500),
) -> DeliveryList:
    """Kinema: the endpoint's recent delivery tries (status, error, duration), newest first."""
    rows = webhooks.deliveries(principal.id, webhook_endpoint_id, limit=limit)
    return DeliveryList(data=[Delivery.from_row(r) for r in rows])


@router.get("/webhook_event_types", response_model=WebhookEventTypeList)
def list_event_types(principal: WebhooksRead) -> WebhookEventTypeList:
    """The event types this server sends."""
    return WebhookEventTypeList(data=list(EVENT_TYPES))
