"""The API key admin API every service serves (scope `admin`): list, create, revoke, rotate.

Keys live in the shared `auth` schema, so any service answers for all of them; a revocation
made through one instance is followed by every other within `LEADFLOW_API_KEY_CHANGES_POLL_S`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import api_keys
from shared.api_keys import KeyRecord
from shared.auth import Principal, Scope, require
from shared.problems import Problem
from shared.rates import parse_window
from shared.runtime import ServiceRuntime

router = APIRouter(prefix="/v1/keys", tags=["keys"])
Admin = Annotated[Principal, require(Scope.ADMIN)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No active key with this id."}}


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="who or what uses the key")
    scopes: list[Scope] = Field(min_length=1)
    owner: str | None = Field(default=None, max_length=200, description="the rep a handoffs key belongs to")
    expires_in: str | None = Field(default=None, description="e.g. 24h, 30d, 2w; none: does not expire")
    public: bool = Field(
        default=False,
        description="A browser write key: it is in every visitor's page, so it may only send events "
        "(scopes exactly ['events:write']) and only from `allowed_origins`.",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="A public key's origins, e.g. https://www.example.com (scheme, host, port)",
        examples=[["https://www.example.com"]],
    )

    @field_validator("expires_in")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is not None:
            parse_window(value)
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return [origin_of(origin) for origin in value]

    @model_validator(mode="after")
    def _public_key_sends_events_only(self) -> KeyCreate:
        if self.public and set(self.scopes) != {Scope.EVENTS_WRITE}:
            raise ValueError("a public key's scopes are exactly ['events:write']")
        if self.public and not self.allowed_origins:
            raise ValueError("a public key needs at least one allowed origin")
        if self.allowed_origins and not self.public:
            raise ValueError("allowed_origins are for public keys only")
        return self


def origin_of(value: str) -> str:
    """An origin as browsers send it: `scheme://host[:port]`, lower case, nothing after."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an origin such as https://www.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{value!r}: an origin has no path, query or user")
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        raise ValueError(f"{value!r}: not a valid port") from None
    return f"{parts.scheme}://{parts.hostname}{port}"


class KeyRotate(BaseModel):
    grace_s: int = Field(default=0, ge=0, le=7 * 86400, description="the old key works this long more")


class KeyPublic(BaseModel):
    key_id: str
    name: str
    scopes: list[str]
    owner: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    rotated_to: str | None = Field(description="the key a rotation replaced this one with")
    public: bool = False
    allowed_origins: list[str] | None = None
    status: str = Field(description="active, expired or revoked")


class KeyCreated(KeyPublic):
    key: str = Field(description="The key itself. Shown only now; stored hashed.")


def _public(record: KeyRecord) -> KeyPublic:
    return KeyPublic(**vars(record), status=record.status(datetime.now(UTC)))


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


def _engine(request: Request) -> AsyncEngine:
    return _runtime(request).engine


@router.get("", response_model=list[KeyPublic])
async def list_keys(request: Request, _: Admin) -> list[KeyPublic]:
    """Every API key, revoked and expired ones too (never the keys themselves)."""
    return [_public(r) for r in await api_keys.list_keys(_engine(request))]


@router.post("", response_model=KeyCreated, status_code=201)
async def create_key(body: KeyCreate, request: Request, _: Admin) -> KeyCreated:
    """Create a key with scopes and, optionally, an expiry; the key is in this answer only."""
    expires_at = datetime.now(UTC) + parse_window(body.expires_in) if body.expires_in else None
    key, record = await api_keys.create_key(
        _engine(request),
        name=body.name,
        scopes=body.scopes,
        owner=body.owner,
        expires_at=expires_at,
        public=body.public,
        allowed_origins=body.allowed_origins,
    )
    return KeyCreated(**_public(record).model_dump(), key=key)


@router.post("/{key_id}/revoke", response_model=KeyPublic, responses=NOT_FOUND)
async def revoke_key(key_id: str, request: Request, _: Admin) -> KeyPublic:
    """Revoke a key: every instance refuses it within a second."""
    record = await api_keys.revoke_key(_engine(request), key_id)
    _runtime(request).key_store.forget(key_id)
    if record is None:
        raise Problem(status=404, title="API key not found", detail=f"no key {key_id}")
    return _public(record)


@router.post("/{key_id}/rotate", response_model=KeyCreated, status_code=201, responses=NOT_FOUND)
async def rotate_key(key_id: str, request: Request, _: Admin, body: KeyRotate | None = None) -> KeyCreated:
    """A new key with the same name, scopes, owner and expiry; the old one ends now or after `grace_s`."""
    grace = timedelta(seconds=body.grace_s if body else 0)
    rotated = await api_keys.rotate_key(_engine(request), key_id, grace=grace)
    _runtime(request).key_store.forget(key_id)
    if rotated is None:
        raise Problem(status=404, title="API key not found", detail=f"no active key {key_id}")
    key, record = rotated
    return KeyCreated(**_public(record).model_dump(), key=key)
