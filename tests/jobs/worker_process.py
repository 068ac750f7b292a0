"""``rix serve --role worker`` processes: job workers alone, without HTTP or DICOM, so
readiness is the "workers started" line of the log rather than a health check."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.peers.server import ROOT

READY = "workers started"


def start(data: Path, database_url: str, log_path: Path, workers: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        RIX_DATA=str(data),
        RIX_DATABASE_URL=database_url,
        RIX_ROLES="worker",
        RIX_WORKERS=str(workers),
    )
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "rix.cli", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )


def wait_ready(process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while READY not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not start: {log_path.read_text()[-3000:]}")
        time.sleep(0.05)


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each: the jobs in hand finish, then the processes exit."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def worker_processes(
    count: int, data: Path, database_url: str, workers: int = 2, timeout: float = 60.0
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` worker processes sharing one data folder and an index already migrated,
    started together; stopped on exit."""
    logs = [data.parent / f"worker-{n}.log" for n in range(count)]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for log_path in logs:
            processes.append(start(data, database_url, log_path, workers))
        for process, log_path in zip(processes, logs, strict=True):
            wait_ready(process, log_path, timeout)
        yield processes
    finally:
        stop(processes)
