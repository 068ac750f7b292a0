"""`rix reindex` keeps what only the index knows of the region: which trust owns each study
(from the stored files' meta) and the links and unlinks administrators made by hand."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text

from rix.admin import region as admin
from rix.cli.options import operator
from rix.config import normalise_database_url
from tests.peers.server import RixServer
from tests.peers.synthetic import write_series


def owners(server: RixServer) -> dict[str, str]:
    url = normalise_database_url(server.database_url) or (
        f"sqlite:///{server.data / 'index.sqlite'}"
    )
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT s.study_uid, t.code FROM studies s "
                    "LEFT JOIN trusts t ON t.id = s.trust_pk"
                )
            )
            return {r.study_uid: r.code or "" for r in rows}
    finally:
        engine.dispose()


def test_reindex_keeps_trust_ownership_and_hand_made_mpi_decisions(
    tmp_path: Path, migrated_database_url: str
) -> None:
    server = RixServer(data=tmp_path / "data", database_url=migrated_database_url)
    server.rix("demo")
    write_series(tmp_path / "media", 2, patient_id="IMPORTED-1")
    server.rix("import", str(tmp_path / "media"), "--trust", "SSX")
    with server.archive() as archive:  # as `rix mpi unlink` and `rix mpi link` (tests/region)
        admin.unlink(archive, operator(), "NGH/N-55021")
        admin.link(archive, operator(), "SSX/SSX-7790", "EMH/EMH100002")
    before = owners(server)
    assert set(before.values()) == {"EMH", "NGH", "SSX"}

    result = server.rix("reindex")
    assert "0 differences" in result.stdout

    assert owners(server) == before
    unlinked = server.rix("mpi", "show", "NGH/N-55021").stdout
    assert "unlinked" in unlinked and "EMH100001" not in unlinked
    linked = server.rix("mpi", "show", "EMH/EMH100002").stdout
    assert "SSX/SSX-7790" in linked and "manual" in linked
    assert "SSX-7790" not in server.rix("mpi", "review").stdout
    assert server.rix("audit", "verify").returncode == 0
