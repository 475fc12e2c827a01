"""`leadflow dev`: the whole system on one machine, from Python packages alone.

Starts (unless pointed elsewhere by LEADFLOW_KAFKA_BOOTSTRAP / LEADFLOW_DATABASE_URL)
Kafka (Apache Kafka where Java 17+ is here, its log under `<data_dir>/kafka`; else the
embedded in-memory broker, with a warning) and PostgreSQL, creates the topics, runs the migrations,
starts the four services as separate processes (restarting any that dies), runs
demo traffic, and prints where everything is. Ctrl-C or SIGTERM stops it all.
The state of the running stack is written to `<data_dir>/dev.json`.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from leadflow.admin.migrations import migrate_all
from leadflow.devstack.broker import Broker, choose_broker, start_broker
from leadflow.devstack.ports import free_port, port_open
from leadflow.devstack.postgres import Postgres, create_database, start_postgres, wait_for_postgres
from leadflow.devstack.processes import die_with_parent, stop_process
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

    def start_infrastructure(self) -> None:
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        if "LEADFLOW_KAFKA_BOOTSTRAP" not in os.environ:
            self.broker = self.start_broker(logs / "broker.log")
            self.env.update(self.broker.client_env())
        if "LEADFLOW_DATABASE_URL" not in os.environ:
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
            preexec_fn=die_with_parent,
        )
        self.services[name] = ServiceProcess(name, process, log, restarts)
        self.write_state()

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        for name in SERVICES:
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
        tmp = self.data_dir / "dev.json.tmp"
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.data_dir / "dev.json")

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
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        print("leadflow: starting broker and Postgres…", flush=True)
        stack.start_infrastructure()
        for name in SERVICES:
            stack.start_service(name)
        stack.wait_until_ready()
        print_banner(stack)
        demo = start_demo(stack) if settings.demo else None
        while not stopping:
            for line in stack.restart_dead_services():
                print(f"leadflow: restarted {line}", flush=True)
            time.sleep(0.5)
        if demo:
            stop_process(demo)
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
        preexec_fn=die_with_parent,
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
        "Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)
