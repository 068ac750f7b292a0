"""The shared reporting worklist, claims and report versions, in the test process, on
SQLite and PostgreSQL: A's radiologists report A's and partner B's studies, never C's; a
claim is one row whose primary key lets exactly one claimant in; a partner's images open
with the claim; nothing signed is ever changed."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydicom import Dataset, dcmread
from sqlalchemy import select

from rix import access
from rix.archive import Archive
from rix.errors import AccessDenied, Conflict
from rix.index import queries
from rix.index.schema import instances, jobs, series, studies
from rix.jobs.worker import Workers
from rix.serve import job_handlers
from rix.workflow import (
    report_claims,
    report_delivery,
    report_templates,
    report_versions,
    reporting_worklist,
    reports,
    rota,
)
from rix.workflow.reporting_worklist import Filters, WorklistStatus
from tests.routing.index import wait_for
from tests.workflow import reporting_region
from tests.workflow.reporting_region import (
    Race,
    Studies,
    age,
    expire_claims,
    forget_reporting,
    principal,
)


@pytest.fixture(scope="module")
def region(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Archive, Studies]]:
    with reporting_region.region(backend, tmp_path_factory.mktemp("reporting")) as found:
        yield found


@pytest.fixture
def archive(region: tuple[Archive, Studies]) -> Archive:
    forget_reporting(region[0])
    return region[0]


@pytest.fixture
def found(region: tuple[Archive, Studies]) -> Studies:
    return region[1]


def listed(archive: Archive, username: str = "a.rad", **filters: object) -> list[str]:
    chosen = Filters.of(**filters)  # type: ignore[arg-type]
    return [
        i.study_uid
        for i in reporting_worklist.worklist(archive, principal(archive, username), chosen)
    ]


def sees_images(archive: Archive, username: str, study_uid: str) -> bool:
    scope = access.scope(principal(archive, username))
    with archive.engine.connect() as conn:
        return queries.patient_of_study(conn, study_uid, scope=scope) is not None


# --- the worklist ---


def test_the_worklist_spans_the_own_trust_and_partners_but_not_a_third(
    archive: Archive, found: Studies
) -> None:
    assert set(listed(archive)) == {found.a_head, found.b_knee, found.b_chest}
    assert found.c_ct not in listed(archive, "b.rad")
    assert set(listed(archive, "c.rad")) == {found.c_ct}


def test_studies_of_key_objects_only_or_reported_elsewhere_wait_for_nobody(
    archive: Archive, found: Studies
) -> None:
    assert found.a_key_only not in listed(archive, statuses=["all"])
    assert found.a_elsewhere not in listed(archive)
    assert found.a_elsewhere in listed(archive, statuses=["final"])


def test_listing_a_partners_study_does_not_open_its_images(
    archive: Archive, found: Studies
) -> None:
    assert found.b_knee in listed(archive)
    assert not sees_images(archive, "a.rad", found.b_knee)


def test_an_order_gives_priority_sub_specialty_and_site_and_emergencies_come_first(
    archive: Archive, found: Studies
) -> None:
    items = reporting_worklist.worklist(archive, principal(archive, "a.rad"), Filters())
    first = items[0]
    assert first.study_uid == found.b_chest
    assert (first.priority, first.subspecialty, first.site) == ("emergency", "chest", "B1")
    assert first.order_pk == found.order_pk
    head = next(i for i in items if i.study_uid == found.a_head)
    assert (head.priority, head.body_part, head.modalities) == ("outpatient", "HEAD", ["CT"])


def test_the_filters_narrow_the_worklist(archive: Archive, found: Studies) -> None:
    assert listed(archive, trusts=["b"]) == [found.b_chest, found.b_knee]
    assert listed(archive, modality="mr") == [found.b_knee]
    assert listed(archive, body_part="head") == [found.a_head]
    assert listed(archive, body_part="chest") == [found.b_chest]
    assert listed(archive, priority="emergency") == [found.b_chest]
    assert listed(archive, subspecialty="Chest") == [found.b_chest]
    assert listed(archive, site="b1") == [found.b_chest]
    assert listed(archive, statuses=["claimed"]) == []


def test_the_age_filter_and_overdue_follow_the_arrival(archive: Archive, found: Studies) -> None:
    age(archive, found.b_knee, 200)  # outpatient: 7 days (168 h) target
    try:
        assert listed(archive, min_age_hours=100) == [found.b_knee]
        items = reporting_worklist.worklist(archive, principal(archive, "a.rad"), Filters())
        assert items[0].study_uid == found.b_knee  # overdue by 32 h: before the emergency
        assert [i.study_uid for i in items if i.overdue] == [found.b_knee]
    finally:
        age(archive, found.b_knee, 0)


def test_the_worklist_is_for_radiologists(archive: Archive) -> None:
    with pytest.raises(AccessDenied):
        reporting_worklist.worklist(archive, principal(archive, "a.clin"), Filters())
    with pytest.raises(Conflict):
        Filters.of(statuses=["lost"])


# --- claims ---


def test_two_radiologists_claiming_at_once_one_wins(archive: Archive, found: Studies) -> None:
    one, two = principal(archive, "a.rad"), principal(archive, "a.rad2")
    results = Race().run(
        lambda: report_claims.claim(archive, one, found.a_head),
        lambda: report_claims.claim(archive, two, found.a_head),
    )
    won = [r for r in results if isinstance(r, report_claims.Claim)]
    lost = [r for r in results if isinstance(r, Conflict)]
    assert (len(won), len(lost)) == (1, 1), results
    assert won[0].username in lost[0].reason
    [item] = [
        i
        for i in reporting_worklist.worklist(archive, one, Filters())
        if i.study_uid == found.a_head
    ]
    assert (item.status, item.claimed_by) == (WorklistStatus.CLAIMED, won[0].username)


def test_a_claim_held_by_another_is_refused_naming_the_holder(
    archive: Archive, found: Studies
) -> None:
    held = report_claims.claim(archive, principal(archive, "a.rad"), found.a_head)
    with pytest.raises(Conflict, match=r"being reported by a\.rad ") as refused:
        report_claims.claim(archive, principal(archive, "b.rad"), found.a_head)
    # the day and the zone, for people (display_timezone) and for programs (ISO 8601, UTC)
    until = datetime.fromtimestamp(round(held.expires_at), UTC)
    london = until.astimezone(ZoneInfo("Europe/London"))
    assert until.strftime("%Y-%m-%dT%H:%M:%SZ") in refused.value.reason
    assert f"{london.day} {london:%b %Y %H:%M} {london.tzname()}" in refused.value.reason
    with pytest.raises(Conflict, match=r"being reported by a\.rad "):
        report_claims.release(archive, principal(archive, "a.rad2"), found.a_head)


def test_released_and_expired_claims_go_back_to_the_worklist(
    archive: Archive, found: Studies
) -> None:
    me, other = principal(archive, "a.rad"), principal(archive, "a.rad2")
    report_claims.claim(archive, me, found.a_head)
    assert report_claims.release(archive, me, found.a_head)
    assert not report_claims.release(archive, me, found.a_head)
    assert found.a_head in listed(archive, statuses=["unreported"])
    report_claims.claim(archive, me, found.a_head)
    expire_claims(archive)
    assert found.a_head in listed(archive, statuses=["unreported"])
    assert report_claims.claim(archive, other, found.a_head).username == "a.rad2"


def test_a_claim_opens_a_partners_images_and_a_report_keeps_them_open(
    archive: Archive, found: Studies
) -> None:
    me = principal(archive, "a.rad")
    report_claims.claim(archive, me, found.b_knee)
    assert sees_images(archive, "a.rad", found.b_knee)
    assert not sees_images(archive, "a.rad2", found.b_knee)
    report_claims.release(archive, me, found.b_knee)
    assert not sees_images(archive, "a.rad", found.b_knee)
    report_claims.claim(archive, me, found.b_knee)
    reports.save(archive, me, found.b_knee, action="final", text="Normal knee.")
    assert sees_images(archive, "a.rad", found.b_knee)  # the claim went with the signature


def test_a_radiologist_of_another_region_cannot_claim(archive: Archive, found: Studies) -> None:
    with pytest.raises(AccessDenied):
        report_claims.claim(archive, principal(archive, "c.rad"), found.a_head)


# --- report versions ---


def signed_texts(archive: Archive, study_uid: str) -> list[tuple[str, str]]:
    with archive.engine.connect() as conn:
        return [(r.status.value, r.text) for r in report_versions.signed_versions(conn, study_uid)]


def test_a_report_goes_draft_preliminary_final_then_only_addenda_and_corrections(
    archive: Archive, found: Studies
) -> None:
    me = principal(archive, "a.rad")
    with pytest.raises(Conflict, match="claim the study"):
        reports.save(archive, me, found.a_head, action="draft", text="x")
    report_claims.claim(archive, me, found.a_head)
    reports.save(archive, me, found.a_head, action="draft", text="Brain: ")
    draft = reports.save(archive, me, found.a_head, action="draft", text="Brain: normal")
    prelim = reports.save(archive, me, found.a_head, action="preliminary", text="Brain: normal.")
    assert prelim.pk == draft.pk and prelim.signed
    assert found.a_head in listed(archive, statuses=["preliminary"])

    report_claims.claim(archive, me, found.a_head)  # signing gave the claim back
    final = reports.save(archive, me, found.a_head, action="final", text="No haemorrhage.")
    assert (final.status, final.parent_pk) == ("final", prelim.pk)
    assert found.a_head not in listed(archive)

    report_claims.claim(archive, me, found.a_head)
    with pytest.raises(Conflict, match="add an addendum"):
        reports.save(archive, me, found.a_head, action="final", text="Again.")
    with pytest.raises(Conflict, match="add an addendum"):
        reports.save(archive, me, found.a_head, action="preliminary", text="Again.")
    added = reports.save(archive, me, found.a_head, action="addendum", text="Old infarct.")
    report_claims.claim(archive, me, found.a_head)
    reports.save(archive, me, found.a_head, action="corrected", text="Old left infarct.")

    assert signed_texts(archive, found.a_head) == [
        ("preliminary", "Brain: normal."),
        ("final", "No haemorrhage."),
        ("addendum", "Old infarct."),
        ("corrected", "Old left infarct."),
    ]
    with archive.engine.connect() as conn:
        chain = report_versions.versions(conn, found.a_head)
    assert report_versions.current_text(chain, added).startswith(
        "No haemorrhage.\n\nADDENDUM (A.RAD"
    )


def test_an_addendum_needs_a_final_and_a_signature_needs_text(
    archive: Archive, found: Studies
) -> None:
    me = principal(archive, "a.rad")
    report_claims.claim(archive, me, found.a_head)
    with pytest.raises(Conflict, match="follows a signed final"):
        reports.save(archive, me, found.a_head, action="addendum", text="More.")
    with pytest.raises(Conflict, match="needs text"):
        reports.save(archive, me, found.a_head, action="final", text="  ")
    with pytest.raises(Conflict):
        reports.save(archive, me, found.a_head, action="signed", text="x")


def test_another_radiologists_draft_is_not_theirs_to_sign(archive: Archive, found: Studies) -> None:
    me, other = principal(archive, "a.rad"), principal(archive, "a.rad2")
    report_claims.claim(archive, me, found.a_head)
    reports.save(archive, me, found.a_head, action="draft", text="Mine, half done")
    report_claims.release(archive, me, found.a_head)
    report_claims.claim(archive, other, found.a_head)
    assert [r.text for r in reports.read(archive, other, found.a_head)] == []
    signed = reports.save(archive, other, found.a_head, action="final", text="Theirs.")
    assert [r.text for r in reports.read(archive, me, found.a_head)] == [
        "Mine, half done",
        "Theirs.",
    ]
    assert signed.author == "a.rad2"


def test_a_signed_final_is_stored_in_its_study_as_a_text_sr(
    archive: Archive, found: Studies
) -> None:
    me = principal(archive, "a.rad")
    report_claims.claim(archive, me, found.b_chest)
    final = reports.save(archive, me, found.b_chest, action="final", text="Clear lungs.")
    assert final.sr_instance_uid
    with archive.engine.connect() as conn:
        kinds = [r.kind for r in conn.execute(select(jobs.c.kind))]
    assert kinds == [report_delivery.STORE_KIND]  # no report_destinations here: no ORU^R01
    workers = Workers(archive, job_handlers(), 1).start()
    try:
        wait_for("the SR job", lambda: _sr_study(archive, final.sr_instance_uid or ""))
    finally:
        workers.stop()
    assert _sr_study(archive, final.sr_instance_uid or "") == found.b_chest


def test_an_addendum_is_stored_as_an_sr_naming_the_final_it_follows(
    archive: Archive, found: Studies, tmp_path: Path
) -> None:
    me = principal(archive, "a.rad")
    report_claims.claim(archive, me, found.b_chest)
    final = reports.save(archive, me, found.b_chest, action="final", text="Clear lungs.")
    workers = Workers(archive, job_handlers(), 1).start()
    try:
        wait_for("the final's SR", lambda: _sr_study(archive, final.sr_instance_uid or ""))
        report_claims.claim(archive, me, found.b_chest)  # signing released the claim
        added = reports.save(archive, me, found.b_chest, action="addendum", text="Rib fracture.")
        wait_for("the addendum's SR", lambda: _sr_study(archive, added.sr_instance_uid or ""))
    finally:
        workers.stop()
    stored = _stored_sr(archive, added.sr_instance_uid or "")
    (predecessor,) = stored.PredecessorDocumentsSequence
    assert predecessor.StudyInstanceUID == found.b_chest
    refs = predecessor.ReferencedSeriesSequence[0].ReferencedSOPSequence
    assert [r.ReferencedSOPInstanceUID for r in refs] == [final.sr_instance_uid]
    assert stored.ContentSequence[0].TextValue.startswith("Clear lungs.")
    assert "Rib fracture." in stored.ContentSequence[0].TextValue
    # an outside SR reader takes it as a well-formed Basic Text SR
    path = tmp_path / "addendum.dcm"
    stored.save_as(path, enforce_file_format=True)
    dump = subprocess.run(["dsrdump", str(path)], capture_output=True, text=True, check=True)
    assert "Basic Text SR Document" in dump.stdout and "Clear lungs." in dump.stdout
    assert "error" not in (dump.stdout + dump.stderr).lower(), dump.stderr


def _stored_sr(archive: Archive, sop_uid: str) -> Dataset:
    with archive.engine.connect() as conn:
        key = conn.execute(
            select(instances.c.storage_key).where(instances.c.sop_uid == sop_uid)
        ).scalar_one()
    with archive.store.open(key) as stream:
        return dcmread(stream)


def _sr_study(archive: Archive, sop_uid: str) -> str | None:
    with archive.engine.connect() as conn:
        found: str | None = conn.execute(
            select(studies.c.study_uid)
            .join(series, series.c.study_pk == studies.c.id)
            .join(instances, instances.c.series_pk == series.c.id)
            .where(instances.c.sop_uid == sop_uid)
        ).scalar()
    return found


def test_templates_are_seeded_and_the_study_picks_its_own(archive: Archive) -> None:
    found = report_templates.templates(archive)
    assert {"CT head", "CT chest", "MR knee", "CR chest", "General"} <= {t.name for t in found}
    pick = report_templates.template_for
    assert pick(found, modalities=["CT"], body_part="head").name == "CT head"  # type: ignore[union-attr]
    assert pick(found, modalities=["MR"], body_part="KNEE").name == "MR knee"  # type: ignore[union-attr]
    assert pick(found, modalities=["NM"], body_part="").name == "General"  # type: ignore[union-attr]


# --- the rota ---


def test_the_rota_is_kept_by_administrators_of_the_shifts_trust(archive: Archive) -> None:
    start = 4_000_000_000.0
    admin = principal(archive, "a.admin")
    pk = rota.add_shift(
        archive,
        admin,
        username="a.rad",
        trust="A",
        subspecialty="Neuro",
        starts_at=start,
        ends_at=start + 8 * 3600,
    )
    with pytest.raises(AccessDenied):
        rota.add_shift(
            archive,
            admin,
            username="b.rad",
            trust="B",
            subspecialty="",
            starts_at=start,
            ends_at=start + 3600,
        )
    with pytest.raises(AccessDenied):
        rota.add_shift(
            archive,
            principal(archive, "a.rad"),
            username="a.rad",
            trust="A",
            subspecialty="",
            starts_at=start,
            ends_at=start + 3600,
        )
    with pytest.raises(Conflict, match="not an active radiologist"):
        rota.add_shift(
            archive,
            admin,
            username="a.clin",
            trust="A",
            subspecialty="",
            starts_at=start,
            ends_at=start + 3600,
        )
    [shift] = rota.shifts(archive, start=start + 3600, days=1)
    assert (shift.username, shift.trust, shift.subspecialty) == ("a.rad", "A", "neuro")
    assert shift.on_at(start + 60)
    rota.remove_shift(archive, admin, pk)
    assert rota.shifts(archive, start=start, days=1) == []
