"""Prefetch on order: an order at NGH for a patient with priors at EMH queues the
relevant ones (same body part or modality, the last ``prefetch_priors``) for NGH's PACS
before the appointment, and nothing unrelated."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select, update

from rix.archive import Archive
from rix.index.database import begin_write
from rix.index.schema import jobs
from rix.index.workflow_tables import orders
from rix.jobs import queue
from rix.jobs.queue import Priority
from rix.jobs.worker import Context
from rix.region.trusts import add_agreement, add_trust
from rix.routing import deliver, prefetch
from rix.workflow import priors
from tests.peers.archive import opened
from tests.workflow.week import order, patient, person, relationship, study

DAY = 86400.0


@dataclass
class Region:
    archive: Archive
    uids: dict[str, str]
    ngh_patient: int


@pytest.fixture
def region(
    tmp_path: Path, migrated_database_url: str, request: pytest.FixtureRequest
) -> Iterator[Region]:
    last = getattr(request, "param", 3)
    with opened(tmp_path / "data", migrated_database_url, prefetch_priors=last) as archive:
        uids: dict[str, str] = {}
        now = time.time()
        with begin_write(archive.engine) as conn:
            add_trust(conn, code="EMH", name="East Midlands")
            add_trust(conn, code="NGH", name="Northgate", pacs_ae="NGH_PACS")
            add_agreement(conn, "EMH", "NGH")
            ada = person(conn)
            emh, ngh = patient(conn, "EMH", "E1", ada), patient(conn, "NGH", "N1", ada)
            other = patient(conn, "EMH", "E2", person(conn))
            for name, trust, pat, modality, part, date in [
                ("ct_head", "EMH", emh, "CT", "HEAD", "20240101"),
                ("mr_knee", "EMH", emh, "MR", "KNEE", "20240301"),
                ("mr_head", "EMH", emh, "MR", "HEAD", "20240601"),
                ("us_abdomen", "EMH", emh, "US", "ABDOMEN", "20240701"),
                ("ct_chest", "EMH", emh, "CT", "CHEST", "20240801"),
                ("own_mr_head", "NGH", ngh, "MR", "HEAD", "20240901"),
                ("someone_else", "EMH", other, "MR", "HEAD", "20241001"),
            ]:
                uids[name] = study(
                    conn,
                    trust=trust,
                    patient_pk=pat,
                    arrived=now,
                    modality=modality,
                    body_part=part,
                    study_date=date,
                    person_pk=None if name == "someone_else" else ada,
                )
            relationship(conn, "NGH", ada)  # what the order itself records (part A)
        yield Region(archive=archive, uids=uids, ngh_patient=ngh)


def order_mr_head(region: Region, *, scheduled_at: float, priority: str = "inpatient") -> int:
    with begin_write(region.archive.engine) as conn:
        pk = order(
            conn,
            trust="NGH",
            patient_pk=region.ngh_patient,
            priority=priority,
            modality="MR",
            body_part="head",
            status="scheduled",
            scheduled_at=scheduled_at,
        )
        priors.schedule_for_order(conn, pk)
    return pk


def pending_prefetches(archive: Archive) -> list[queue.Job]:
    with archive.engine.connect() as conn:
        pks = conn.execute(
            select(jobs.c.id).where(jobs.c.kind == prefetch.KIND, jobs.c.state == "pending")
        ).scalars()
        return [queue.get(conn, pk) for pk in pks]


def run_prefetch(archive: Archive) -> list[str]:
    """Run the order's prefetch now (the real handler), and return the studies it queued
    for NGH's PACS."""
    with begin_write(archive.engine) as conn:
        conn.execute(update(jobs).where(jobs.c.kind == prefetch.KIND).values(run_at=0))
    job = queue.claim(archive.engine, "test")
    assert job is not None and job.kind == prefetch.KIND
    prefetch.run(Context(archive=archive, job=job, worker="test"))
    with archive.engine.connect() as conn:
        children = conn.execute(
            select(jobs.c.id).where(jobs.c.kind == deliver.KIND, jobs.c.parent_pk == job.pk)
        ).scalars()
        payloads = [queue.get(conn, pk).payload for pk in children]
    assert {p["destination"]["ae"] for p in payloads} <= {"NGH_PACS"}
    return [str(p["study_uid"]) for p in payloads]


def test_an_order_queues_its_priors_before_the_appointment(region: Region) -> None:
    appointment = time.time() + 3 * DAY
    pk = order_mr_head(region, scheduled_at=appointment)
    [job] = pending_prefetches(region.archive)
    assert job.key == priors.order_key(pk)
    assert job.run_at == appointment - priors.LEAD_SECONDS
    assert job.priority == Priority.URGENT  # an inpatient's order
    assert job.payload["modalities"] == ["MR"] and job.payload["body_parts"] == ["HEAD"]


@pytest.mark.parametrize("region", [10], indirect=True)
def test_only_priors_of_the_same_body_part_or_modality_are_sent(region: Region) -> None:
    order_mr_head(region, scheduled_at=time.time() + DAY)
    sent = run_prefetch(region.archive)
    u = region.uids
    # newest first; not the US abdomen or CT chest, not NGH's own, not another patient's
    assert sent == [u["mr_head"], u["mr_knee"], u["ct_head"]]


@pytest.mark.parametrize("region", [2], indirect=True)
def test_only_the_last_n_relevant_priors_are_sent(region: Region) -> None:
    order_mr_head(region, scheduled_at=time.time() + DAY)
    assert run_prefetch(region.archive) == [region.uids["mr_head"], region.uids["mr_knee"]]


def test_a_rescheduled_order_moves_its_prefetch_and_a_cancelled_one_queues_none(
    region: Region,
) -> None:
    pk = order_mr_head(region, scheduled_at=time.time() + 3 * DAY)
    later = time.time() + 5 * DAY
    with begin_write(region.archive.engine) as conn:
        conn.execute(update(orders).where(orders.c.id == pk).values(scheduled_at=later))
        priors.schedule_for_order(conn, pk)
    [job] = pending_prefetches(region.archive)
    assert job.run_at == later - priors.LEAD_SECONDS
    with begin_write(region.archive.engine) as conn:
        conn.execute(update(jobs).values(state="cancelled"))
        conn.execute(update(orders).where(orders.c.id == pk).values(status="cancelled"))
        priors.schedule_for_order(conn, pk)
    assert pending_prefetches(region.archive) == []


def test_a_patient_with_no_images_elsewhere_gets_no_prefetch(region: Region) -> None:
    with begin_write(region.archive.engine) as conn:
        lonely = patient(conn, "NGH", "N9", person(conn))
        pk = order(conn, trust="NGH", patient_pk=lonely, priority="emergency", modality="CT")
        priors.schedule_for_order(conn, pk)
    assert pending_prefetches(region.archive) == []
