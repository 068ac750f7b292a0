"""Loopback ports and the private network namespace the benchmark runs in.

Orthanc 1.10 has no bind-address option (its DICOM and HTTP servers listen on every
interface, and ``DicomAlwaysAllowStore`` would let anyone on the network store into it),
nor has DCMTK 3.6.7's storescp. So ``run.py`` re-executes itself under ``unshare --net``
(root only): a fresh namespace whose only interface is loopback, shared by both servers,
the DCMTK peers and the clients, and unreachable from outside. rix binds 127.0.0.1 anyway.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

ISOLATED_ENV = "RIX_BENCH_NETNS"
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port free on loopback now; the servers bind it a moment later (race is harmless)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((LOOPBACK, port)) == 0


def wait_for_port(port: int, timeout: float, alive: Callable[[], bool] | None = None) -> None:
    """Block until something accepts on ``port``; ``alive()`` false aborts early."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError(f"process for port {port} exited before listening")
        if port_open(port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {LOOPBACK}:{port} after {timeout:.0f} s")


def is_isolated() -> bool:
    return os.environ.get(ISOLATED_ENV) == "1"


def reexec_isolated() -> int | None:
    """Run this same command again inside a loopback-only network namespace.

    Returns the child's exit code, or None when isolation is not possible here (not
    root, no ``unshare``/``ip``, or the kernel refuses), in which case the caller runs
    unisolated and says so in the report.
    """
    if is_isolated() or os.geteuid() != 0:
        return None
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare is None or ip is None:
        return None
    probe = subprocess.run(
        [unshare, "--net", "--", ip, "link", "set", "lo", "up"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        return None
    script = f'{ip} link set lo up && exec "$@"'
    env = dict(os.environ, **{ISOLATED_ENV: "1"})
    command = [unshare, "--net", "--", "sh", "-c", script, "sh", sys.executable, *sys.argv]
    child = subprocess.Popen(command, env=env)
    # Ctrl-C reaches the child through the terminal; waiting on, the parent lets the child
    # stop its servers (subprocess.run would SIGKILL it 0.25 s after the interrupt).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
    return child.wait()
