"""`leadflow demo`: demo traffic to an intake (the dev stack runs it; works against any intake)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from shared.settings import get_settings


def demo(
    url: Annotated[str | None, typer.Option(help="intake base URL")] = None,
    rate: Annotated[float | None, typer.Option(help="events per second")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Post realistic demo traffic (buyers, students, procurement, tire kickers) to intake."""
    import signal

    from leadflow.devstack.demo_traffic import run_demo

    settings = get_settings()

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        return await run_demo(
            url or settings.url_of("intake"),
            settings.admin_key,
            rate_per_s=rate or settings.demo_rate,
            stop=stop,
            seed=seed,
        )

    sent = asyncio.run(main())
    typer.echo(f"demo sent {sent} events")
