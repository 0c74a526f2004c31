"""Wire models for webhook endpoints, shaped like the openai SDK's ``openai.types.webhooks`` types.

Kinema's extras (never required by the SDK): ``enabled`` and ``disabled_reason`` on an endpoint, the
``enabled`` field of an update (to re-enable an endpoint disabled after failures), and the delivery log.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from kinema.api.strict import Strict
from kinema.db.models import WebhookDeliveryRow, WebhookEndpointRow


class CreateEndpointBody(Strict):
    name: str = Field(min_length=1, max_length=128, description="A human-readable name for the endpoint.")
    url: str = Field(min_length=1, max_length=2048, description="The HTTPS URL that receives deliveries.")
    event_types: list[str] = Field(
        min_length=1, max_length=16, description="Event types to deliver: `video.completed`, `video.failed`."
    )


class UpdateEndpointBody(Strict):
    name: str | None = Field(None, min_length=1, max_length=128)
    url: str | None = Field(None, min_length=1, max_length=2048)
    event_types: list[str] | None = Field(None, min_length=1, max_length=16)
    enabled: bool | None = Field(None, description="Kinema: re-enable (true) or pause (false) deliveries.")


class RotateSecretBody(Strict):
    keep_old_secret_active_for_24_hours: bool = Field(
        False, description="Sign deliveries with the old secret too for 24 hours (both signatures are sent)."
    )


class TestEndpointBody(Strict):
    event_type: str = Field(max_length=64, description="The event type of the sample delivery.")


class WebhookEndpoint(BaseModel):
    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    name: str
    url: str
    event_types: list[str]
    created_at: int
    updated_at: int | None = None
    signing_secret_hint: str | None = None
    enabled: bool = True
    disabled_reason: str | None = None

    @classmethod
    def from_row(cls, row: WebhookEndpointRow) -> WebhookEndpoint:
        return cls(
            id=row.id,
            name=row.name,
            url=row.url,
            event_types=list(row.event_types),
            created_at=int(row.created_at),
            updated_at=int(row.updated_at),
            signing_secret_hint=row.secret_hint,
            enabled=row.enabled,
            disabled_reason=row.disabled_reason,
        )


class WebhookEndpointWithSecret(WebhookEndpoint):
    signing_secret: str = Field(description="Shown only in this response (create, rotate_secret).")


class WebhookEndpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[WebhookEndpoint]
    first_id: str | None
    last_id: str | None
    has_more: bool


class DeletedWebhookEndpoint(BaseModel):
    id: str
    object: Literal["webhook_endpoint.deleted"] = "webhook_endpoint.deleted"
    deleted: bool = True


class WebhookEndpointTestResult(BaseModel):
    object: Literal["webhook_endpoint.test"] = "webhook_endpoint.test"
    webhook_endpoint_id: str
    event_type: str
    success: Literal[True] = True
    status_code: int = Field(description="The receiver's HTTP status; 0 when no answer came (see `error`).")
    error: str | None = Field(None, description="Kinema: why no answer came (refused address, timeout, ...).")


class WebhookEventTypeList(BaseModel):
    object: Literal["list"] = "list"
    data: list[str]


class Delivery(BaseModel):
    object: Literal["webhook_endpoint.delivery"] = "webhook_endpoint.delivery"
    event_id: str = Field(description="The `webhook-id` header of the try (the same on every retry).")
    event_type: str
    attempt: int = Field(description="1 for the first try of an event; 0 for a test delivery.")
    status_code: int | None
    error: str | None
    duration_ms: int
    created_at: int

    @classmethod
    def from_row(cls, row: WebhookDeliveryRow) -> Delivery:
        return cls(
            event_id=row.event_id,
            event_type=row.event_type,
            attempt=row.attempt,
            status_code=row.status_code,
            error=row.error,
            duration_ms=row.duration_ms,
            created_at=int(row.created_at),
        )


class DeliveryList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Delivery]
