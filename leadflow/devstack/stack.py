"""`leadflow dev`: the whole system on one machine, from Python packages alone.

Starts (unless pointed elsewhere by LEADFLOW_KAFKA_BOOTSTRAP / LEADFLOW_DATABASE_URL)
Kafka (Apache Kafka where Java 17+ is here, its log under `<data_dir>/kafka`; else the
embedded in-memory broker, with a warning) and PostgreSQL, creates the topics, runs the migrations,
starts the four services as separate processes (restarting any that dies), runs
demo traffic, and prints where everything is. The state of the running stack is
written to `<data_dir>/dev.json`.

Ctrl-C or SIGTERM stops it in an order that loses nothing: the demo and intake first
(no new 202s), then a drain (`drain.py`) until every consumer group has caught up and
every outbox is empty, at most LEADFLOW_DEV_DRAIN_TIMEOUT_S, then the other services,
the broker and Postgres. A second Ctrl-C ends the drain at once. What a `leadflow dev`
killed outright left running on the same data directory is stopped or taken over
by the next start (`take_over`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import psutil

from leadflow.admin.migrations import migrate_all
from leadflow.devstack.broker import Broker, choose_broker, start_broker
from leadflow.devstack.drain import DRAINED, drain, report
from leadflow.devstack.ports import free_port, port_open
from leadflow.devstack.postgres import (
    Postgres,
    create_database,
    forget_dead_holders,
    start_postgres,
    wait_for_postgres,
)
from leadflow.devstack.processes import own_group_and_die_with_parent, stop_leftovers, stop_process
from shared.settings import SERVICES, ServiceName, Settings

READY_TIMEOUT_S = 90.0


@dataclass
class ServiceProcess:
    name: ServiceName
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    restarts: int = 0


@dataclass
class DevStack:
    settings: Settings
    env: dict[str, str]
    data_dir: Path
    broker: Broker | None = None
    postgres: Postgres | None = None
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    # --- infrastructure ----------------------------------------------------

    def take_over(self) -> None:
        """Stop the services a `leadflow dev` killed outright left behind (its dev.json says which);
        refuse to start beside one that is still running. (Its broker and Postgres are handled
        where they start: `apache_kafka.py`, `postgres.forget_dead_holders`.)"""
        path = self.data_dir / "dev.json"
        if not path.exists():
            return
        state = json.loads(path.read_text())
        if _is_leadflow(state.get("pid"), "dev"):
            raise RuntimeError(f"another leadflow dev (pid {state['pid']}) runs on {self.data_dir}")
        left = [p for pid in state.get("pids", {}).values() if (p := _is_leadflow(pid, "serve"))]
        if left:
            print(f"leadflow: stopping {len(left)} services left by a killed leadflow dev", flush=True)
            stop_leftovers(left, timeout_s=15)

    def start_infrastructure(self) -> None:
        self.take_over()
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        if "LEADFLOW_KAFKA_BOOTSTRAP" not in os.environ:
            self.broker = self.start_broker(logs / "broker.log")
            self.env.update(self.broker.client_env())
        if "LEADFLOW_DATABASE_URL" not in os.environ:
            if forget_dead_holders(self.data_dir / "postgres"):
                print("leadflow: taking over the Postgres a killed leadflow dev left running", flush=True)
            self.postgres = start_postgres(self.data_dir / "postgres")
            asyncio.run(create_database(self.postgres.admin_uri, "leadflow"))
            self.env["LEADFLOW_DATABASE_URL"] = self.postgres.database_url("leadflow")
        asyncio.run(wait_for_postgres(self.env["LEADFLOW_DATABASE_URL"]))
        given = {"kafka_bootstrap", "database_url", "kafka_idempotent_producer"}
        self.settings = Settings(
            kafka_bootstrap=self.env["LEADFLOW_KAFKA_BOOTSTRAP"],
            database_url=self.env["LEADFLOW_DATABASE_URL"],
            kafka_idempotent_producer=self.env.get("LEADFLOW_KAFKA_IDEMPOTENT_PRODUCER", "true") != "false",
            **self.settings.model_dump(exclude=given),
        )
        asyncio.run(migrate_all(self.settings))

    def start_broker(self, log: Path) -> Broker:
        """Apache Kafka keeping its log under `<data_dir>/kafka` (so accepted events survive a
        restart), or, without Java 17+, the in-memory embedded broker, with a warning."""
        kind, reason = choose_broker(self.settings.dev_broker)
        if kind == "embedded":
            print(
                f"leadflow: WARNING: using the embedded in-memory broker ({reason}). Events not yet "
                "consumed are lost when leadflow stops; install Java 17+ for Apache Kafka.",
                file=sys.stderr,
                flush=True,
            )
        port = int(self.settings.kafka_bootstrap.rsplit(":", 1)[1])
        if port_open(port):
            port = free_port()
        controller = port + 1 if not port_open(port + 1) else free_port()
        return start_broker(
            port, log=log.open("ab"), kind=kind, data_dir=self.data_dir / "kafka", controller_port=controller
        )

    # --- services ------------------------------------------------------------

    def start_service(self, name: ServiceName, restarts: int = 0) -> None:
        log = (self.data_dir / "logs" / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "leadflow", "serve", name],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=own_group_and_die_with_parent,
        )
        self.services[name] = ServiceProcess(name, process, log, restarts)
        self.write_state()

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        for service in self.services.values():
            name = service.name
            url = f"{self.settings.url_of(name)}/readyz"
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url, timeout=2.0).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} was not ready within {READY_TIMEOUT_S:.0f}s; see its log")
                time.sleep(0.2)

    def restart_dead_services(self) -> list[str]:
        restarted = []
        for name, service in list(self.services.items()):
            if service.process.poll() is not None:
                service.log.close()
                self.start_service(service.name, service.restarts + 1)
                restarted.append(f"{name} (exit {service.process.returncode})")
        return restarted

    def write_state(self) -> None:
        state = {
            "pid": os.getpid(),
            "admin_key": self.env["LEADFLOW_ADMIN_KEY"],
            "kafka_bootstrap": self.env.get("LEADFLOW_KAFKA_BOOTSTRAP"),
            "database_url": self.env.get("LEADFLOW_DATABASE_URL"),
            "topic_prefix": self.settings.topic_prefix,
            "urls": {name: self.settings.url_of(name) for name in SERVICES},
            "pids": {name: s.process.pid for name, s in self.services.items()},
            "restarts": {name: s.restarts for name, s in self.services.items()},
        }
        # It holds the admin key: readable by its owner alone, from the moment it exists.
        tmp = self.data_dir / "dev.json.tmp"
        tmp.unlink(missing_ok=True)
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(json.dumps(state, indent=2))
        tmp.replace(self.data_dir / "dev.json")

    def stop_intake(self) -> None:
        """Intake first: once it is down no new event gets a 202 (its in-flight requests finish)."""
        if intake := self.services.get("intake"):
            stop_process(intake.process, timeout_s=15)

    def drain(self, interrupted: Callable[[], bool]) -> None:
        """Wait for the consumers and outbox relays of the services still up; print how long it took."""
        print("leadflow: draining (Ctrl-C again stops at once)…", flush=True)
        result = asyncio.run(
            drain(
                self.settings,
                up=self.services_up,
                timeout_s=self.settings.dev_drain_timeout_s,
                interrupted=interrupted,
            )
        )
        durable = self.broker is None or self.broker.durable
        print(report(result, prefix=self.settings.topic_prefix, durable=durable), flush=True)

    async def services_up(self) -> set[ServiceName]:
        """The drained services running and ready: a drain cannot wait for the others."""
        async with httpx.AsyncClient(timeout=0.5) as client:

            async def ready(name: ServiceName) -> bool:
                service = self.services.get(name)
                if service is None or service.process.poll() is not None:
                    return False
                try:
                    return (await client.get(f"{self.settings.url_of(name)}/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

            answers = await asyncio.gather(*(ready(name) for name in DRAINED))
        return {name for name, ok in zip(DRAINED, answers, strict=True) if ok}

    def stop(self) -> None:
        for service in self.services.values():
            with contextlib.suppress(ProcessLookupError):
                service.process.send_signal(signal.SIGTERM)
        for service in self.services.values():
            stop_process(service.process, timeout_s=15)
            service.log.close()
        if self.broker:
            self.broker.stop()
        if self.postgres:
            self.postgres.stop()
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / "dev.json").unlink()


def _is_leadflow(pid: object, command: str) -> psutil.Process | None:
    """The process `pid` if it is alive and runs `leadflow <command>` (a pid may have been reused)."""
    if not isinstance(pid, int):
        return None
    try:
        process = psutil.Process(pid)
        cmdline = process.cmdline()
        alive = process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return None
    runs = command in cmdline and any("leadflow" in part for part in cmdline)
    return process if alive and runs and pid != os.getpid() else None


def admin_key(settings: Settings, data_dir: Path) -> str:
    """The env's key, else one generated once and kept in the data directory."""
    if "LEADFLOW_ADMIN_KEY" in os.environ:
        return settings.admin_key
    path = data_dir / "admin-key"
    if not path.exists():
        path.write_text(f"lf_admin_{secrets.token_urlsafe(24)}")
        path.chmod(0o600)
    return path.read_text().strip()


def run_dev(settings: Settings) -> int:
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "LEADFLOW_ADMIN_KEY": admin_key(settings, data_dir),
        "LEADFLOW_DATA_DIR": str(data_dir),
    }
    env.setdefault("LEADFLOW_CONFIG_DIR", str(settings.config_dir.resolve()))
    stack = DevStack(settings=settings, env=env, data_dir=data_dir)
    signals = 0

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal signals
        signals += 1

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        print("leadflow: starting broker and Postgres…", flush=True)
        stack.start_infrastructure()
        for name in settings.dev_service_names:
            stack.start_service(name)
        stack.wait_until_ready()
        print_banner(stack)
        demo = start_demo(stack) if settings.demo else None
        while not signals:
            for line in stack.restart_dead_services():
                print(f"leadflow: restarted {line}", flush=True)
            time.sleep(0.5)
        print("leadflow: stopping intake…", flush=True)
        if demo:
            stop_process(demo)
        stack.stop_intake()
        stack.drain(interrupted=lambda: signals > 1)
    except RuntimeError as exc:
        print(f"leadflow: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        print("leadflow: stopping…", flush=True)
        stack.stop()
    return 0


def start_demo(stack: DevStack) -> subprocess.Popen[bytes]:
    log = (stack.data_dir / "logs" / "demo.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "leadflow", "demo", "--url", stack.settings.url_of("intake")],
        env=stack.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=own_group_and_die_with_parent,
    )


def print_banner(stack: DevStack) -> None:
    s = stack.settings
    lines = [
        "",
        "leadflow is running.",
        f"  dashboard {s.url_of('feedback')}/#key={stack.env['LEADFLOW_ADMIN_KEY']}",
        f"  intake    {s.url_of('intake')}/docs     POST /v1/events",
        f"  scoring   {s.url_of('scoring')}/docs     GET  /v1/leads",
        f"  handoff   {s.url_of('handoff')}/docs     GET  /v1/handoffs",
        f"  feedback  {s.url_of('feedback')}/docs     GET  /v1/metrics/return-rate",
        f"  kafka     {stack.env['LEADFLOW_KAFKA_BOOTSTRAP']}"
        + (f"  {stack.broker.description}" if stack.broker else "  (external)"),
        f"  postgres  {stack.env['LEADFLOW_DATABASE_URL']}",
        f"  admin key {stack.env['LEADFLOW_ADMIN_KEY']}",
        f"  logs      {stack.data_dir / 'logs'}",
        "  demo traffic " + ("on (LEADFLOW_DEMO=0 turns it off)" if s.demo else "off"),
        *[
            f"  not started: {name} (LEADFLOW_DEV_SERVICES)"
            for name in SERVICES
            if name not in stack.services
        ],
        "Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)
