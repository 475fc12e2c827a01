"""analytics.js in a browser, sending to leadflow: the real `@segment/analytics-next` (installed
from the committed lockfile in tests/e2e/browser_sdk/ by `npm ci`, bundled with esbuild) in a
page served on localhost, driven by playwright in Debian's Chromium, pointed at intake with a
public write key whose allowed origin is that page's; the same page from another origin is
refused."""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from leadflow.devstack.ports import free_port
from shared.envelope import Envelope
from shared.settings import Settings
from tests.conftest import isolated_settings
from tests.e2e.browser import chromium
from tests.support import ADMIN, eventually, loopback_client, opened, service_ready, start_service, tap

SDK = Path(__file__).with_name("browser_sdk")
PAGE = """<!doctype html><html><head><title>leadflow pricing</title>
<script src="/analytics.js"></script></head><body><h1>Pricing</h1></body></html>"""


ESBUILD = SDK / "node_modules" / ".bin" / "esbuild"


def npm_installed() -> None:
    """`npm ci` from the lockfile when node_modules is missing, older than it or without the
    bundler (npm itself from Debian's packages when absent), so a fresh clone needs nothing done
    by hand. Once in CI an `npm ci` reported success and left esbuild out: it is tried once more."""
    marker = SDK / "node_modules" / ".package-lock.json"
    lock = SDK / "package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime and ESBUILD.exists():
        return
    if shutil.which("npm") is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        subprocess.run(["apt-get", "install", "-y", "npm"], env=env, capture_output=True, check=True)
    for _ in range(2):
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=SDK, capture_output=True, check=True
        )
        if ESBUILD.exists():
            return
    raise AssertionError(f"npm ci left {ESBUILD} missing:\n{done.stdout.decode()}\n{done.stderr.decode()}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page and the bundled analytics.js, in a folder to serve."""
    npm_installed()
    folder = tmp_path_factory.mktemp("site")
    bundle = [str(ESBUILD), "entry.js", "--bundle", "--format=iife", f"--outfile={folder / 'analytics.js'}"]
    subprocess.run(bundle, cwd=SDK, capture_output=True, check=True)
    (folder / "index.html").write_text(PAGE)
    return folder


@contextmanager
def served(folder: Path) -> Iterator[int]:
    port = free_port()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
async def intake(
    kafka_bootstrap: str, postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Settings, str]]:
    settings = await isolated_settings(kafka_bootstrap, postgres_admin_url, tmp_path_factory.mktemp("data"))
    process, url = start_service("intake", settings, LEADFLOW_PUBLIC_ORIGINS_TTL_S="0.2")
    try:
        await eventually(lambda: service_ready(url), timeout=60)
        yield settings, url
    finally:
        process.terminate()
        process.wait(timeout=30)


async def public_key(intake_url: str, origin: str) -> str:
    async with loopback_client() as client:
        created = await client.post(
            f"{intake_url}/v1/keys",
            json={"name": "website", "scopes": ["events:write"], "public": True, "allowed_origins": [origin]},
            headers=ADMIN,
        )
    return str(created.json()["key"])


SEND = """async ({key, host, email}) => {
  const [analytics] = await window.loadLeadflowAnalytics(key, host)
  await analytics.page('Pricing')
  await analytics.track('Demo Requested', {form_id: 'demo'})
  await analytics.identify('user-7', {email, name: 'Grace Hopper', title: 'VP of Marketing'})
  return analytics.user().anonymousId()
}"""


async def test_analytics_js_on_an_allowed_origin_sends_to_intake_and_another_origin_is_refused(
    site: Path, intake: tuple[Settings, str]
) -> None:
    settings, intake_url = intake
    with served(site) as port, served(site) as other_port:
        origin = f"http://localhost:{port}"
        key = await public_key(intake_url, origin)
        host = intake_url.removeprefix("http://") + "/v1"
        async with chromium() as browser, tap(settings, settings.topic_prefix + "lead.events") as events:
            page = await browser.new_page()
            await page.goto(f"{origin}/index.html")
            email = f"grace.{uuid.uuid4().hex[:8]}@northwind-software.example"
            anonymous_id = await page.evaluate(SEND, {"key": key, "host": host, "email": email})
            types = {"page_view", "demo_request", "identify"}

            async def arrived_from_the_page() -> list[Envelope] | None:  # sealed on the topic: opened
                found = [
                    e
                    for e in await opened(settings, events.envelopes("lead.event"))
                    if e.data["anonymous_id"] == anonymous_id and e.data["type"] in types
                ]
                return found if len(found) >= 3 else None

            arrived = await eventually(arrived_from_the_page, timeout=20)
            assert {e.data["type"] for e in arrived} == types
            identified = next(e for e in arrived if e.data["type"] == "identify")
            assert identified.data["email"] == email and identified.data["traits"]["first_name"] == "Grace"

            refused: list[str] = []
            stranger = await browser.new_page()
            stranger.on("console", lambda message: refused.append(message.text))
            await stranger.goto(f"http://127.0.0.1:{other_port}/index.html")
            other_id = await stranger.evaluate(SEND, {"key": key, "host": host, "email": email})
            await eventually(lambda: any("CORS" in text for text in refused), timeout=15)
            await asyncio.sleep(1.0)
            seen = await opened(settings, events.envelopes("lead.event"))
            assert not [e for e in seen if e.data["anonymous_id"] == other_id]
