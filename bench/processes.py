"""Server processes that cannot outlive the benchmark.

``run.py`` stops every server in ``finally`` blocks; ``tethered`` covers the case those
never run (the benchmark killed with SIGKILL): the kernel sends the child SIGTERM when
its parent dies (``PR_SET_PDEATHSIG`` through util-linux ``setpriv``, which then execs
the command, so the pid is the server's own, as py-spy needs). ``cpu_seconds`` and
``wait_idle`` read what a server is doing from /proc, without asking it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

SETPRIV = shutil.which("setpriv")


def tethered(command: list[str]) -> list[str]:
    if SETPRIV is None:
        return command
    return [SETPRIV, "--pdeathsig", "TERM", "--", *command]


def stop(process: subprocess.Popen[bytes] | None, timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; a no-op for an exited process."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads so far (proc(5))."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pid: int, timeout: float, cores: float = 0.05, window: float = 1.0) -> bool:
    """Block until ``pid`` used under ``cores`` of CPU over one ``window``; False on timeout.

    rix builds WADO-RS metadata in a background thread after a load; measuring before
    it ends would charge that work to whichever request happens to run beside it.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(window)
        if cpu_seconds(pid) - before < cores * window:
            return True
    return False
