"""`shared.http.FastRoutes`: a hot POST route answered from the platform layer behaves as the
declared route would: its refusals are the app's problem+json, a request it leaves goes to the
declared route with its body intact, and the request is counted under the declared route."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel
from starlette.responses import Response

from shared.http import FastRoutes, Platform
from shared.metrics import HTTP_REQUESTS
from shared.problems import Problem, install_problem_handlers


class Note(BaseModel):
    text: str


router = APIRouter(prefix="/v1")


@router.post("/notes", status_code=201)
async def declared(note: Note) -> dict[str, str]:
    return {"by": "declared", "text": note.text}


async def fast(request: Request) -> Response | None:
    body = await request.body()
    if body == b'{"text": "refuse"}':
        raise Problem(status=409, title="Refused fast")
    if body == b'{"text": "fast"}':
        return Response(b'{"by": "fast"}', status_code=201, media_type="application/json")
    return None  # left to the declared route


def app() -> FastAPI:
    built = FastAPI()
    install_problem_handlers(built)
    built.add_middleware(FastRoutes, routes={"/v1/notes": fast}, declared_in=[router])
    built.add_middleware(Platform, max_bytes=1024)
    built.include_router(router)
    return built


def post(body: bytes) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app())
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            headers = {"content-type": "application/json"}
            return await client.post("/v1/notes", content=body, headers=headers)

    return asyncio.run(send())


def counted(status: str) -> float:
    return float(HTTP_REQUESTS.labels("POST", "/v1/notes", status)._value.get())


def test_the_fast_route_answers_and_is_counted_under_the_declared_route() -> None:
    before = counted("201")
    answer = post(b'{"text": "fast"}')
    assert (answer.status_code, answer.json()) == (201, {"by": "fast"})
    assert answer.headers["x-trace-id"]  # still inside the platform layer
    assert counted("201") == before + 1


def test_what_the_fast_route_raises_is_the_apps_problem_json() -> None:
    answer = post(b'{"text": "refuse"}')
    assert answer.status_code == 409
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["title"] == "Refused fast"


def test_a_request_left_by_the_fast_route_reaches_the_declared_route_with_its_body() -> None:
    answer = post(b'{"text": "slow"}')
    assert (answer.status_code, answer.json()) == (201, {"by": "declared", "text": "slow"})
    refused = post(b'{"words": 1}')  # the declared route's own validation, as FastAPI answers it
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
