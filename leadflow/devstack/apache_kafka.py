"""Apache Kafka for the dev stack, the tests and the bench: a real KRaft broker, no Docker.

Its jars come from Maven Central (a one-dependency pom resolved with `mvn
dependency:copy-dependencies`), cached outside the repository under
`$XDG_CACHE_HOME/leadflow/kafka-<version>/` (default `~/.cache`), and run with
`java` as a single combined broker and controller. Given a log directory that
was formatted before, the broker starts on its existing data, so what it
accepted survives a restart.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO

from leadflow.devstack.ports import port_open
from leadflow.devstack.processes import leftovers, own_group_and_die_with_parent, stop_leftovers, stop_process

# One version for tests, `leadflow dev`, the bench, docker-compose.yml and deploy/ (a test
# checks that they agree).
KAFKA_VERSION = "4.4.0"
SCALA_VERSION = "2.13"
MIN_JAVA = 17  # Kafka 4.x brokers need Java 17 or newer
STARTED = "Kafka Server started"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.leadflow</groupId>
  <artifactId>apache-kafka</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>2.24.3</version>
    </dependency>
  </dependencies>
</project>
"""

# Broker logs at INFO to its stdout (the caller's log file); the start-up line is awaited.
_LOG4J2 = """status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""


class KafkaUnavailable(RuntimeError):
    """Apache Kafka cannot run here (no Java 17+, no Maven, or the jars could not be fetched)."""


def java_major_version(java: str = "java") -> int | None:
    """The major version of `java` on PATH, or None without one."""
    if shutil.which(java) is None:
        return None
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    found = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not found:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major  # "1.8" is Java 8


def why_unavailable() -> str | None:
    """Why Apache Kafka cannot be started here, or None when it can."""
    java = java_major_version()
    if java is None:
        return "no java on PATH"
    if java < MIN_JAVA:
        return f"java {java} is older than {MIN_JAVA}"
    if not cached_jars().is_dir() and shutil.which("mvn") is None:
        return "no mvn on PATH to fetch the Kafka jars"
    return None


def cache_dir(version: str = KAFKA_VERSION) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "leadflow" / f"kafka-{version}"


def cached_jars(version: str = KAFKA_VERSION) -> Path:
    return cache_dir(version) / "libs"


def kafka_jars(version: str = KAFKA_VERSION, *, timeout_s: float = 600.0) -> Path:
    """The folder of the broker's jars, fetched from Maven Central on first use.

    A file lock makes concurrent first uses (two test sessions, a test and `leadflow dev`)
    fetch once; the folder appears whole or not at all.
    """
    libs = cached_jars(version)
    if libs.is_dir():
        return libs
    if shutil.which("mvn") is None:
        raise KafkaUnavailable("mvn is needed once to fetch the Apache Kafka jars")
    home = cache_dir(version)
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if libs.is_dir():
            return libs
        with tempfile.TemporaryDirectory(dir=home) as work:
            pom = Path(work) / "pom.xml"
            pom.write_text(_POM.format(version=version, scala=SCALA_VERSION))
            fetched = Path(work) / "libs"
            result = subprocess.run(
                ["mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
                 f"-DoutputDirectory={fetched}", "-DincludeScope=runtime"],
                capture_output=True, text=True, timeout=timeout_s, check=False,
            )  # fmt: skip
            if result.returncode != 0:
                tail = (result.stdout + result.stderr)[-2000:]
                raise KafkaUnavailable(f"could not fetch Apache Kafka {version} with mvn:\n{tail}")
            (home / "log4j2.properties").write_text(_LOG4J2)
            fetched.rename(libs)
    return libs


def cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, base64url without padding, not starting with "-".

    One id in 64 would start with "-", which kafka-storage's argument parser takes for an
    option ("--cluster-id: expected one argument"); Kafka's own Uuid.randomUuid draws again
    for the same reason.
    """
    while True:
        drawn = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not drawn.startswith("-"):
            return drawn


def server_properties(*, port: int, controller_port: int, log_dir: Path) -> str:
    """One node that is broker and controller, on loopback; internal topics of one replica.

    `offsets.topic.num.partitions` is small so the first consumer group starts in a second
    rather than after creating 50 partitions; the rest are Kafka's defaults.
    """
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={log_dir}",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=6",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "",
        ]
    )


def start_apache_kafka(
    *,
    port: int,
    controller_port: int,
    data_dir: Path,
    log: IO[bytes] | int = subprocess.DEVNULL,
    heap: str = "512m",
    timeout_s: float = 90.0,
) -> subprocess.Popen[bytes]:
    """Start a broker keeping its data in `data_dir/logs`; returns once it serves clients.

    A `data_dir` that holds a formatted log directory is reused as it is (its cluster id kept).
    """
    if reason := why_unavailable():
        raise KafkaUnavailable(reason)
    libs = kafka_jars()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_dir = data_dir / "logs"
    config = data_dir / "server.properties"
    # A broker on this log directory whose parent was killed holds the directory's lock until
    # it has shut down (SIGTERM from die_with_parent): stop it, or this one could not start.
    if left := leftovers(lambda cmdline: "kafka.Kafka" in cmdline and str(config) in cmdline):
        stop_leftovers(left)
        _say(log, f"stopped the broker left running on {log_dir} (pid {', '.join(str(p.pid) for p in left)})")
    config.write_text(server_properties(port=port, controller_port=controller_port, log_dir=log_dir))
    java = ["java", f"-Dlog4j2.configurationFile={cache_dir() / 'log4j2.properties'}", "-cp", f"{libs}/*"]
    if not (log_dir / "meta.properties").exists():
        formatted = subprocess.run(
            [*java, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id()}", "-c", str(config)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if formatted.returncode != 0:
            raise KafkaUnavailable(f"formatting the Kafka log directory failed: {formatted.stderr[-1000:]}")
    out = data_dir / "broker.out"
    process = subprocess.Popen(
        [*java, f"-Xmx{heap}", f"-Xms{heap}", "kafka.Kafka", str(config)],
        stdout=out.open("wb"),
        stderr=subprocess.STDOUT,
        preexec_fn=own_group_and_die_with_parent,
    )
    try:
        _wait_until_started(process, out, port, timeout_s)
    except BaseException:
        stop_process(process)
        raise
    finally:
        _append(out, log)
    return process


def _wait_until_started(process: subprocess.Popen[bytes], out: Path, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not (port_open(port) and STARTED in out.read_text(errors="replace")):
        if process.poll() is not None:
            tail = out.read_text(errors="replace")[-2000:]
            raise KafkaUnavailable(f"Apache Kafka exited with code {process.returncode}:\n{tail}")
        if time.monotonic() > deadline:
            raise KafkaUnavailable(f"Apache Kafka did not start within {timeout_s:.0f}s; see {out}")
        time.sleep(0.1)


def _append(out: Path, log: IO[bytes] | int) -> None:
    """Say where the broker's own log is, in the caller's log."""
    _say(log, f"Apache Kafka {KAFKA_VERSION}: broker log in {out}")


def _say(log: IO[bytes] | int, line: str) -> None:
    if not isinstance(log, int):
        with contextlib.suppress(OSError):
            log.write(f"{line}\n".encode())
            log.flush()
