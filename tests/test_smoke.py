"""The server starts on both backends and answers C-ECHO from DCMTK; the demo loads."""

import dataclasses
import subprocess
import time
from pathlib import Path

from sqlalchemy import select

from rix.access import EVERYTHING, Principal
from rix.access.radiology import TurnaroundView
from rix.auth.users import get_user
from rix.cli import demo
from rix.config import Settings
from rix.index.workflow_tables import orders
from rix.serve import open_archive
from rix.workflow import reporting_worklist, turnaround
from tests.peers.server import RixServer


def test_echoscu_gets_success(rix_server: RixServer) -> None:
    result = subprocess.run(
        ["echoscu", "-aec", "RIX", "127.0.0.1", str(rix_server.dicom_port)],
        check=False,
        env={"TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_demo_has_orders_a_shared_worklist_and_breaches(
    tmp_path: Path, migrated_database_url: str
) -> None:
    """`make run`'s demo (issue 7): orders, a worklist across trusts, late studies."""
    settings = dataclasses.replace(
        Settings(), data=tmp_path / "data", database_url=migrated_database_url
    )
    archive = open_archive(settings, migrate=True)
    try:
        demo.load(archive)
        demo.load(archive)  # idempotent: nothing twice
        with archive.engine.connect() as conn:
            placed = conn.execute(select(orders.c.status)).scalars().all()
            emh = Principal.of_user(get_user(conn, "emh.radiologist"), "test")
        assert len(placed) == sum(bool(c.priority) for c in demo.CASES) + len(demo.BOOKINGS)
        assert placed.count("scheduled") == len(demo.BOOKINGS)
        items = reporting_worklist.worklist(archive, emh, reporting_worklist.Filters())
        assert {i.trust for i in items} == {"EMH", "NGH"}
        assert any(i.overdue and i.priority == "emergency" for i in items)
        with archive.engine.connect() as conn:
            everything = TurnaroundView(scope=EVERYTHING, identifiers=True)
            found = turnaround.cases(conn, settings, everything, since=0.0)
        now = time.time()
        late = {c.trust for c in found if c.reported is None and c.late_by(now) > 0}
        assert late == {"EMH", "NGH", "SSX"}
        assert any(c.reported is not None and c.late_by(now) > 0 for c in found)
        assert any(c.reported is not None and c.late_by(now) < 0 for c in found)
    finally:
        archive.close()
