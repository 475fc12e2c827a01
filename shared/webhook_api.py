"""The webhook API every service with webhooks serves: subscribe, list, follow deliveries.

`webhook_router` makes the three endpoints for a service's tables, event types and scope;
the request and response shapes are the same everywhere (the handoff client uses them).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import AnyHttpUrl, BaseModel, Field, create_model

from shared.auth import Principal, Scope, require
from shared.problems import Problem
from shared.runtime import ServiceRuntime
from shared.webhooks import WebhookTables, add_subscription, deliveries_of, subscription, subscriptions

PROBLEM = {"description": "Problem (application/problem+json)"}


class WebhookCreate(BaseModel):
    url: AnyHttpUrl
    event_types: list[str] = Field(min_length=1)


class WebhookPublic(BaseModel):
    subscription_id: str
    url: str
    event_types: list[str]
    active: bool
    created_at: datetime


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="Verify signatures with it. Shown only now.")


class DeliveryPublic(BaseModel):
    delivery_id: int
    message_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


def webhook_create_model(event_types: Sequence[str]) -> type[WebhookCreate]:
    """`WebhookCreate` whose `event_types` accepts (and documents as an enum) only these types."""
    allowed: Any = Literal[tuple(event_types)]
    return create_model(
        "WebhookCreate", __base__=WebhookCreate, event_types=(list[allowed], Field(min_length=1))
    )


def webhook_router(
    tables: WebhookTables,
    *,
    event_types: Sequence[str],
    scope: Scope,
    tag: str,
    subject: str,
    prefix: str = "/v1",
) -> APIRouter:
    """POST and GET `/webhooks` and GET `/webhooks/{id}/deliveries`, for keys with `scope`.

    `subject` names what subscribers get, in the API's description ("handoff events").
    """
    router = APIRouter(prefix=prefix, tags=[tag])
    admitted = require(scope)

    async def create_webhook(
        body: WebhookCreate, request: Request, _: Principal = admitted
    ) -> WebhookCreated:
        values = {
            "subscription_id": str(uuid.uuid4()),
            "url": str(body.url),
            "event_types": list(body.event_types),
            "secret": f"whsec_{secrets.token_urlsafe(32)}",
        }
        async with _runtime(request).engine.begin() as conn:
            row = await add_subscription(conn, tables, **values)
        return WebhookCreated.model_validate(dict(row._mapping))

    # Validate the body against this service's event types (an enum in the OpenAPI document too).
    create_webhook.__annotations__["body"] = webhook_create_model(event_types)

    async def list_webhooks(request: Request, _: Principal = admitted) -> list[WebhookPublic]:
        async with _runtime(request).engine.connect() as conn:
            rows = await subscriptions(conn, tables)
        return [WebhookPublic.model_validate(dict(r._mapping)) for r in rows]

    async def list_deliveries(
        subscription_id: str,
        request: Request,
        _: Principal = admitted,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[DeliveryPublic]:
        async with _runtime(request).engine.connect() as conn:
            if await subscription(conn, tables, subscription_id) is None:
                raise Problem(status=404, title="Webhook not found", detail=f"no webhook {subscription_id}")
            rows = await deliveries_of(conn, tables, subscription_id=subscription_id, limit=limit)
        return [DeliveryPublic.model_validate(dict(r._mapping)) for r in rows]

    router.add_api_route(
        "/webhooks",
        create_webhook,
        methods=["POST"],
        response_model=WebhookCreated,
        status_code=201,
        responses={422: PROBLEM},
        description=f"Subscribe a URL to {subject}; deliveries are signed with the secret returned here.",
    )
    router.add_api_route(
        "/webhooks",
        list_webhooks,
        methods=["GET"],
        response_model=list[WebhookPublic],
        description="Every subscription (without secrets).",
    )
    router.add_api_route(
        "/webhooks/{subscription_id}/deliveries",
        list_deliveries,
        methods=["GET"],
        response_model=list[DeliveryPublic],
        responses={404: PROBLEM},
        description="The subscription's deliveries, newest first: status, attempts, last answer.",
    )
    return router


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime
