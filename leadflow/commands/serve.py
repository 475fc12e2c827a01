"""`leadflow serve <service>`: one service in this process, the way production runs it."""

from __future__ import annotations

import gc
import importlib
from typing import Annotated

import typer

from shared.settings import SERVICES, ServiceName, get_settings


def serve(service: Annotated[str, typer.Argument(help="intake | scoring | handoff | feedback")]) -> None:
    """Run one service (HTTP API, consumer, outbox relay and timers) in this process."""
    import uvicorn

    from shared.logging import configure_logging

    if service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    name: ServiceName = service
    settings = get_settings()
    configure_logging(service=name, level=settings.log_level, json=settings.json_logs)
    module = importlib.import_module(f"services.{name}.app")
    web = module.create(settings)
    # What exists now (modules, models, config) lives as long as the process: keep the
    # collector from rescanning it, which would otherwise show as latency spikes.
    gc.collect()
    gc.freeze()
    config = uvicorn.Config(
        web,
        host=settings.host,
        port=settings.port_of(name),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        # httptools: a third less CPU per request than h11. Its 400s "under load" came from the
        # bench client sending Content-Length twice, which llhttp rightly refuses.
        http="httptools",
        loop="uvloop",
    )
    uvicorn.Server(config).run()
