"""The ops dashboard: a static page at `/` whose script reads the metrics API.

The page and its assets need no API key: they hold no data. The script takes
the key from the URL fragment (or asks for it) and sends it with every call to
`/v1/...`, so the API's scopes still decide who sees the figures.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from shared.problems import Problem

FOLDER = Path(__file__).with_name("dashboard")
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Everything is served from here; the only outside call the page makes is to this service's API.
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
ASSET_HEADERS = {"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"}

router = APIRouter(tags=["dashboard"])


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    """The dashboard page."""
    return FileResponse(FOLDER / "index.html", media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("/dashboard/{name}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    """A script or stylesheet of the page: only files directly in the dashboard folder."""
    path = FOLDER / name
    media_type = MEDIA_TYPES.get(path.suffix)
    if media_type is None or path.parent != FOLDER or path.name != name or not path.is_file():
        raise Problem(status=404, title="Not Found")
    return FileResponse(path, media_type=media_type, headers=ASSET_HEADERS)
