"""An index with data upgrades to the newest schema on SQLite and PostgreSQL.

Fresh databases migrate empty tables; an archive in use has rows that other rows refer
to, which is where SQLite's table-rebuilding migrations used to fail.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import text

from rix.config import normalise_database_url
from rix.index import database


def test_an_index_with_data_at_0002_upgrades_to_head_keeping_every_row(
    tmp_path: Path, fresh_database_url: str
) -> None:
    url = normalise_database_url(fresh_database_url) or f"sqlite:///{tmp_path}/index.sqlite"
    engine = database.connect(url)
    try:
        database.upgrade(engine, "0002")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO patients (id, patient_id, issuer, patient_name) "
                    "VALUES (1, 'P1', 'EMH', 'Old^Patient')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO studies (id, study_uid, patient_pk, created_at, updated_at) "
                    "VALUES (1, '1.2.3', 1, 0, 0)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO series (id, series_uid, study_pk, updated_at) "
                    "VALUES (1, '1.2.3.1', 1, 0)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO instances (id, sop_uid, series_pk, sop_class_uid, "
                    "transfer_syntax, size, sha256, storage_key, received_at) VALUES "
                    "(1, '1.2.3.1.1', 1, '1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.1.2.1', "
                    "10, 'x', 'k', 0)"
                )
            )
            document = '{"00080018":1}'
            conn.execute(text("INSERT INTO instance_metadata VALUES (1, :d)"), {"d": document})

        database.upgrade(engine)

        assert database.current_revision(engine) == "0009"
        with engine.connect() as conn:
            joined = conn.execute(
                text(
                    "SELECT p.patient_id, s.study_uid, s.trust_pk, s.person_pk, i.sop_uid "
                    "FROM instances i JOIN series se ON se.id = i.series_pk "
                    "JOIN studies s ON s.id = se.study_pk JOIN patients p ON p.id = s.patient_pk"
                )
            ).all()
        assert [tuple(r) for r in joined] == [("P1", "1.2.3", None, None, "1.2.3.1.1")]
        with engine.connect() as conn:  # a document built before 0009 gets its validator
            etag = conn.execute(text("SELECT etag FROM instance_metadata")).scalar_one()
        assert etag == hashlib.sha256(b'{"00080018":1}').hexdigest()
    finally:
        engine.dispose()
