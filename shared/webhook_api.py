"""The webhook API every service with webhooks serves: subscribe, list, pause, rotate, delete,
follow deliveries.

`webhook_router` makes the endpoints for a service's tables, event types and scope; the
request and response shapes are the same everywhere (the handoff client uses them). A URL
must point at a public address (`shared.destinations`, with the operator's allow-list), and a
key may hold at most `LEADFLOW_WEBHOOK_MAX_SUBSCRIPTIONS_PER_KEY` subscriptions.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import AnyHttpUrl, BaseModel, Field, UrlConstraints, create_model

from shared.auth import Principal, Scope, require
from shared.destinations import MAX_URL_LENGTH, AllowList, url_refusal
from shared.envelope import utcnow
from shared.problems import FieldError, Problem, invalid
from shared.runtime import ServiceRuntime
from shared.secret_box import SecretBox
from shared.webhooks import (
    WebhookTables,
    add_subscription,
    change_subscription,
    delete_subscription,
    deliveries_of,
    subscription,
    subscriptions,
    subscriptions_created_by,
)

PROBLEM = {"description": "Problem (application/problem+json)"}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No webhook with this id."}}
WebhookUrl = Annotated[AnyHttpUrl, UrlConstraints(max_length=MAX_URL_LENGTH)]


class WebhookCreate(BaseModel):
    url: WebhookUrl = Field(
        description=f"http(s), at most {MAX_URL_LENGTH} characters, to a public address "
        "(loopback, private, link-local and similar destinations are refused unless allow-listed)"
    )
    event_types: list[str] = Field(min_length=1)


class WebhookUpdate(BaseModel):
    active: bool = Field(description="false pauses the subscription: nothing is queued or sent until true")


class WebhookPublic(BaseModel):
    subscription_id: str
    url: str
    event_types: list[str]
    active: bool
    created_at: datetime
    previous_secret_expires_at: datetime | None = Field(
        default=None, description="Until then, deliveries are signed with the previous secret too."
    )


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="Verify signatures with it. Shown only now.")


class DeliveryPublic(BaseModel):
    delivery_id: int
    message_id: str
    event_type: str
    status: str = Field(description="pending, delivered, failed, or dropped (over the pending cap)")
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None = Field(
        description="A summary of the last failed attempt (`HTTP 500`, `timeout`, `refused: loopback`); "
        "the receiver's answer is never kept."
    )
    created_at: datetime
    delivered_at: datetime | None


def webhook_create_model(event_types: Sequence[str]) -> type[WebhookCreate]:
    """`WebhookCreate` whose `event_types` accepts (and documents as an enum) only these types."""
    allowed: Any = Literal[tuple(event_types)]
    return create_model(
        "WebhookCreate", __base__=WebhookCreate, event_types=(list[allowed], Field(min_length=1))
    )


def new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def webhook_router(
    tables: WebhookTables,
    *,
    event_types: Sequence[str],
    scope: Scope,
    tag: str,
    subject: str,
    prefix: str = "/v1",
) -> APIRouter:
    """The `/webhooks` endpoints, for keys with `scope`.

    `subject` names what subscribers get, in the API's description ("handoff events").
    """
    router = APIRouter(prefix=prefix, tags=[tag])
    admitted = require(scope)

    async def create_webhook(body: WebhookCreate, request: Request, principal: Principal = admitted) -> Any:
        runtime = _runtime(request)
        _check_destination(str(body.url), runtime)
        secret = new_secret()
        values = {
            "subscription_id": str(uuid.uuid4()),
            "url": str(body.url),
            "event_types": list(body.event_types),
            "secret": _box(runtime).seal(secret),
            "created_by": principal.key_id,
        }
        async with runtime.engine.begin() as conn:
            await _check_room(conn, runtime, principal)
            row = await add_subscription(conn, tables, **values)
        return WebhookCreated.model_validate({**row._mapping, "secret": secret})

    # Validate the body against this service's event types (an enum in the OpenAPI document too).
    create_webhook.__annotations__["body"] = webhook_create_model(event_types)

    async def _check_room(conn: Any, runtime: ServiceRuntime, principal: Principal) -> None:
        cap = runtime.settings.webhook_max_subscriptions_per_key
        if await subscriptions_created_by(conn, tables, principal.key_id) >= cap:
            raise Problem(
                status=409,
                title="Too many webhooks",
                detail=f"This key already holds {cap} subscriptions; delete one first.",
                extra={"limit": cap},
            )

    async def list_webhooks(request: Request, _: Principal = admitted) -> list[WebhookPublic]:
        async with _runtime(request).engine.connect() as conn:
            rows = await subscriptions(conn, tables)
        return [WebhookPublic.model_validate(dict(r._mapping)) for r in rows]

    async def get_webhook(subscription_id: str, request: Request, _: Principal = admitted) -> WebhookPublic:
        async with _runtime(request).engine.connect() as conn:
            row = _found(await subscription(conn, tables, subscription_id), subscription_id)
        return WebhookPublic.model_validate(dict(row._mapping))

    async def update_webhook(
        subscription_id: str, body: WebhookUpdate, request: Request, _: Principal = admitted
    ) -> WebhookPublic:
        async with _runtime(request).engine.begin() as conn:
            row = await change_subscription(conn, tables, subscription_id, active=body.active)
        return WebhookPublic.model_validate(dict(_found(row, subscription_id)._mapping))

    async def rotate_secret(subscription_id: str, request: Request, _: Principal = admitted) -> Any:
        runtime = _runtime(request)
        secret = new_secret()
        grace = timedelta(hours=runtime.settings.webhook_secret_grace_h)
        async with runtime.engine.begin() as conn:
            current = _found(await subscription(conn, tables, subscription_id), subscription_id)
            row = await change_subscription(
                conn,
                tables,
                subscription_id,
                secret=_box(runtime).seal(secret),
                previous_secret=current.secret,  # already sealed
                previous_secret_expires_at=utcnow() + grace,
            )
        return WebhookCreated.model_validate({**_found(row, subscription_id)._mapping, "secret": secret})

    async def remove_webhook(subscription_id: str, request: Request, _: Principal = admitted) -> Response:
        async with _runtime(request).engine.begin() as conn:
            if not await delete_subscription(conn, tables, subscription_id):
                raise _not_found(subscription_id)
        return Response(status_code=204)

    async def list_deliveries(
        subscription_id: str,
        request: Request,
        _: Principal = admitted,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[DeliveryPublic]:
        async with _runtime(request).engine.connect() as conn:
            _found(await subscription(conn, tables, subscription_id), subscription_id)
            rows = await deliveries_of(conn, tables, subscription_id=subscription_id, limit=limit)
        return [DeliveryPublic.model_validate(dict(r._mapping)) for r in rows]

    one = "/webhooks/{subscription_id}"
    routes: list[tuple[str, Any, str, Any, int, dict[int | str, dict[str, Any]], str]] = [
        (
            "/webhooks",
            create_webhook,
            "POST",
            WebhookCreated,
            201,
            {409: {"description": "The key holds the most subscriptions allowed."}, 422: PROBLEM},
            f"Subscribe a URL to {subject}; deliveries are signed with the secret returned here.",
        ),
        (
            "/webhooks",
            list_webhooks,
            "GET",
            list[WebhookPublic],
            200,
            {},
            "Every subscription (without secrets).",
        ),
        (one, get_webhook, "GET", WebhookPublic, 200, NOT_FOUND, "One subscription (without its secret)."),
        (
            one,
            update_webhook,
            "PATCH",
            WebhookPublic,
            200,
            NOT_FOUND,
            "Pause (`active: false`) or resume a subscription; a paused one is sent nothing.",
        ),
        (one, remove_webhook, "DELETE", None, 204, NOT_FOUND, "Delete a subscription and its deliveries."),
        (
            f"{one}/rotate-secret",
            rotate_secret,
            "POST",
            WebhookCreated,
            200,
            NOT_FOUND,
            "A new signing secret, shown once; the previous one still signs until "
            "`previous_secret_expires_at` (LEADFLOW_WEBHOOK_SECRET_GRACE_H).",
        ),
        (
            f"{one}/deliveries",
            list_deliveries,
            "GET",
            list[DeliveryPublic],
            200,
            NOT_FOUND,
            "The subscription's deliveries, newest first: status, attempts, a summary of the last answer.",
        ),
    ]
    for path, endpoint, method, model, status, responses, description in routes:
        router.add_api_route(
            path,
            endpoint,
            methods=[method],
            response_model=model,
            status_code=status,
            responses=responses,
            description=description,
        )
    return router


def _check_destination(url: str, runtime: ServiceRuntime) -> None:
    refusal = url_refusal(url, AllowList.parse(runtime.settings.webhook_allowed_hosts))
    if refusal is not None:
        message = f"webhooks cannot be sent to this URL: {refusal.message}"
        raise invalid([FieldError(field="url", rule=refusal.rule, message=message)])


def _found(row: Any, subscription_id: str) -> Any:
    if row is None:
        raise _not_found(subscription_id)
    return row


def _not_found(subscription_id: str) -> Problem:
    return Problem(status=404, title="Webhook not found", detail=f"no webhook {subscription_id}")


def _box(runtime: ServiceRuntime) -> SecretBox:
    return SecretBox.from_key(runtime.settings.secrets_key)


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime
