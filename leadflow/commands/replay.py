"""`leadflow replay`: rewind a consumer group."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from shared.settings import get_settings


def replay(
    topic: Annotated[str, typer.Argument(help="topic name without the prefix, e.g. lead.events")],
    group: Annotated[str | None, typer.Option(help="consumer group to rewind")] = None,
    service: Annotated[
        str | None, typer.Option(help="shortcut for that service's group, e.g. scoring")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="ISO time, e.g. 2026-11-01T00:00:00Z; default: the beginning")
    ] = None,
    force: Annotated[bool, typer.Option(help="rewind even when the topic has lost history")] = False,
) -> None:
    """Rewind a consumer group so its service re-reads a topic (stop the service first).

    Refuses when the topic lost history: on a partition where the group has committed
    offset C, the partition now ends before C (fewer messages than the group read) or
    begins after C (messages it had not read are gone). --force rewinds anyway.
    """
    from datetime import datetime

    from leadflow.admin.replay import HistoryLost
    from leadflow.admin.replay import replay as run_replay
    from shared.topics import Topics

    settings = get_settings()
    if (group is None) == (service is None):
        raise typer.BadParameter("give exactly one of --group and --service")
    topics = Topics(settings.topic_prefix)
    group_id = group or topics.group(str(service))
    start = datetime.fromisoformat(since) if since else None
    try:
        offsets = asyncio.run(
            run_replay(settings, topic=topics.name(topic), group=group_id, since=start, force=force)
        )
    except HistoryLost as refused:
        typer.echo(str(refused), err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"{group_id} will re-read {topic} from " + ", ".join(f"p{p}@{o}" for p, o in sorted(offsets.items()))
    )
