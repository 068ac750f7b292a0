"""What the index derives from stored instances and must forget when a patient's identity
changes: the WADO-RS metadata documents (``instance_metadata``).

A document shows the identity the index applies on the way out (``rix.region.identity``),
which for an instance filed under a correction (a merge, outside media reconciled to a
local record) is the record's current one. A merge, a corrected name or a learnt NHS number
therefore makes those documents stale; they are deleted in the change's own transaction and
built again from the stored bytes (``rix.retrieve.metadata``), so no reader sees the new
identity in QIDO and the old one in metadata once the change has committed.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, delete, select

from rix.index.schema import (
    instance_metadata,
    instances,
    patients,
    reconciled_instances,
    reconciliations,
    series,
    studies,
)


def forget_metadata(conn: Connection, patient_pks: Iterable[int]) -> int:
    """Delete the metadata of every instance filed under a correction naming one of
    ``patient_pks``; returns how many. The records' rows are locked first (PostgreSQL), so
    a builder writing a document computed before this change waits for it and then sees
    it (``hold_patients``)."""
    pks = sorted(set(patient_pks))
    if not pks:
        return 0
    conn.execute(
        select(patients.c.id)
        .where(patients.c.id.in_(pks))
        .order_by(patients.c.id)
        .with_for_update()
    )
    corrected = (
        select(reconciled_instances.c.instance_pk)
        .join(reconciliations, reconciliations.c.id == reconciled_instances.c.reconciliation_pk)
        .where(reconciliations.c.patient_pk.in_(pks))
    )
    result = conn.execute(
        delete(instance_metadata).where(instance_metadata.c.instance_pk.in_(corrected))
    )
    return int(result.rowcount or 0)


def hold_patients(conn: Connection, instance_pks: Iterable[int]) -> None:
    """Share-lock the patient records of ``instance_pks`` until the transaction ends: an
    identity change (``forget_metadata``, which locks them for update) either waits for the
    documents written now, and then deletes them, or has committed before, and then the
    builder reads its result. SQLite needs none: its writers are serialized already."""
    pks = sorted(set(instance_pks))
    if not pks or conn.dialect.name == "sqlite":
        return
    of_instances = (
        select(studies.c.patient_pk)
        .join(series, series.c.study_pk == studies.c.id)
        .join(instances, instances.c.series_pk == series.c.id)
        .where(instances.c.id.in_(pks))
    )
    conn.execute(  # in key order, as forget_metadata locks them: no deadlock between the two
        select(patients.c.id)
        .where(patients.c.id.in_(of_instances))
        .order_by(patients.c.id)
        .with_for_update(read=True)
    )
