"""The on-call reporting rota: who reports what, now and over the next days.

A shift is a radiologist, a time span, and optionally the trust they report for (none:
the region) and a sub-specialty. The rota names staff, never patients, so every
signed-in user of the portal may read it; region administrators keep it, and trust
administrators keep their own trust's shifts (``access.checks.require_trust_admin``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from rix import audit
from rix.access import Principal, checks, trail
from rix.archive import Archive
from rix.auth.users import Role, get_user
from rix.errors import Conflict, NotFound
from rix.index.database import begin_write
from rix.index.schema import trusts, users
from rix.index.workflow_tables import rota_shifts
from rix.region.trusts import get_trust

DAY = 86400.0
LONGEST_SHIFT = 7 * DAY


@dataclass(frozen=True, slots=True, kw_only=True)
class Shift:
    pk: int
    username: str
    name: str  # display name, or the user name
    trust: str  # '' : the region
    subspecialty: str
    starts_at: float
    ends_at: float

    def on_at(self, moment: float) -> bool:
        return self.starts_at <= moment < self.ends_at

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "username": self.username,
            "name": self.name,
            "trust": self.trust,
            "subspecialty": self.subspecialty,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
        }


def shifts(archive: Archive, *, start: float, days: float) -> list[Shift]:
    """Shifts that overlap ``days`` days from ``start``, earliest first."""
    end = start + days * DAY
    query = (
        select(rota_shifts, users.c.username, users.c.display_name, trusts.c.code)
        .join(users, users.c.id == rota_shifts.c.user_pk)
        .outerjoin(trusts, trusts.c.id == rota_shifts.c.trust_pk)
        .where(rota_shifts.c.starts_at < end, rota_shifts.c.ends_at > start)
        .order_by(rota_shifts.c.starts_at, users.c.username)
    )
    with archive.engine.connect() as conn:
        return [
            Shift(
                pk=r.id,
                username=r.username,
                name=r.display_name or r.username,
                trust=r.code or "",
                subspecialty=r.subspecialty,
                starts_at=r.starts_at,
                ends_at=r.ends_at,
            )
            for r in conn.execute(query)
        ]


def _require_keeper(principal: Principal, trust: str) -> None:
    if trust:
        checks.require_trust_admin(principal, trust)
    else:
        checks.require_role(principal, Role.REGION_ADMIN)


def add_shift(
    archive: Archive,
    principal: Principal,
    *,
    username: str,
    trust: str,
    subspecialty: str,
    starts_at: float,
    ends_at: float,
) -> int:
    """Put a radiologist on the rota; returns the shift's id."""
    trust = trust.strip().upper()
    _require_keeper(principal, trust)
    if not 0 < ends_at - starts_at <= LONGEST_SHIFT:
        raise Conflict("a shift ends after it starts, and lasts at most 7 days")
    subspecialty = subspecialty.strip().lower()[:32]
    with begin_write(archive.engine) as conn:
        user = get_user(conn, username)
        if Role.RADIOLOGIST not in user.roles or not user.active:
            raise Conflict(f"{username} is not an active radiologist")
        trust_pk = get_trust(conn, trust).pk if trust else None
        pk = int(
            conn.execute(
                insert(rota_shifts)
                .values(
                    user_pk=user.pk,
                    trust_pk=trust_pk,
                    subspecialty=subspecialty,
                    starts_at=starts_at,
                    ends_at=ends_at,
                )
                .returning(rota_shifts.c.id)
            ).scalar_one()
        )
        _audit(conn, principal, "rota add", pk, username=username, trust=trust)
    return pk


def remove_shift(archive: Archive, principal: Principal, pk: int) -> None:
    with begin_write(archive.engine) as conn:
        row = conn.execute(
            select(rota_shifts.c.id, trusts.c.code)
            .outerjoin(trusts, trusts.c.id == rota_shifts.c.trust_pk)
            .where(rota_shifts.c.id == pk)
        ).first()
        if row is None:
            raise NotFound(f"no shift {pk}")
        _require_keeper(principal, row.code or "")
        conn.execute(delete(rota_shifts).where(rota_shifts.c.id == pk))
        _audit(conn, principal, "rota remove", pk)


def _audit(conn: Connection, principal: Principal, action: str, pk: int, **detail: str) -> None:
    trail.record_in(
        conn,
        principal,
        audit.Kind.ADMIN,
        audit.Outcome.SUCCESS,
        None,
        {"action": action, "shift": pk, **detail},
    )
