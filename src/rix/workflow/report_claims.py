"""Claims on the shared reporting worklist: a radiologist takes a study to report it, so
two never report the same study at once.

A claim is one row of ``report_claims``, whose primary key is the study: two radiologists
claiming at once both INSERT, and the database lets exactly one in, on SQLite and on
PostgreSQL alike. A claim lasts ``CLAIM_SECONDS`` and is renewed while its holder works
on the report; an expired claim is anyone's to take.

Claiming opens the study's images to the radiologist while the claim lasts
(``access.scope``'s reporting ground); every claim and release is audited.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import tzinfo

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from rix import audit, times
from rix.access import EVERYTHING, Principal, radiology, trail
from rix.archive import Archive
from rix.errors import AccessDenied, Conflict, NotFound
from rix.index import queries
from rix.index.database import begin_write
from rix.index.schema import users
from rix.index.workflow_tables import report_claims

CLAIM_SECONDS = 2 * 3600.0  # renewed by every save in the editor


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    study_uid: str
    username: str
    claimed_at: float
    expires_at: float


def touched(conn: Connection, study_uid: str) -> trail.Touched:
    """Who a study is about, for the audit trail (404 when there is no such study)."""
    patient = queries.patient_of_study(conn, study_uid, scope=EVERYTHING)
    if patient is None:
        raise NotFound("no such study")
    return trail.Touched(study_uid=study_uid, patient=patient.ref, nhs_number=patient.nhs_number)


def reportable(archive: Archive, conn: Connection, principal: Principal, study_uid: str) -> None:
    """``access.radiology.require_reportable``, with a refusal audited like any refused read."""
    try:
        radiology.require_reportable(conn, principal, study_uid)
    except AccessDenied:
        trail.record(
            archive.writer.post,
            principal,
            audit.Kind.RETRIEVE,
            audit.Outcome.REFUSED,
            touched(conn, study_uid),
            {"report": "not on the worklist of the user's trust"},
        )
        raise


def _holder(conn: Connection, study_uid: str, now: float) -> Claim | None:
    row = conn.execute(
        select(report_claims, users.c.username)
        .join(users, users.c.id == report_claims.c.user_pk)
        .where(report_claims.c.study_uid == study_uid, report_claims.c.expires_at > now)
    ).first()
    if row is None:
        return None
    return Claim(
        study_uid=study_uid,
        username=row.username,
        claimed_at=row.claimed_at,
        expires_at=row.expires_at,
    )


def _held_by_other(claim: Claim, zone: tzinfo) -> Conflict:
    """Names the holder and when the claim lapses: the date and zone as people read them
    (``display_timezone``) and ISO 8601, so a bare "21:42" never leaves a reader (a person
    in another zone, a script) guessing the day or the zone."""
    until = f"{times.shown(claim.expires_at, zone)}, {times.iso(claim.expires_at)}"
    return Conflict(f"this study is being reported by {claim.username} (claimed until {until})")


def hold(conn: Connection, principal: Principal, study_uid: str, zone: tzinfo) -> Claim:
    """Claim the study for ``principal``, or renew their claim, in the caller's write
    transaction; ``Conflict`` naming the holder when another radiologist has it."""
    assert principal.user_pk is not None
    now = time.time()
    expires = now + CLAIM_SECONDS
    renewed = conn.execute(
        update(report_claims)
        .where(
            report_claims.c.study_uid == study_uid,
            report_claims.c.user_pk == principal.user_pk,
            report_claims.c.expires_at > now,
        )
        .values(expires_at=expires)
    )
    if renewed.rowcount:
        return Claim(
            study_uid=study_uid, username=principal.name, claimed_at=now, expires_at=expires
        )
    conn.execute(
        delete(report_claims).where(
            report_claims.c.study_uid == study_uid, report_claims.c.expires_at <= now
        )
    )
    try:
        with conn.begin_nested():  # the primary key lets one claimant in; the other lands here
            conn.execute(
                insert(report_claims).values(
                    study_uid=study_uid,
                    user_pk=principal.user_pk,
                    claimed_at=now,
                    expires_at=expires,
                )
            )
    except IntegrityError:
        holder = _holder(conn, study_uid, now)
        raise (
            _held_by_other(holder, zone)
            if holder is not None
            else Conflict("the study was claimed at this very moment; try again")
        ) from None
    return Claim(study_uid=study_uid, username=principal.name, claimed_at=now, expires_at=expires)


def claim(archive: Archive, principal: Principal, study_uid: str) -> Claim:
    """Take a study off the shared worklist to report it (or renew one's own claim)."""
    radiology.require_reporter(principal)
    with begin_write(archive.engine) as conn:
        reportable(archive, conn, principal, study_uid)
        who = touched(conn, study_uid)
        held = hold(conn, principal, study_uid, archive.settings.display_timezone)
        detail = {"action": "report claim", "expires_at": round(held.expires_at)}
        trail.record_in(conn, principal, audit.Kind.ADMIN, audit.Outcome.SUCCESS, who, detail)
    return held


def release(archive: Archive, principal: Principal, study_uid: str) -> bool:
    """Give a claimed study back to the worklist; False when ``principal`` held none.
    Another radiologist's claim is theirs to release (or to lapse)."""
    radiology.require_reporter(principal)
    with begin_write(archive.engine) as conn:
        who = touched(conn, study_uid)
        if not release_in(conn, principal, study_uid):
            holder = claim_of(conn, study_uid)
            if holder is not None:
                raise _held_by_other(holder, archive.settings.display_timezone)
            return False
        detail = {"action": "report release"}
        trail.record_in(conn, principal, audit.Kind.ADMIN, audit.Outcome.SUCCESS, who, detail)
    return True


def release_in(conn: Connection, principal: Principal, study_uid: str) -> bool:
    """Delete ``principal``'s claim on the study in the caller's transaction."""
    gone = conn.execute(
        delete(report_claims).where(
            report_claims.c.study_uid == study_uid,
            report_claims.c.user_pk == principal.user_pk,
        )
    )
    return bool(gone.rowcount)


def claim_of(conn: Connection, study_uid: str) -> Claim | None:
    """The claim on a study, when one is in force."""
    return _holder(conn, study_uid, time.time())


def holds(conn: Connection, principal: Principal, study_uid: str) -> bool:
    claim_now = claim_of(conn, study_uid)
    return claim_now is not None and claim_now.username == principal.name
