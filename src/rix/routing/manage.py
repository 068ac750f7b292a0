"""Managing jobs and rules: who may, and the audit event, in one place for the command
line and the API (as ``rix.region.admin`` does for the region)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from rix import access, audit
from rix.access import ADMIN_ROLES, Principal, checks, trail
from rix.archive import Archive
from rix.auth.users import Role
from rix.errors import NotFound
from rix.index import queries
from rix.index.database import begin_write
from rix.jobs import queue
from rix.jobs.queue import Job, State
from rix.region import aes
from rix.routing import deliver, rules


def list_jobs(
    archive: Archive,
    principal: Principal,
    *,
    states: Sequence[State] = (),
    kind: str = "",
    parent_pk: int | None = None,
    limit: int = 100,
) -> list[Job]:
    checks.require_role(principal, *ADMIN_ROLES)
    own = checks.administered_trust(principal)
    with archive.engine.connect() as conn:
        return queue.listing(
            conn, states=states, kind=kind, parent_pk=parent_pk, trust_pk=own, limit=limit
        )


def job_detail(archive: Archive, principal: Principal, pk: int) -> dict[str, Any]:
    """A job, and for a transfer or prefetch the progress of its deliveries."""
    with archive.engine.connect() as conn:
        job = queue.get(conn, pk)
        checks.require_job_admin(principal, job.trust_pk)
        done, count, instances = queue.children_progress(conn, pk)
    return {**as_dict(job), "deliveries": {"done": done, "of": count, "instances": instances}}


def _change(archive: Archive, principal: Principal, pk: int, action: str) -> Job:
    with begin_write(archive.engine) as conn:
        job = queue.get(conn, pk)
        checks.require_job_admin(principal, job.trust_pk)
        if action == "retry":
            queue.retry(conn, pk)
        else:
            queue.cancel(conn, pk)
        trail.record_in(
            conn,
            principal,
            audit.Kind.ADMIN,
            audit.Outcome.SUCCESS,
            None,
            {"action": f"job {action}", "job": pk, "kind": job.kind},
        )
        changed = queue.get(conn, pk)
    queue.wake()
    return changed


def retry_job(archive: Archive, principal: Principal, pk: int) -> Job:
    return _change(archive, principal, pk, "retry")


def cancel_job(archive: Archive, principal: Principal, pk: int) -> Job:
    return _change(archive, principal, pk, "cancel")


def load_rules(archive: Archive, principal: Principal, text: str) -> list[rules.Rule]:
    """Replace the rules in force (region-admin): checked whole before any is applied."""
    checks.require_role(principal, Role.REGION_ADMIN)
    parsed = rules.parse(text)

    def change(conn: Connection) -> None:
        rules.replace_all(conn, parsed)
        trail.record_in(
            conn,
            principal,
            audit.Kind.ADMIN,
            audit.Outcome.SUCCESS,
            None,
            {"action": "routing rules load", "rules": [r.name for r in parsed]},
        )

    with begin_write(archive.engine) as conn:
        change(conn)
    return parsed


def rules_in_force(archive: Archive, principal: Principal) -> list[rules.Rule]:
    checks.require_role(principal, *ADMIN_ROLES)
    with archive.engine.connect() as conn:
        return rules.in_force(conn)


def as_dict(job: Job) -> dict[str, Any]:
    return {
        "id": job.pk,
        "kind": job.kind,
        "state": job.state.value,
        "priority": job.priority,
        "label": job.label,
        "parent": job.parent_pk,
        "attempts": job.attempts,
        "created_at": job.created_at,
        "run_at": job.run_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "done": job.done,
        "total": job.total,
        "last_error": job.last_error,
    }


def send_study(archive: Archive, principal: Principal, study_uid: str, ae_title: str) -> int:
    """Queue a study the caller may see for a DICOM destination of their trust that
    stores (the portal's "send"; ``checks.require_send`` decides); the request is audited
    here, each delivery by the send job."""
    peer = aes.get(archive.engine, ae_title)
    if peer is None:
        raise NotFound(f"no DICOM destination {ae_title!r}")
    checks.require_send(principal, peer)
    with begin_write(archive.engine) as conn:
        patient = queries.patient_of_study(conn, study_uid, scope=access.scope(principal))
        if patient is None:
            raise NotFound("no such study")
        pk = deliver.schedule(
            conn,
            study_uid=study_uid,
            destination=rules.Destination(ae=peer.title),
            priority=queue.Priority.URGENT,
            reason=f"sent by {principal.name}",
            requested_by=principal.name,
            trust_pk=principal.trust.pk if principal.trust is not None else None,
        )
        touched = trail.Touched(
            study_uid=study_uid, patient=patient.ref, nhs_number=patient.nhs_number
        )
        trail.record_in(
            conn,
            principal,
            audit.Kind.TRANSFER,
            audit.Outcome.SUCCESS,
            touched,
            {"requested": True, "destination": peer.title, "job": pk},
        )
    return pk


def send_destinations(archive: Archive, principal: Principal) -> list[aes.RemoteAE]:
    """The AEs the caller may send a study to: their own trust's that store, as
    ``checks.may_send`` decides, so the list offers nothing the send would refuse."""
    return [peer for peer in aes.all_aes(archive.engine) if checks.may_send(principal, peer)]
