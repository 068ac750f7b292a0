"""The one access policy: who may see which studies, as an SQL filter, and the audit trail.

Every front end (DIMSE, DICOMweb, the portal, FHIR) turns its caller into a ``Principal``
and passes ``scope(principal)`` to every index read, so nothing is fetched and then
discarded, and no endpoint decides access on its own (DESIGN.md, "Access").

The rules:

- A user sees their own trust's studies when one of their roles is clinical or a trust
  administrator's; region administrators and auditors see no images.
- Another trust's studies only when the two trusts have a sharing agreement AND the
  patient has a legitimate relationship with the user's trust (an order, encounter or
  referral there) or the user declared break-glass for the patient, with a reason, and
  it has not expired.
- A DICOM AE registered to a trust sees as that trust's staff do, without break-glass
  (a machine cannot declare one); an AE identified with a user (User Identity
  Negotiation, PS3.7 D.3.3.7) is that user.
- An unregistered AE (only when ``accept_any_ae`` is on, loopback only) sees only what
  no trust owns: the laptop demo's anonymous peers.
- A share link (``rix.sharing``) sees exactly the studies shared, while the share is
  neither expired, revoked nor locked, read from the index on every query: a revocation
  or an expiry stops a viewer already open at its next request. It reads DICOMweb and the
  viewer and nothing else (``require_share_route``), never writes, and downloads only when
  the share allows it.
- A radiologist's reporting worklist lists the studies of their trust and of its partner
  trusts (``reporting_scope``); a partner's images open to them only while they hold a
  claim on the study, and stay open once they wrote a report of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from threading import Lock
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Float,
    Select,
    and_,
    bindparam,
    exists,
    false,
    or_,
    select,
    true,
)

from rix import audit
from rix.auth.users import Role, User
from rix.errors import AccessDenied, Conflict
from rix.index.attributes import Level
from rix.index.queries import Match
from rix.index.schema import (
    break_glass,
    relationships,
    report_claims,
    reports,
    share_studies,
    shares,
    studies,
)
from rix.region import mpi, trusts
from rix.region.trusts import Trust

if TYPE_CHECKING:
    from rix.ingest import IngestResult

IMAGE_ROLES = frozenset({Role.CLINICIAN, Role.RADIOLOGIST, Role.RADIOGRAPHER, Role.TRUST_ADMIN})
BREAK_GLASS_ROLES = frozenset({Role.CLINICIAN, Role.RADIOLOGIST})


class PrincipalKind(StrEnum):
    USER = "user"
    AE = "ae"  # a registered DICOM peer acting for its trust
    ANONYMOUS_AE = "anonymous-ae"  # accepted only because accept_any_ae is on
    SYSTEM = "system"  # rix itself: the command line on the server, jobs
    SHARE = "share"  # a second-opinion link opened in a browser (rix.sharing)


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    kind: PrincipalKind
    name: str  # user name or AE title
    source: str = ""  # where the request came from: an address
    trust: Trust | None = None
    roles: frozenset[Role] = field(default_factory=frozenset)
    user_pk: int | None = None
    share_pk: int | None = None
    may_download: bool = False  # a share's recipient may download its studies

    @classmethod
    def of_user(cls, user: User, source: str) -> Principal:
        return cls(
            kind=PrincipalKind.USER,
            name=user.username,
            source=source,
            trust=user.trust,
            roles=user.roles,
            user_pk=user.pk,
        )

    @classmethod
    def of_ae(cls, title: str, trust: Trust | None, source: str) -> Principal:
        kind = PrincipalKind.AE if trust is not None else PrincipalKind.ANONYMOUS_AE
        return cls(kind=kind, name=title, source=source, trust=trust)

    @classmethod
    def of_share(cls, share_pk: int, trust: Trust, may_download: bool, source: str) -> Principal:
        """The recipient of a share: named by the share, never by the token, so audit
        lines and logs carry nothing that opens it."""
        return cls(
            kind=PrincipalKind.SHARE,
            name=f"share:{share_pk}",
            source=source,
            trust=trust,
            share_pk=share_pk,
            may_download=may_download,
        )

    @property
    def trust_code(self) -> str:
        return "" if self.trust is None else self.trust.code

    @property
    def sees_images(self) -> bool:
        if self.kind is PrincipalKind.USER:
            return self.trust is not None and bool(self.roles & IMAGE_ROLES)
        return True


SYSTEM = Principal(kind=PrincipalKind.SYSTEM, name="rix")


def scope(principal: Principal) -> ColumnElement[bool] | None:
    """SQL over ``studies`` alone selecting what ``principal`` may see; None is
    everything (rix itself). Every index read takes it (``rix.index.queries``).

    Built once per (trust, user) and reused: the current time is bound when the query
    runs, and agreements, relationships and break-glass are read by the query itself, so a
    change to any of them applies to the next query.
    """
    if principal.kind is PrincipalKind.SYSTEM:
        return None
    if principal.kind is PrincipalKind.ANONYMOUS_AE:
        return studies.c.trust_pk.is_(None)
    if principal.kind is PrincipalKind.SHARE:
        return false() if principal.share_pk is None else _share_scope(principal.share_pk)
    if not principal.sees_images or principal.trust is None:
        return false()
    reporter = Role.RADIOLOGIST in principal.roles
    return _scope(principal.trust.pk, principal.user_pk, reporter)


@lru_cache(maxsize=4096)
def _scope(trust_pk: int, user_pk: int | None, reporter: bool = False) -> ColumnElement[bool]:
    now = bindparam("now", callable_=time.time, type_=Float)
    # EXISTS correlated on the row's person: an index probe per candidate row, whatever
    # the number of the trust's relationships (IN (SELECT ...) read them all, every query)
    grounds = [
        _probe(
            select(relationships.c.id).where(
                relationships.c.trust_pk == trust_pk,
                relationships.c.person_pk == studies.c.person_pk,
                or_(relationships.c.expires_at.is_(None), relationships.c.expires_at > now),
            )
        )
    ]
    if user_pk is not None:
        grounds.append(
            _probe(
                select(break_glass.c.id).where(
                    break_glass.c.user_pk == user_pk,
                    break_glass.c.person_pk == studies.c.person_pk,
                    break_glass.c.expires_at > now,
                )
            )
        )
    if user_pk is not None and reporter:
        # a partner's study the radiologist claimed to report, or reported
        # (rix.workflow.reporting): its images open with the claim and stay open to the
        # report's author; probes on report_claims' primary key and ix_reports_study_uid
        grounds.append(
            _probe(
                select(report_claims.c.study_uid).where(
                    report_claims.c.study_uid == studies.c.study_uid,
                    report_claims.c.user_pk == user_pk,
                    report_claims.c.expires_at > now,
                )
            )
        )
        grounds.append(
            _probe(
                select(reports.c.id).where(
                    reports.c.study_uid == studies.c.study_uid, reports.c.author_pk == user_pk
                )
            )
        )
    # "+ 0": the owner is a filter, never the index to scan (SQLite has no statistics and
    # would read every visible study through ix_studies_trust_pk before the LIMIT)
    owner = studies.c.trust_pk + 0
    shared = and_(owner.in_(trusts.partners(trust_pk)), or_(*grounds))
    return or_(owner == trust_pk, shared)


@lru_cache(maxsize=4096)
def _share_scope(share_pk: int) -> ColumnElement[bool]:
    now = bindparam("now", callable_=time.time, type_=Float)
    shared = (
        select(share_studies.c.study_uid)
        .join(shares, shares.c.id == share_studies.c.share_pk)
        .where(
            share_studies.c.share_pk == share_pk,
            shares.c.expires_at > now,
            shares.c.revoked_at.is_(None),
            shares.c.locked_at.is_(None),
        )
    )
    return studies.c.study_uid.in_(shared)


def _probe(query: Select[Any]) -> ColumnElement[bool]:
    """EXISTS, looked up per candidate row through its index.

    ``OFFSET 0`` stops PostgreSQL turning the EXISTS into a hash of every relationship of
    the trust, built on every query: with 100,000 relationships a page of 100 studies
    took 12.8 ms that way against 1.9 ms unfiltered, and takes 2.2 ms as a probe.
    """
    return exists(query.offset(0))


def require_role(principal: Principal, *roles: Role) -> None:
    """Administrative actions: the principal must hold one of ``roles``."""
    if principal.kind is PrincipalKind.SYSTEM:
        return
    if not principal.roles & set(roles):
        raise AccessDenied(f"needs the role {' or '.join(r.value for r in roles)}")


def require_trust_admin(principal: Principal, trust: str) -> None:
    """Region administrators manage every trust; trust administrators their own."""
    if principal.kind is PrincipalKind.SYSTEM or Role.REGION_ADMIN in principal.roles:
        return
    if Role.TRUST_ADMIN in principal.roles and principal.trust_code == trust.strip().upper():
        return
    raise AccessDenied(f"needs region-admin, or trust-admin of {trust}")


def require_transfer(
    conn: Connection, principal: Principal, trust: Trust, from_trust: str, person_pk: int
) -> None:
    """Who may send a patient's images to ``trust`` (and so open them to its staff):
    clinical staff of that trust; of the trust the patient leaves only when it holds a
    record of theirs (else anyone could open any patient to another trust); or rix itself
    (an HL7 feed from the receiving trust's own system, the command line)."""
    if principal.kind is PrincipalKind.SYSTEM:
        return
    if not principal.roles & IMAGE_ROLES:
        raise AccessDenied("transfers are requested by clinical staff")
    if principal.trust_code == trust.code:
        return
    if principal.trust is not None and principal.trust_code == from_trust.strip().upper():
        issuers = {r.issuer for r in mpi.records_of_person(conn, person_pk)}
        if principal.trust.issuer in issuers:
            return
    raise AccessDenied(
        "transfers are requested by the receiving trust, or by the trust holding the patient"
    )


def require_send(principal: Principal, destination_trust: str) -> None:
    """Who may send a study they can see to a DICOM destination: clinical staff, to an AE
    registered to their own trust (the trust's PACS, a workstation, a printer). Sending to
    another trust's AE would open the images to that trust: that is a transfer
    (``require_transfer``), with its own checks."""
    if principal.kind is PrincipalKind.SYSTEM:
        return
    if not principal.roles & IMAGE_ROLES:
        raise AccessDenied("studies are sent by clinical staff")
    if principal.trust is None or principal.trust_code != destination_trust:
        raise AccessDenied("studies are sent to your own trust's DICOM destinations")


def require_import(principal: Principal) -> Trust:
    """Who may import outside media: a signed-in user with a clinical role (or
    trust-admin) at a trust, which becomes the owner of what is stored; returns it."""
    if principal.kind is not PrincipalKind.USER:
        raise AccessDenied("outside media are imported by a signed-in user")
    require_store(principal)
    if principal.trust is None:
        raise AccessDenied("importing needs a user of a trust")
    return principal.trust


def require_own_record(trust: Trust, issuer: str, ref: str) -> None:
    """Outside media are reconciled only to records of the importing trust: choosing
    another trust's record would file images under a patient it does not hold."""
    if issuer != trust.issuer:
        raise AccessDenied(f"{ref!r} is not a patient record of {trust.code}")


def require_prefetch(principal: Principal, trust: str) -> None:
    """A patient's priors are fetched to a trust by its own clinical staff, or by rix."""
    if principal.kind is PrincipalKind.SYSTEM:
        return
    if principal.trust_code != trust.strip().upper() or not principal.roles & IMAGE_ROLES:
        raise AccessDenied("priors are fetched by clinical staff for their own trust")


def declare_break_glass(
    conn: Connection, principal: Principal, person_pk: int, reason: str, hours: float
) -> float:
    """Open a patient's records at partner trusts to this user for ``hours``; returns
    when it expires. Audited as a security alert by the caller (``record``)."""
    if principal.user_pk is None:
        raise AccessDenied("only a signed-in user can declare break-glass")
    if not principal.roles & BREAK_GLASS_ROLES:
        raise AccessDenied("break-glass is for clinicians and radiologists")
    reason = reason.strip()
    if len(reason) < 10:
        raise Conflict("break-glass needs a reason of at least 10 characters")
    now = time.time()
    expires = now + hours * 3600
    conn.execute(
        break_glass.insert().values(
            user_pk=principal.user_pk,
            person_pk=person_pk,
            reason=reason,
            created_at=now,
            expires_at=expires,
        )
    )
    return expires


def record_relationship(
    conn: Connection,
    principal: Principal,
    *,
    trust: Trust,
    person_pk: int,
    kind: str,
    reference: str = "",
    expires_at: float | None = None,
) -> None:
    """An order, encounter or referral for the person at ``trust`` (the workflow issue
    feeds these from HL7; until then an API records them)."""
    if kind not in ("order", "encounter", "referral"):
        raise Conflict("a relationship is an order, encounter or referral")
    if principal.kind is not PrincipalKind.SYSTEM:
        if principal.trust is None or principal.trust.pk != trust.pk:
            raise AccessDenied("relationships are recorded by the patient's trust")
        require_role(principal, *IMAGE_ROLES)
    same = conn.execute(
        select(relationships.c.id).where(
            relationships.c.trust_pk == trust.pk,
            relationships.c.person_pk == person_pk,
            relationships.c.kind == kind,
            relationships.c.reference == reference,
            relationships.c.expires_at.is_(None) if expires_at is None else false(),
        )
    ).first()
    if same is not None:  # the same order sent twice is one relationship
        return
    conn.execute(
        relationships.insert().values(
            trust_pk=trust.pk,
            person_pk=person_pk,
            kind=kind,
            reference=reference,
            recorded_by=principal.name,
            created_at=time.time(),
            expires_at=expires_at,
        )
    )


def person_named(conn: Connection, *, nhs_number: str = "", patient: str = "") -> int:
    """The person a request names, by NHS number or by a record ``issuer/patient ID``."""
    if nhs_number:
        return mpi.person_for_nhs(conn, nhs_number)
    return mpi.person_of(conn, mpi.find_record(conn, patient).pk)


# --- second opinions: who shares, who manages a share, what a share's recipient reaches ---

SHARE_ROLES = frozenset({Role.CLINICIAN, Role.RADIOLOGIST})
# what a share's browser session may ask for: reading DICOMweb, the viewer, its own pages
SHARE_READS = ("/dicomweb/", "/wado", "/viewer/")
SHARE_PAGES = ("/share/",)  # and "/share" itself; not "/shares", the senders' list


def require_share(principal: Principal) -> None:
    """Who sends a study out for a second opinion: a signed-in clinician or radiologist
    (the studies themselves must be in their scope: ``rix.sharing`` asks ``scope``)."""
    if principal.kind is not PrincipalKind.USER or principal.user_pk is None:
        raise AccessDenied("studies are shared by a signed-in user")
    if not principal.roles & SHARE_ROLES or principal.trust is None:
        raise AccessDenied("studies are shared by clinicians and radiologists")


def may_manage_share(principal: Principal, *, owner_pk: int, trust_pk: int) -> bool:
    """A share is seen and revoked by its owner, its trust's administrators and the
    region's."""
    if principal.kind is PrincipalKind.SYSTEM or Role.REGION_ADMIN in principal.roles:
        return True
    if principal.user_pk is not None and principal.user_pk == owner_pk:
        return True
    return (
        Role.TRUST_ADMIN in principal.roles
        and principal.trust is not None
        and principal.trust.pk == trust_pk
    )


def managed_shares(principal: Principal) -> ColumnElement[bool]:
    """``may_manage_share`` as SQL over ``shares``, for listing them."""
    if principal.kind is PrincipalKind.SYSTEM or Role.REGION_ADMIN in principal.roles:
        return true()
    mine: list[ColumnElement[bool]] = []
    if principal.user_pk is not None:
        mine.append(shares.c.owner_pk == principal.user_pk)
    if Role.TRUST_ADMIN in principal.roles and principal.trust is not None:
        mine.append(shares.c.trust_pk == principal.trust.pk)
    return or_(*mine) if mine else false()


def require_manage_share(principal: Principal, *, owner_pk: int, trust_pk: int) -> None:
    if not may_manage_share(principal, owner_pk=owner_pk, trust_pk=trust_pk):
        raise AccessDenied("a share is managed by its owner and administrators")


def require_share_route(principal: Principal, method: str, path: str) -> None:
    """A share's recipient reads DICOMweb and the viewer (limited to the shared studies by
    ``scope``) and their share's own pages; every other route (the API, the portal,
    STOW-RS) is refused, whatever it would have checked itself."""
    if principal.kind is not PrincipalKind.SHARE:
        return
    if path == "/share" or path.startswith(SHARE_PAGES):
        return
    if method in ("GET", "HEAD") and path.startswith(SHARE_READS):
        return
    raise AccessDenied("a shared study is read-only, in the viewer and its share page")


def require_download(principal: Principal) -> None:
    """Downloads (a zip of the study): whoever sees the study, except a share's recipient
    when the sender did not allow it."""
    if principal.kind is PrincipalKind.SHARE and not principal.may_download:
        raise AccessDenied("the sender did not allow downloads of this share")


# --- the audit trail: every access to patient data, recorded once, here ---


@dataclass(frozen=True, slots=True, kw_only=True)
class Touched:
    """Which patient and study an event is about (PS3.15 A.5 participant objects)."""

    study_uid: str = ""
    patient: str = ""  # issuer/patient ID
    nhs_number: str = ""


Submit = Callable[[Callable[[Connection], Any]], Any]


def record(
    submit: Submit,
    principal: Principal,
    kind: audit.Kind,
    outcome: audit.Outcome,
    touched: Touched | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Write one audit event through the index writer: ``IndexWriter.submit`` commits it
    before the caller answers, ``IndexWriter.post`` in the next group commit."""
    submit(lambda conn: record_in(conn, principal, kind, outcome, touched, detail))


def record_in(
    conn: Connection,
    principal: Principal,
    kind: audit.Kind,
    outcome: audit.Outcome,
    touched: Touched | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """One audit event in the caller's transaction: for a change that must commit with
    its own record (``rix.region.admin``)."""
    touched = touched or Touched()
    audit.record(
        conn,
        kind=kind.value,
        outcome=outcome.value,
        actor=principal.name,
        source=principal.source,
        study_uid=touched.study_uid,
        detail=detail,
        trust=principal.trust_code,
        patient=touched.patient,
        nhs_number=touched.nhs_number,
    )


def record_login(
    submit: Submit, principal: Principal, outcome: audit.Outcome, via: str, **detail: str
) -> None:
    """One sign-in attempt, from any door (login page, bearer token, DICOM user identity)."""
    record(submit, principal, audit.Kind.LOGIN, outcome, None, {"via": via, **detail})


def require_store(principal: Principal) -> None:
    """Storing makes images a trust's: a user needs a clinical role at one (an AE's
    trust, or none for an anonymous AE, is who it stores for); a share's recipient reads."""
    if principal.kind is PrincipalKind.SHARE:
        raise AccessDenied("a shared study is read-only")
    if principal.kind is PrincipalKind.USER and not principal.sees_images:
        raise AccessDenied("storing images needs a clinical role at a trust")


@dataclass
class StoreTally:
    """What one association or request stored, per study, until it is audited once."""

    studies: dict[str, list[Any]] = field(default_factory=dict)  # uid → [n, patient, nhs]
    failures: list[str] = field(default_factory=list)
    lock: Lock = field(default_factory=Lock)  # an import stores from several threads

    def stored(self, result: IngestResult) -> None:
        with self.lock:
            entry = self.studies.setdefault(
                result.study_uid, [0, result.patient, result.nhs_number]
            )
            entry[0] += 1

    def failed(self, reason: str) -> None:
        with self.lock:
            self.failures.append(reason[:200])

    def record(self, submit: Submit, principal: Principal) -> None:
        for study_uid, (count, patient, nhs_number) in self.studies.items():
            touched = Touched(study_uid=study_uid, patient=patient, nhs_number=nhs_number)
            record(
                submit,
                principal,
                audit.Kind.STORE,
                audit.Outcome.SUCCESS,
                touched,
                {"instances": count},
            )
        if self.failures:
            record(
                submit,
                principal,
                audit.Kind.STORE,
                audit.Outcome.FAILURE,
                None,
                {"failed": len(self.failures), "reasons": sorted(set(self.failures))[:10]},
            )
        self.studies.clear()
        self.failures.clear()


def record_query(
    submit: Submit,
    principal: Principal,
    level: Level,
    matches: Sequence[Match],
    rows: Sequence[dict[str, Any]],
) -> None:
    """One query event: the keys asked (the DICOM "Query" audit message carries the query
    itself) and, when the answer names one study or one patient, who it was about."""
    keys = {m.attribute.keyword: m.value for m in matches if not m.is_universal}
    studies_found = {r.get("StudyInstanceUID", "") for r in rows} - {""}
    patients_found = {(r.get("IssuerOfPatientID", ""), r.get("PatientID", "")) for r in rows}
    touched = Touched()
    if len(studies_found) == 1:
        touched = Touched(study_uid=next(iter(studies_found)))
    if len(patients_found) == 1:
        issuer, patient_id = next(iter(patients_found))
        touched = Touched(study_uid=touched.study_uid, patient=f"{issuer}/{patient_id}")
    detail = {"level": level.value, "keys": keys, "matches": len(rows)}
    record(submit, principal, audit.Kind.QUERY, audit.Outcome.SUCCESS, touched, detail)


# --- radiology workflow: turnaround ---


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnaroundView:
    """What a principal's turnaround dashboard counts (``scope``: SQL over ``studies``,
    None for all) and whether it may name the studies it counts (UID, accession)."""

    scope: ColumnElement[bool] | None
    identifiers: bool


def require_turnaround(principal: Principal) -> TurnaroundView:
    """Staff with a clinical role or trust-admin count what they may see, and may follow a
    study to open it; region administrators and auditors, who see no images, count every
    trust's studies without naming one (a backlog is a regional matter; its studies are
    not theirs to open); rix itself (the alert check) counts and names everything."""
    if principal.kind is PrincipalKind.SYSTEM:
        return TurnaroundView(scope=None, identifiers=True)
    if principal.kind is PrincipalKind.USER and principal.roles & {
        Role.REGION_ADMIN,
        Role.AUDITOR,
    }:
        return TurnaroundView(scope=None, identifiers=False)
    if principal.kind is PrincipalKind.USER and principal.sees_images:
        seen = scope(principal)
        if Role.RADIOLOGIST in principal.roles and seen is not None and principal.trust:
            # the shared worklist lists partners' studies: their backlog is theirs to count
            seen = or_(seen, _reporting_scope(principal.trust.pk))
        return TurnaroundView(scope=seen, identifiers=True)
    raise AccessDenied("turnaround is for staff of a trust, region administrators and auditors")


# --- radiology workflow: reporting ---


def require_reporter(principal: Principal) -> Trust:
    """Reports are written by a signed-in radiologist of a trust, as themselves (a report
    is signed by a person); returns their trust."""
    if principal.kind is not PrincipalKind.USER or principal.user_pk is None:
        raise AccessDenied("reports are written by a signed-in radiologist")
    if Role.RADIOLOGIST not in principal.roles or principal.trust is None:
        raise AccessDenied("reporting needs the role radiologist at a trust")
    return principal.trust


def reporting_scope(principal: Principal) -> ColumnElement[bool]:
    """SQL over ``studies``: what a radiologist's worklist lists, their own trust's
    studies and those of every trust theirs has a sharing agreement with. Listing is not
    opening: a partner's images open only through a claim or a report (``_scope``)."""
    return _reporting_scope(require_reporter(principal).pk)


@lru_cache(maxsize=1024)
def _reporting_scope(trust_pk: int) -> ColumnElement[bool]:
    return or_(studies.c.trust_pk == trust_pk, studies.c.trust_pk.in_(trusts.partners(trust_pk)))


def require_reportable(conn: Connection, principal: Principal, study_uid: str) -> None:
    """A radiologist claims, and reports, only studies on their worklist."""
    query = select(studies.c.id).where(studies.c.study_uid == study_uid, reporting_scope(principal))
    if conn.execute(query).first() is None:
        raise AccessDenied("this study is not on the reporting worklist of your trust")


# --- radiology workflow: orders ---


def require_order(principal: Principal, trust: str) -> None:
    """Who may place, change, cancel or reconcile a trust's orders: its clinical staff and
    trust administrators, or rix itself (the trust's own HL7 feed, whose sender
    ``rix.hl7`` has checked). An order opens the patient's images at partner trusts to
    the trust's staff (it is a relationship), so nobody else may make one."""
    if principal.kind is PrincipalKind.SYSTEM:
        return
    if principal.kind is not PrincipalKind.USER or not principal.roles & IMAGE_ROLES:
        raise AccessDenied("orders are placed by a trust's clinical staff")
    if principal.trust_code != trust.strip().upper():
        raise AccessDenied(f"orders of {trust} are placed by its own staff")


def require_orders_read(principal: Principal) -> Trust | None:
    """Whose orders a principal may list: a trust's clinical staff and administrators
    their own trust's; rix itself every trust's (None)."""
    if principal.kind is PrincipalKind.SYSTEM:
        return None
    if principal.kind is not PrincipalKind.USER or principal.trust is None:
        raise AccessDenied("orders are read by a trust's staff")
    if not principal.roles & IMAGE_ROLES:
        raise AccessDenied("orders are read by clinical staff and trust administrators")
    return principal.trust


def require_patient_change(principal: Principal, trust: str) -> None:
    """Correcting or merging a trust's patient records (as its ADT A08/A40 would): the
    trust's administrators, region administrators, or the trust's own feed."""
    if principal.kind is PrincipalKind.SYSTEM or Role.REGION_ADMIN in principal.roles:
        return
    require_trust_admin(principal, trust)


def worklist_trust(principal: Principal) -> Trust | None:
    """The trust whose scheduled orders a Modality Worklist query sees: a registered AE's
    trust, or the trust of the user an association names; an unregistered AE sees none."""
    if principal.kind is PrincipalKind.AE:
        return principal.trust
    if principal.kind is PrincipalKind.USER and principal.sees_images:
        return principal.trust
    return None


def require_mpps(principal: Principal) -> Trust:
    """Performed procedure steps move a trust's orders: only from an AE registered to the
    trust (or a user of it); an unregistered AE's MPPS is refused."""
    trust = worklist_trust(principal)
    if trust is None:
        raise AccessDenied("MPPS is accepted from AEs registered to a trust")
    return trust


def end_order_relationship(
    conn: Connection, *, trust_pk: int, person_pk: int, reference: str
) -> None:
    """A cancelled order was never a reason to see the patient: its relationship ends now
    (other orders and encounters of the patient at the trust keep theirs)."""
    conn.execute(
        relationships.update()
        .where(
            relationships.c.trust_pk == trust_pk,
            relationships.c.person_pk == person_pk,
            relationships.c.kind == "order",
            relationships.c.reference == reference,
            or_(relationships.c.expires_at.is_(None), relationships.c.expires_at > time.time()),
        )
        .values(expires_at=time.time())
    )
