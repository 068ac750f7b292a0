"""A small synthetic region for ``make run``: the region and its images
(``rix.cli.demo_region``), then its reporting week (issue 7): orders, a week of back-dated
arrivals and reports, breaches of the turnaround targets, and a rota.

Everything is generated; never real patient data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, update

from rix.access import SYSTEM, Principal
from rix.archive import Archive
from rix.auth.users import get_user
from rix.cli.demo_region import (
    PATIENTS,
    STUDIES,
    TRUSTS,
    USERS,
    DemoPatient,
    demo_uid,
    encode,
    instances,
    setup_region,
)
from rix.config import Priority
from rix.index.database import begin_write
from rix.index.schema import studies
from rix.index.workflow_tables import orders as order_rows
from rix.index.workflow_tables import reports as report_rows
from rix.ingest import ingest, received_from_file
from rix.region import patients as records
from rix.region import trusts
from rix.workflow import order_entry, orders, report_claims, reports, rota, turnaround

HOUR = 3600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoCase:
    """A demo study's place in the demo's reporting week: when it arrived (hours before the
    demo was loaded), its order's priority ('': no order, so outpatient) and, when it is
    reported, how long after arrival, by whom and as what."""

    accession: str
    arrived_hours_ago: float
    priority: str = ""
    reported_after_hours: float | None = None
    reporter: str = ""
    signed_as: str = "final"


# targets: emergency 1 h, inpatient 24 h, outpatient 7 d (``turnaround_targets``)
CASES = (
    # EMH: an emergency chest film waiting 3 h (breach), an MR brain waiting 5 h (in time),
    # a CT head reported in 70 h (outpatient: on time)
    DemoCase(accession="EMH25B221", arrived_hours_ago=3, priority="emergency"),
    DemoCase(accession="EMH25A114", arrived_hours_ago=5),
    DemoCase(
        accession="EMH24A001",
        arrived_hours_ago=168,
        reported_after_hours=70,
        reporter="emh.radiologist",
    ),
    # NGH: an inpatient US waiting 30 h (breach); a CT chest reported by EMH's radiologist
    # (the shared service) 7.5 days after it arrived (late)
    DemoCase(accession="NGH26U019", arrived_hours_ago=30, priority="inpatient"),
    DemoCase(
        accession="NGH26C003",
        arrived_hours_ago=192,
        reported_after_hours=180,
        reporter="emh.radiologist",
    ),
    # SSX: an outpatient MR waiting 8 days (breach); an emergency wrist reported in 45 min
    # and a knee film in 2 days (on time), an inpatient US reported in 30 h (late)
    DemoCase(accession="SSX26M102", arrived_hours_ago=190, priority="outpatient"),
    DemoCase(
        accession="SSX26R911",
        arrived_hours_ago=48,
        priority="emergency",
        reported_after_hours=0.75,
        reporter="ssx.radiologist",
    ),
    DemoCase(
        accession="SSX23R877",
        arrived_hours_ago=144,
        priority="outpatient",
        reported_after_hours=48,
        reporter="ssx.radiologist",
    ),
    DemoCase(
        accession="SSX26U440",
        arrived_hours_ago=96,
        priority="inpatient",
        reported_after_hours=30,
        reporter="ssx.radiologist",
        signed_as="preliminary",
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoBooking:
    """An order scheduled ahead, with no study yet: what the Modality Worklist answers."""

    placer: str
    patient: DemoPatient
    modality: str
    body_part: str
    procedure: str
    in_hours: float
    priority: str = "outpatient"


BOOKINGS = (
    DemoBooking(
        placer="DEMO-B1",
        patient=PATIENTS[1],
        modality="CT",
        body_part="ABDOMEN",
        procedure="CT Abdomen Pelvis",
        in_hours=2,
    ),
    DemoBooking(
        placer="DEMO-B2",
        patient=PATIENTS[3],
        modality="MR",
        body_part="PELVIS",
        procedure="MR Pelvis",
        in_hours=26,
    ),
    DemoBooking(
        placer="DEMO-B3",
        patient=PATIENTS[5],
        modality="US",
        body_part="PELVIS",
        procedure="US Pelvis follow-up",
        in_hours=3,
        priority="inpatient",
    ),
    DemoBooking(
        placer="DEMO-B4",
        patient=PATIENTS[4],
        modality="CR",
        body_part="KNEE",
        procedure="XR Knee Left",
        in_hours=50,
    ),
)
RADIOLOGISTS = tuple((u, t) for u, role, t in USERS if role == "radiologist")
STUDY_OF = {s.accession: s for s in STUDIES}


def _details(p: DemoPatient) -> records.Details:
    return records.Details(
        patient_id=p.patient_id,
        issuer=p.issuer,
        name=p.name,
        birth_date=p.birth_date,
        sex=p.sex,
        nhs_number=p.nhs_number,
    )


def _order(
    conn: Connection, trust: trusts.Trust, patient: DemoPatient, **fields: Any
) -> tuple[orders.Order, bool]:
    """One demo order, referred by the demo referrer from the trust's first site."""
    details = orders.OrderDetails(
        site_code=patient.issuer + "1", ordering_provider="Demo^Referrer", reason="demo", **fields
    )
    return order_entry.create(
        conn, SYSTEM, trust=trust, patient=_details(patient), details=details, source="demo"
    )


def _place_orders(archive: Archive, now: float) -> bool:
    """The orders of the ordered cases (matched at once to their studies by accession
    number) and the bookings; True when they are new (a first load)."""
    new = False
    with begin_write(archive.engine) as conn:
        by_code = {t.code: t for t in trusts.all_trusts(conn)}
        for case in CASES:
            if not case.priority:
                continue
            study = STUDY_OF[case.accession]
            ordered = now - (case.arrived_hours_ago + 1) * HOUR
            order, created = _order(
                conn,
                by_code[study.patient.issuer],
                study.patient,
                placer_number=f"DEMO-{case.accession}",
                accession_number=case.accession,
                priority=Priority(case.priority),
                modality=study.modality,
                body_part=study.body_part,
                procedure_text=study.description,
                ordered_at=ordered,
                scheduled_at=ordered,
            )
            new |= created
            if created:  # demo data: the order is as old as the story says
                conn.execute(
                    update(order_rows)
                    .where(order_rows.c.id == order.pk)
                    .values(created_at=ordered, updated_at=ordered)
                )
        for booking in BOOKINGS:
            _, created = _order(
                conn,
                by_code[booking.patient.issuer],
                booking.patient,
                placer_number=booking.placer,
                priority=Priority(booking.priority),
                modality=booking.modality,
                body_part=booking.body_part,
                procedure_text=booking.procedure,
                scheduled_at=round(now / HOUR + booking.in_hours) * HOUR,
            )
            new |= created
    return new


def _backdate(archive: Archive, now: float) -> None:
    """Demo data only: move the studies' arrival (``studies.created_at``, where the
    turnaround clock starts) back over the last eight days with a direct UPDATE of the
    index, so the worklist and the dashboard have a week to show. Never done to real
    studies: an arrival is what the archive saw."""
    with begin_write(archive.engine) as conn:
        for case in CASES:
            conn.execute(
                update(studies)
                .where(studies.c.study_uid == demo_uid(case.accession))
                .values(created_at=now - case.arrived_hours_ago * HOUR)
            )


def _user(archive: Archive, username: str) -> Principal:
    with archive.engine.connect() as conn:
        return Principal.of_user(get_user(conn, username), "demo")


def _sign_reports(archive: Archive, now: float) -> None:
    """Each reported case claimed and signed by its radiologist through the reporting
    workflow (which queues the SR and the ORU^R01), then, demo data only, its
    ``signed_at`` moved back to when the story says it was signed."""
    for case in CASES:
        if case.reported_after_hours is None:
            continue
        study = STUDY_OF[case.accession]
        uid = demo_uid(case.accession)
        principal = _user(archive, case.reporter)
        report_claims.claim(archive, principal, uid)
        text = (
            f"{study.description}.\n\nFindings: no acute abnormality demonstrated.\n\n"
            "Conclusion: normal study. (Synthetic demo report.)"
        )
        saved = reports.save(archive, principal, uid, action=case.signed_as, text=text)
        signed = now - (case.arrived_hours_ago - case.reported_after_hours) * HOUR
        with begin_write(archive.engine) as conn:
            conn.execute(
                update(report_rows)
                .where(report_rows.c.id == saved.pk)
                .values(created_at=signed, updated_at=signed, signed_at=signed)
            )


def _rota(archive: Archive, now: float) -> None:
    """Every demo radiologist on shift now (12 hours from two hours ago), unless they are."""
    on = {s.username for s in rota.shifts(archive, start=now, days=0) if s.on_at(now)}
    start = (now // HOUR - 2) * HOUR
    for username, trust in RADIOLOGISTS:
        if username not in on:
            rota.add_shift(
                archive,
                SYSTEM,
                username=username,
                trust=trust,
                subspecialty="",
                starts_at=start,
                ends_at=start + 12 * HOUR,
            )


def summary(archive: Archive) -> list[str]:
    """What the demo's reporting week holds, as the story has it when loaded."""
    waiting: dict[str, list[int]] = {code: [0, 0] for code in TRUSTS}
    for case in CASES:
        if case.reported_after_hours is not None:
            continue
        target = turnaround.target_seconds(archive.settings, case.priority or "outpatient")
        counts = waiting[STUDY_OF[case.accession].patient.issuer]
        counts[0] += 1
        counts[1] += case.arrived_hours_ago * HOUR > target
    ordered = sum(bool(c.priority) for c in CASES)
    each = ", ".join(f"{code} {n} ({late} overdue)" for code, (n, late) in waiting.items())
    return [
        f"demo workflow: {ordered} orders with their studies, {len(BOOKINGS)} booked ahead "
        "(Modality Worklist: findscu -W -k PatientName= -aet EMH_PACS -aec RIX "
        "127.0.0.1 11112)",
        f"  unreported: {each}; on the rota now: {', '.join(u for u, _ in RADIOLOGISTS)}",
        "  sign in as emh.radiologist: /worklist (EMH and NGH, shared), /turnaround, "
        "/rota; orders: /api/orders",
    ]


def load_workflow(archive: Archive, now: float | None = None) -> None:
    """Orders, a week of arrivals and reports (some late, some still waiting past their
    target) and a rota; the orders and history are made once, the rota kept current."""
    now = time.time() if now is None else now
    if _place_orders(archive, now):
        _backdate(archive, now)
        _sign_reports(archive, now)
    _rota(archive, now)


def load(archive: Archive, progress: Callable[[int], None] | None = None) -> int:
    """Store the demo region's images, each sent by its trust's PACS; returns how many
    instances were new. ``setup_region`` runs first, ``load_workflow`` last; with
    ``progress`` (the command line) it prints what to look at."""
    setup_region(archive)
    with archive.engine.connect() as conn:
        by_code = {t.code: t for t in trusts.all_trusts(conn)}
    stored = 0
    for ds in instances():
        trust = by_code[str(ds.IssuerOfPatientID)]
        received = received_from_file(
            encode(ds), source="demo", calling_ae=f"{trust.code}_PACS", trust=trust
        )
        result = ingest(archive, received)
        stored += result.outcome == "stored"
        if progress is not None:
            progress(1)
    load_workflow(archive)
    if progress is not None:
        print("\n".join(summary(archive)))
    return stored


def size() -> int:
    return sum(s.images for s in STUDIES)
