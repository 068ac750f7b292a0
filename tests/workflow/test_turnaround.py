"""A synthetic week across three trusts drives the turnaround dashboard: exact counts by
age band, breaches, the oldest unreported study and the trend, on SQLite and PostgreSQL,
as each kind of principal may see them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from rix.access import SYSTEM, Principal, PrincipalKind
from rix.access.radiology import require_turnaround
from rix.archive import Archive
from rix.auth.users import Role
from rix.config import Settings, SettingsError, load
from rix.errors import AccessDenied
from rix.region.trusts import get_trust
from rix.workflow import orders, reporting_worklist, turnaround, turnaround_dashboard
from rix.workflow.turnaround_dashboard import Summary
from tests.peers import postgres
from tests.peers.archive import opened
from tests.workflow.week import NOW, D, H, Week, load_week


@pytest.fixture(scope="module")
def week(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Archive, Week]]:
    url = postgres.create_database(migrated=True) if backend == "postgresql" else ""
    try:
        with opened(tmp_path_factory.mktemp("week") / "data", url) as archive:
            yield archive, load_week(archive)
    finally:
        if url:
            postgres.drop_database(url)


def user(archive: Archive, trust: str | None, *roles: Role) -> Principal:
    with archive.engine.connect() as conn:
        found = None if trust is None else get_trust(conn, trust)
    return Principal(
        kind=PrincipalKind.USER, name="someone", source="test", trust=found, roles=frozenset(roles)
    )


def summary(archive: Archive, principal: Principal = SYSTEM, **filters: object) -> Summary:
    with archive.engine.connect() as conn:
        return turnaround_dashboard.summarise(
            conn,
            archive.settings,
            require_turnaround(principal),
            now=NOW,
            **filters,  # type: ignore[arg-type]
        )


def test_unreported_studies_are_counted_by_age_band(week: tuple[Archive, Week]) -> None:
    total = summary(week[0]).total
    assert total.bands == (1, 2, 1, 2, 1)  # <1h, 1-4h, 4-24h, 1-7d, >7d
    assert total.unreported == 7


def test_breaches_are_unreported_past_target_and_reports_signed_late(
    week: tuple[Archive, Week],
) -> None:
    total = summary(week[0]).total
    assert total.breached == 3  # a2 (emergency by its second order), a3, a4
    assert (total.reported, total.reported_late) == (5, 2)  # r2 and r4 were late
    assert total.median_turnaround == 20 * H  # of 0.5h, 3h, 20h, 30h, 6d


def test_the_oldest_unreported_study_is_named_with_how_late_it_is(
    week: tuple[Archive, Week],
) -> None:
    archive, w = week
    oldest = summary(archive).total.oldest
    assert oldest is not None
    assert (oldest.age, oldest.priority, oldest.overdue) == (10 * D, "outpatient", 3 * D)
    assert oldest.study_uid == w.uids["a4"]


def test_each_trust_and_modality_is_a_group(week: tuple[Archive, Week]) -> None:
    groups = {(g.trust, g.modality): g for g in summary(week[0]).groups}
    assert sorted(groups) == [("EMH", "CT"), ("EMH", "MR"), ("NGH", "CT"), ("SSX", "CR")]
    emh_ct = groups["EMH", "CT"]
    assert (emh_ct.bands, emh_ct.breached, emh_ct.reported, emh_ct.reported_late) == (
        (1, 1, 0, 1, 0),
        2,
        2,
        1,
    )
    assert emh_ct.median_turnaround == (0.5 * H + 3 * H) / 2
    assert groups["EMH", "MR"].bands == (0, 0, 1, 0, 1)
    assert groups["NGH", "CT"].median_turnaround == 25 * H
    assert (groups["SSX", "CR"].bands, groups["SSX", "CR"].reported_late) == ((0, 0, 0, 1, 0), 0)


def test_the_trend_counts_arrivals_reports_and_breaches_per_day(
    week: tuple[Archive, Week],
) -> None:
    trend = summary(week[0], days=7).trend
    assert [d.date for d in trend] == [f"2025-03-{n:02}" for n in range(8, 15)]
    assert [d.arrivals for d in trend] == [0, 1, 0, 1, 2, 2, 4]
    assert [d.reported for d in trend] == [0, 0, 1, 1, 2, 0, 1]
    assert [d.median_turnaround for d in trend] == [
        None,
        None,
        30 * H,
        3 * H,
        (0.5 * H + 6 * D) / 2,
        None,
        20 * H,
    ]
    assert [d.breaches for d in trend] == [0, 0, 1, 2, 0, 0, 2]


def test_filters_narrow_to_a_trust_and_a_modality(week: tuple[Archive, Week]) -> None:
    archive = week[0]
    ngh = summary(archive, trust="ngh")
    assert [(g.trust, g.modality) for g in ngh.groups] == [("NGH", "CT")]
    assert ngh.total.unreported == 1
    ct = summary(archive, modality="CT")
    assert [(g.trust, g.modality) for g in ct.groups] == [("EMH", "CT"), ("NGH", "CT")]
    assert sum(d.arrivals for d in ct.trend) == 8  # a1-a3, b1, r1-r4


def test_staff_count_what_they_may_see_and_region_admins_count_without_names(
    week: tuple[Archive, Week],
) -> None:
    archive = week[0]
    clinician = summary(archive, user(archive, "EMH", Role.CLINICIAN))
    assert {g.trust for g in clinician.groups} == {"EMH"}
    assert clinician.total.oldest is not None and clinician.total.oldest.study_uid
    # the EMH radiologist's worklist shares NGH's backlog (an agreement), not SSX's
    radiologist = summary(archive, user(archive, "EMH", Role.RADIOLOGIST))
    assert {g.trust for g in radiologist.groups} == {"EMH", "NGH"}
    admin = summary(archive, user(archive, None, Role.REGION_ADMIN))
    assert admin.total.unreported == 7 and not admin.identifiers
    assert admin.total.oldest is not None
    assert (admin.total.oldest.study_uid, admin.total.oldest.accession_number) == ("", "")


def test_a_study_has_one_order_for_the_worklist_the_dashboard_and_its_report(
    week: tuple[Archive, Week],
) -> None:
    """a2: an outpatient order, then an emergency one (the most urgent is the study's); a5:
    an emergency CT since discontinued, then an outpatient MR (an ended order is not)."""
    archive, w = week
    radiologist = dataclasses.replace(user(archive, "EMH", Role.RADIOLOGIST), user_pk=1)
    everything = reporting_worklist.Filters(statuses=tuple(reporting_worklist.WorklistStatus))
    listed = {i.study_uid: i for i in reporting_worklist.worklist(archive, radiologist, everything)}
    with archive.engine.connect() as conn:
        timed = {
            c.study_uid: c
            for c in turnaround.cases(
                conn, archive.settings, require_turnaround(SYSTEM), since=NOW - 7 * D
            )
        }
        chosen = {name: orders.order_of_study(conn, w.uids[name]) for name in ("a2", "a5")}
    for name, (priority, modality) in {
        "a2": ("emergency", "CT"),
        "a5": ("outpatient", "MR"),
    }.items():
        order = chosen[name]
        assert order is not None and (order.priority, order.modality) == (priority, modality)
        item, case = listed[w.uids[name]], timed[w.uids[name]]
        assert (item.order_pk, item.priority) == (order.pk, priority), name
        assert (case.priority, case.modality) == (priority, modality), name


def test_a_user_without_a_role_sees_no_turnaround(week: tuple[Archive, Week]) -> None:
    with pytest.raises(AccessDenied):
        require_turnaround(user(week[0], "EMH"))


def test_targets_are_configurable_and_checked_at_start() -> None:
    settings = load({"turnaround_targets": "emergency=30m, inpatient=12h"}, env={})
    assert turnaround.target_seconds(settings, "emergency") == 1800
    assert turnaround.target_seconds(settings, "outpatient") == 12 * H  # the longest
    assert turnaround.target_seconds(Settings(), "outpatient") == 7 * D
    with pytest.raises(SettingsError):
        load({"turnaround_targets": "urgent=1h"}, env={})
    with pytest.raises(SettingsError):
        load({"turnaround_targets": "emergency=soon"}, env={})
