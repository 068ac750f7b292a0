"""A synthetic region for the turnaround tests: trusts, patients, studies, orders and
reports written straight into the index with the times the test chooses (an ingest would
stamp arrival with the clock)."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime

from sqlalchemy import Connection, select

from rix.archive import Archive
from rix.index.database import begin_write
from rix.index.schema import patients, persons, relationships, series, studies, trusts
from rix.index.workflow_tables import orders, reports
from rix.region.trusts import add_agreement, add_trust

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC).timestamp()  # a Friday noon, UTC
H = 3600.0
D = 86400.0
_n = itertools.count(1)


def trust_pk(conn: Connection, code: str) -> int:
    return int(conn.execute(select(trusts.c.id).where(trusts.c.code == code)).scalar_one())


def patient(conn: Connection, trust: str, patient_id: str, person_pk: int | None = None) -> int:
    issuer = conn.execute(select(trusts.c.issuer).where(trusts.c.code == trust)).scalar_one()
    return int(
        conn.execute(
            patients.insert()
            .values(patient_id=patient_id, issuer=issuer, person_pk=person_pk)
            .returning(patients.c.id)
        ).scalar_one()
    )


def person(conn: Connection) -> int:
    return int(
        conn.execute(persons.insert().values(created_at=NOW).returning(persons.c.id)).scalar_one()
    )


def study(
    conn: Connection,
    *,
    trust: str,
    patient_pk: int,
    arrived: float,
    modality: str = "CT",
    body_part: str = "",
    study_date: str = "",
    person_pk: int | None = None,
) -> str:
    n = next(_n)
    uid = f"1.2.826.0.1.3680043.10.1.{n}"
    pk = conn.execute(
        studies.insert()
        .values(
            study_uid=uid,
            patient_pk=patient_pk,
            accession_number=f"ACC{n}",
            modalities=modality,
            study_date=study_date,
            created_at=arrived,
            updated_at=arrived,
            trust_pk=trust_pk(conn, trust),
            person_pk=person_pk,
        )
        .returning(studies.c.id)
    ).scalar_one()
    conn.execute(
        series.insert().values(
            series_uid=f"{uid}.1",
            study_pk=pk,
            modality=modality,
            body_part=body_part,
            updated_at=arrived,
        )
    )
    return uid


def order(
    conn: Connection,
    *,
    trust: str,
    patient_pk: int,
    priority: str,
    modality: str = "CT",
    body_part: str = "",
    study_uid: str | None = None,
    status: str = "completed",
    scheduled_at: float | None = None,
) -> int:
    return int(
        conn.execute(
            orders.insert()
            .values(
                trust_pk=trust_pk(conn, trust),
                patient_pk=patient_pk,
                accession_number=f"O{next(_n)}",
                status=status,
                priority=priority,
                modality=modality,
                body_part=body_part,
                study_uid=study_uid,
                scheduled_at=scheduled_at,
                created_at=NOW,
                updated_at=NOW,
            )
            .returning(orders.c.id)
        ).scalar_one()
    )


def report(conn: Connection, study_uid: str, status: str, signed_at: float | None) -> None:
    conn.execute(
        reports.insert().values(
            study_uid=study_uid,
            status=status,
            created_at=signed_at or NOW,
            updated_at=signed_at or NOW,
            signed_at=signed_at,
        )
    )


def relationship(conn: Connection, trust: str, person_pk: int) -> None:
    conn.execute(
        relationships.insert().values(
            trust_pk=trust_pk(conn, trust), person_pk=person_pk, kind="order", created_at=NOW
        )
    )


@dataclasses.dataclass
class Week:
    """The studies of the synthetic week by name (see ``load_week``)."""

    uids: dict[str, str]


def _ordered(
    conn: Connection, trust: str, pat: int, priority: str, modality: str, arrived: float
) -> str:
    uid = study(conn, trust=trust, patient_pk=pat, arrived=arrived, modality=modality)
    order(conn, trust=trust, patient_pk=pat, priority=priority, modality=modality, study_uid=uid)
    return uid


def load_week(archive: Archive, now: float = NOW) -> Week:
    """Three trusts, a week: ages and outcomes chosen so each band, breach and day of the
    trend has a known count (the tests spell them out). ``now`` is noon by default, so the
    7-day period opens at midnight six days before (now - 6.5 days)."""
    uids: dict[str, str] = {}
    with begin_write(archive.engine) as conn:
        for code in ("EMH", "NGH", "SSX"):
            add_trust(conn, code=code, name=code)
        e, g, s = (patient(conn, code, f"{code}-1") for code in ("EMH", "NGH", "SSX"))
        # unreported
        uids["a1"] = _ordered(conn, "EMH", e, "emergency", "CT", now - 0.5 * H)
        report(conn, uids["a1"], "draft", None)  # a draft is no report
        uids["a2"] = _ordered(conn, "EMH", e, "outpatient", "CT", now - 2 * H)
        order(conn, trust="EMH", patient_pk=e, priority="emergency", study_uid=uids["a2"])
        uids["a3"] = _ordered(conn, "EMH", e, "inpatient", "CT", now - 30 * H)
        uids["a4"] = _ordered(conn, "EMH", e, "outpatient", "MR", now - 10 * D)
        # an emergency CT ordered first, discontinued, and replaced by an outpatient MR: the
        # ended order sets neither the priority nor the modality (``orders.study_order_pk``)
        uids["a5"] = study(conn, trust="EMH", patient_pk=e, arrived=now - 5 * H, modality="MR")
        order(conn, trust="EMH", patient_pk=e, priority="emergency", study_uid=uids["a5"])
        conn.execute(
            orders.update().where(orders.c.study_uid == uids["a5"]).values(status="discontinued")
        )
        order(
            conn,
            trust="EMH",
            patient_pk=e,
            priority="outpatient",
            modality="MR",
            study_uid=uids["a5"],
        )
        uids["b1"] = _ordered(conn, "NGH", g, "inpatient", "CT", now - 3 * H)
        uids["c1"] = study(conn, trust="SSX", patient_pk=s, arrived=now - 2 * D, modality="CR")
        # reported
        uids["r1"] = _ordered(conn, "EMH", e, "emergency", "CT", now - 2 * D)
        report(conn, uids["r1"], "final", now - 2 * D + 0.5 * H)
        uids["r2"] = _ordered(conn, "EMH", e, "emergency", "CT", now - 3 * D)
        report(conn, uids["r2"], "final", now - 3 * D + 3 * H)
        uids["r3"] = _ordered(conn, "NGH", g, "inpatient", "CT", now - 30 * H)
        report(conn, uids["r3"], "preliminary", now - 10 * H)
        uids["r4"] = _ordered(conn, "NGH", g, "inpatient", "CT", now - 5 * D)
        report(conn, uids["r4"], "preliminary", now - 5 * D + 30 * H)
        report(conn, uids["r4"], "final", now - 5 * D + 40 * H)
        uids["r5"] = _ordered(conn, "SSX", s, "outpatient", "CR", now - 8 * D)
        report(conn, uids["r5"], "final", now - 2 * D)
        # not on the clock: a cancelled order's study is still a study (unordered, so
        # outpatient); an SR-only study; an order with no study yet
        uids["x1"] = study(conn, trust="SSX", patient_pk=s, arrived=now - 20 * D, modality="SR")
        order(conn, trust="SSX", patient_pk=s, priority="emergency", modality="CR")
        add_agreement(conn, "EMH", "NGH")
    return Week(uids=uids)
