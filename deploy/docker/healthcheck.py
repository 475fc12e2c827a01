"""Container HEALTHCHECK: GET /healthz of the service this container serves.

The image runs every service, so the service is read from the command line of
PID 1 (`leadflow serve <name>`, possibly under docker-init); its port comes from
the same settings the service reads. A container not serving (`leadflow migrate`)
is healthy by definition.
"""

from __future__ import annotations

import sys
import urllib.request
from itertools import pairwise
from pathlib import Path

from shared.settings import SERVICES, ServiceName, Settings


def served_service(cmdline: list[str]) -> ServiceName | None:
    for arg, following in pairwise(cmdline):
        if arg == "serve" and following in SERVICES:
            return following
    return None


def main() -> int:
    cmdline = Path("/proc/1/cmdline").read_bytes().decode().split("\0")
    service = served_service(cmdline)
    if service is None:
        return 0
    port = Settings().port_of(service)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=4) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"{service} /healthz on port {port}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
