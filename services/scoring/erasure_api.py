"""`/v1/erasures`: erase a person (GDPR Art. 17) and follow the request until every service confirmed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from services.scoring import erasure_store
from services.scoring.erasure import progress, request_state
from services.scoring.erasures import request_erasure
from shared.auth import Principal, Scope, require
from shared.problems import Problem
from shared.runtime import ServiceRuntime

router = APIRouter(prefix="/v1", tags=["privacy"])
PrivacyAdmin = Annotated[Principal, require(Scope.PRIVACY_ADMIN)]
PROBLEM = {"description": "Problem (application/problem+json)"}


class ErasureCreate(BaseModel):
    email: str | None = Field(default=None, max_length=254, description="Case and spaces ignored.")
    lead_id: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _one_identity(self) -> ErasureCreate:
        if not (self.email and self.email.strip()) and not self.lead_id:
            raise ValueError("give the person's email or a lead_id")
        return self


class ErasureAccepted(BaseModel):
    request_id: str
    state: str


class ServiceState(BaseModel):
    state: str = Field(description="pending | done")
    leads_confirmed: int
    leads: int
    done_at: datetime | None


class ErasurePublic(BaseModel):
    request_id: str
    state: str = Field(description="in_progress | completed")
    requested_at: datetime
    completed_at: datetime | None
    lead_ids: list[str] = Field(description="Every lead of the person, merged ones included.")
    keys_destroyed_at: datetime = Field(description="From then on their events read as erased everywhere.")
    services: dict[str, ServiceState]


@router.post("/erasures", status_code=202, response_model=ErasureAccepted, responses={422: PROBLEM})
async def post_erasure(body: ErasureCreate, request: Request, principal: PrivacyAdmin) -> JSONResponse:
    """Erase a person by email or lead id, everywhere; answered at once, confirmed per service."""
    runtime: ServiceRuntime = request.app.state.runtime
    async with runtime.unit_of_work() as uow:
        request_id = await request_erasure(
            uow, runtime.vault, email=body.email, lead_id=body.lead_id, requested_by=principal.key_id
        )
    answer = ErasureAccepted(request_id=request_id, state="in_progress")
    return JSONResponse(
        answer.model_dump(), status_code=202, headers={"Location": f"/v1/erasures/{request_id}"}
    )


@router.get("/erasures/{request_id}", response_model=ErasurePublic, responses={404: PROBLEM})
async def get_erasure(request_id: str, request: Request, _: PrivacyAdmin) -> ErasurePublic:
    """An erasure request: each service's progress, with timestamps, until `completed`."""
    runtime: ServiceRuntime = request.app.state.runtime
    async with runtime.engine.connect() as conn:
        row, confirmations = await erasure_store.request_of(conn, request_id)
    if row is None:
        raise Problem(
            status=404, title="Erasure request not found", detail=f"no erasure request {request_id}"
        )
    services = progress(
        row.lead_ids,
        [(c.service, c.lead_id, c.confirmed_at) for c in confirmations],
        requested_at=row.requested_at,
    )
    return ErasurePublic(
        request_id=row.request_id,
        state="completed" if row.completed_at else request_state(services),
        requested_at=row.requested_at,
        completed_at=row.completed_at,
        lead_ids=row.lead_ids,
        keys_destroyed_at=row.requested_at,
        services={
            s.service: ServiceState(
                state=s.state, leads_confirmed=s.leads_confirmed, leads=s.leads, done_at=s.done_at
            )
            for s in services
        },
    )
