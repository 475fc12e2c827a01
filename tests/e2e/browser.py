"""A real browser for the end-to-end tests: Debian's Chromium, driven by playwright.

Playwright's own browser download needs the open internet, which CI does not
have; Debian's `chromium` package comes from the package mirror, so it is
installed with apt-get when missing. Nothing here skips: without a browser the
tests fail and say why.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def ensure_chromium() -> Path:
    """Debian's Chromium, installed with apt-get (after an update if the first try fails)."""
    if CHROMIUM.exists():
        return CHROMIUM
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        raise RuntimeError(f"{CHROMIUM} is missing and there is no apt-get: install Debian's `chromium`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt_get, "install", "-y", "chromium"]
    result = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        subprocess.run([apt_get, "update"], env=env, capture_output=True, text=True, check=False)
        result = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not CHROMIUM.exists():
        raise RuntimeError(
            f"`apt-get install -y chromium` failed (exit {result.returncode}); the browser tests need "
            f"{CHROMIUM}:\n{(result.stdout + result.stderr)[-3000:]}"
        )
    return CHROMIUM


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    executable = await asyncio.to_thread(ensure_chromium)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(executable), args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()
