"""Server processes that cannot outlive the benchmark.

``run.py`` stops every server in ``finally`` blocks; ``tethered`` covers the case those
never run (the benchmark killed with SIGKILL): the kernel sends the child SIGTERM when
its parent dies (``PR_SET_PDEATHSIG`` through util-linux ``setpriv``, which then execs
the command, so the pid is the server's own, as py-spy needs).
"""

from __future__ import annotations

import shutil
import signal
import subprocess

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
