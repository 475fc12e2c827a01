"""Child processes of the dev stack: tied to their parent's life, stopped politely then firmly.

Children run in process groups of their own, so a Ctrl-C in the terminal reaches
`leadflow dev` alone, which then stops them in its order (intake, drain, the rest).
A parent killed outright cannot do that: its children get SIGTERM from the kernel
(`die_with_parent`), but a daemon (the postmaster pg_ctl starts) does not, and a
JVM may still be shutting down when the next start comes; `stop_leftovers` finds
those by their command line and stops them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
from collections.abc import Callable

import psutil


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when its parent dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def own_group_and_die_with_parent() -> None:
    """preexec_fn of the stack's children: out of the terminal's process group, and `die_with_parent`."""
    os.setpgid(0, 0)
    die_with_parent()


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
        process.send_signal(
            signal.SIGCONT
        )  # a stopped process (SIGSTOP, Ctrl-Z) acts on it only once resumed
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait()


def leftovers(matches: Callable[[list[str]], bool]) -> list[psutil.Process]:
    """Live processes (not this one) whose command line `matches`."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            if process.pid == os.getpid() or process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if matches(process.info["cmdline"] or []):
                found.append(process)
    return found


def stop_leftovers(processes: list[psutil.Process], timeout_s: float = 30.0) -> None:
    """SIGTERM (and SIGCONT), wait up to `timeout_s`, then SIGKILL what is still there."""
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
            process.resume()
    _, alive = psutil.wait_procs(processes, timeout=timeout_s)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=5.0)
