"""A server's job queue and deliveries, read from its index as they are: what a
destination acknowledged (``deliveries``) is in no API, and a test must see every job."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, create_engine, text

from rix.config import normalise_database_url
from rix.workflow import turnaround_alerts
from tests.peers.server import RixServer

T = TypeVar("T")
SETTLED = ("done", "dead", "cancelled")


@contextmanager
def connected(server: RixServer) -> Iterator[Connection]:
    url = normalise_database_url(server.database_url) or (
        f"sqlite:///{server.data / 'index.sqlite'}"
    )
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def jobs(server: RixServer, kind: str = "") -> list[Row[Any]]:
    """Every job (of ``kind``), oldest first; without a kind, not the worker's own
    recurring turnaround check, which is always pending and never "settles"."""
    where = "kind = :kind" if kind else "kind != :kind"
    query = f"SELECT * FROM jobs WHERE {where} ORDER BY id"
    with connected(server) as conn:
        return list(conn.execute(text(query), {"kind": kind or turnaround_alerts.CHECK_KIND}))


def delivered(server: RixServer, destination: str) -> list[str]:
    """The SOP Instance UIDs ``destination`` (``ae:TITLE`` or ``stow:URL``) acknowledged."""
    with connected(server) as conn:
        rows = conn.execute(
            text("SELECT sop_uid FROM deliveries WHERE destination = :d"), {"d": destination}
        )
        return sorted(r.sop_uid for r in rows)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def settled(server: RixServer, study_uids: set[str], timeout: float = 60.0) -> list[Row[Any]]:
    """Every job, once each study's stability check has run and no job is left pending or
    running: after that, nothing more is sent."""

    def probe() -> list[Row[Any]] | None:
        found = jobs(server)
        checked = {
            json.loads(r.payload)["study_uid"]
            for r in found
            if r.kind == "stable" and r.state == "done"
        }
        if study_uids <= checked and all(r.state in SETTLED for r in found):
            return found
        return None

    return wait_for("the routing of the studies to settle", probe, timeout)
