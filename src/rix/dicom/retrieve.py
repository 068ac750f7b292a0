"""Query/Retrieve C-MOVE and C-GET SCP (PS3.4 C.4.2, C.4.3).

Instances are sent as stored (``rix.retrieve.copies``): when the peer accepted the stored
transfer syntax, the stored file's Data Set bytes go out unchanged (byte-identical to
what was received). Only when the peer accepted none of it is the instance decoded, and
decompressed to Explicit VR Little Endian (transcoding only on request, DESIGN.md); and
only when its identity must change on the way out (``rix.region.identity.outgoing``: the
destination trust's patient ID, or outside media reconciled to a local record) is it
decoded to carry that identity.

A C-MOVE is decided before its destination is contacted: a refusal (not authorised, a bad
identifier) is the answer, and no association is opened on its behalf
(``answer_before_associating``). Only an unknown destination is answered 0xA801 Move
Destination Unknown (PS3.4 C.4.2.1.5).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import structlog
from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.dimse_primitives import C_MOVE
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContext
from pynetdicom.service_class import QueryRetrieveServiceClass

from rix import access, audit
from rix.access import EVERYTHING, trail
from rix.archive import Archive
from rix.dicom import identifiers
from rix.dicom.principal import principal_of
from rix.dicom.status import Attempt, attempt
from rix.errors import AccessDenied, InvalidQuery, QueryStatus, RixError
from rix.index import queries
from rix.index.attributes import UNIQUE_KEY
from rix.region import aes, identity
from rix.region.trusts import Trust
from rix.retrieve import copies
from rix.retrieve.network import set_nodelay

log = structlog.get_logger(__name__)


class Refused(AccessDenied):
    """Nothing the principal may see matched, but something did: who and what it was,
    for the audit trail (the caller is told only that it is not authorised)."""

    def __init__(self, reason: str, hidden: list[dict[str, Any]]) -> None:
        super().__init__(reason)
        self.hidden = hidden


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What a retrieve sends, and the identity each patient's copies carry."""

    stored: list[queries.StoredInstance]
    outgoing: identity.Outgoing


def plan(
    archive: Archive,
    identifier: Dataset,
    sop_class: str,
    principal: access.Principal,
    destination: Trust | None,
) -> Plan:
    """The instances an identifier asks for that ``principal`` may see; its level's
    unique key must be given. Nothing visible where something exists is a refusal."""
    query = identifiers.parse(identifier, sop_class)
    unique = UNIQUE_KEY[query.level]
    if not any(m.attribute.keyword == unique and not m.is_universal for m in query.matches):
        raise InvalidQuery(f"a {query.level.value}-level retrieve needs {unique}")
    with archive.engine.connect() as conn:
        stored = queries.stored_instances(conn, query.matches, scope=access.scope(principal))
        if not stored:
            hidden = list(
                queries.find(conn, query.level, query.matches, limit=20, scope=EVERYTHING)
            )
            if hidden:
                raise Refused(
                    "not authorised: the patient's images are not shared with you", hidden
                )
        outgoing = identity.outgoing(conn, stored, destination)
    return Plan(stored=stored, outgoing=outgoing)


def audit_retrieve(
    archive: Archive,
    principal: access.Principal,
    stored: list[queries.StoredInstance],
    destination: str,
    refused: Refused | None = None,
) -> None:
    """One retrieve event per study sent (or refused), committed before sending starts."""
    if refused is not None:  # each event names the record and its NHS number, as WADO's do
        detail = {"destination": destination, "reason": refused.reason}
        trail.record_refused(
            archive.writer.submit, principal, audit.Kind.RETRIEVE, refused.hidden, detail
        )
        return
    with archive.engine.connect() as conn:
        who = queries.patients_by_pk(conn, {s.patient_pk for s in stored})
    per_study: dict[str, list[queries.StoredInstance]] = {}
    for item in stored:
        per_study.setdefault(item.study_uid, []).append(item)
    for study_uid, items in per_study.items():
        ref = who.get(items[0].patient_pk)
        touched = trail.Touched(
            study_uid=study_uid,
            patient="" if ref is None else ref.ref,
            nhs_number="" if ref is None else ref.nhs_number,
        )
        trail.record(
            archive.writer.submit,
            principal,
            audit.Kind.RETRIEVE,
            audit.Outcome.SUCCESS,
            touched,
            {"destination": destination, "instances": len(items)},
        )


def _sub_operations(
    archive: Archive,
    planned: Plan,
    accepted: Callable[[], list[PresentationContext]],
    event: Event,
) -> Iterator[tuple[int, Dataset | None]]:
    for item in planned.stored:
        if event.is_cancelled:
            yield QueryStatus.CANCEL, None
            return
        try:
            yield (
                QueryStatus.PENDING,
                copies.for_association(archive.store, item, accepted(), planned.outgoing.of(item)),
            )
        except (RixError, OSError, ValueError, RuntimeError) as exc:
            log.warning("retrieve sub-operation could not load", error=str(exc))
            failed = Dataset()
            failed.SOPInstanceUID = item.sop_uid
            yield QueryStatus.PENDING, failed  # counted as a failed sub-operation


def _model(event: Event) -> str:
    request: Any = event.request
    return str(request.AffectedSOPClassUID)


def _failed(
    archive: Archive, principal: access.Principal, destination: str, planning: Attempt
) -> Iterator[Any]:
    """A C-GET that cannot go ahead, answered as one failed sub-operation with the
    planning failure's status; a refusal is audited (nothing is sent)."""
    _audit_refusal(archive, principal, destination, planning)
    yield 1
    yield planning.failure, None


def _audit_refusal(
    archive: Archive, principal: access.Principal, destination: str, planning: Attempt
) -> None:
    if isinstance(planning.error, Refused):
        audit_retrieve(archive, principal, [], destination, planning.error)


def handle_move(event: Event, archive: Archive) -> Iterator[Any]:
    principal = principal_of(event)
    title = (
        event.move_destination.decode("ascii", "replace")
        if isinstance(event.move_destination, bytes)
        else str(event.move_destination)
    ).strip()
    destination = aes.get(archive.engine, title)
    if destination is None:
        yield None, None  # 0xA801 Move Destination Unknown
        return
    planned = Plan(stored=[], outgoing=identity.AS_STORED)
    with attempt("c-move", QueryStatus.UNABLE_TO_PROCESS) as planning:
        planned = plan(archive, event.identifier, _model(event), principal, destination.trust)
    if planning.failure is not None:
        _audit_refusal(archive, principal, title, planning)
        yield planning.failure  # the answer; the destination is never contacted
        return
    sub_assoc: dict[str, Any] = {}

    def established(ev: Event) -> None:
        copies.send_as_stored(ev.assoc)
        sub_assoc["assoc"] = ev.assoc

    # nothing matched: pynetdicom answers success with no sub-operations, associating
    # with nobody, so the contexts are never empty when used
    yield (
        destination.host,
        destination.port,
        {
            "contexts": copies.contexts_for(planned.stored),
            "ae_title": destination.title,
            "evt_handlers": [(evt.EVT_CONN_OPEN, set_nodelay), (evt.EVT_ESTABLISHED, established)],
        },
    )
    audit_retrieve(archive, principal, planned.stored, title)
    yield len(planned.stored)

    def accepted() -> list[PresentationContext]:
        assoc = sub_assoc.get("assoc")
        return list(assoc.accepted_contexts) if assoc is not None else []

    yield from _sub_operations(archive, planned, accepted, event)


def answer_before_associating() -> None:
    """Let rix's C-MOVE handler answer a failure without contacting the move destination.

    pynetdicom's C-MOVE SCP (3.0, ``QueryRetrieveServiceClass._move_scp``) associates with
    the destination before it reads any status the handler yields: a refused move would
    open the destination first and, where the destination declines the association, be
    answered 0xA801 instead of its refusal. With this installed, a handler may yield a
    status ``Dataset`` in place of the destination: that status is the final response,
    with no sub-operations (PS3.4 C.4.2.3.1), and nobody else is contacted. Otherwise
    pynetdicom's own SCP goes on with the handler's generator as it stands.
    """
    original = QueryRetrieveServiceClass._move_scp
    if getattr(original, "answers_before_associating", False):
        return

    def move_scp(
        service: QueryRetrieveServiceClass, req: C_MOVE, context: PresentationContext
    ) -> None:
        assoc = service.assoc
        bound: Any = assoc.get_handlers(evt.EVT_C_MOVE)
        if not bound or bound[0] is None:
            original(service, req, context)
            return
        attrs = {"request": req, "context": context.as_tuple, "_is_cancelled": service.is_cancelled}
        with attempt("c-move", QueryStatus.UNABLE_TO_PROCESS) as starting:
            moves = iter(evt.trigger(assoc, evt.EVT_C_MOVE, attrs) or ())
            first = next(moves)
        answer = starting.failure if starting.failure is not None else first
        if isinstance(answer, Dataset):
            _answer_move(service, req, context, answer)
            return
        assoc.bind(evt.EVT_C_MOVE, lambda _event: itertools.chain([first], moves))
        try:
            original(service, req, context)
        finally:
            assoc.bind(evt.EVT_C_MOVE, bound[0], bound[1])

    move_scp.answers_before_associating = True  # type: ignore[attr-defined]
    QueryRetrieveServiceClass._move_scp = move_scp  # type: ignore[method-assign,assignment]


def _answer_move(
    service: QueryRetrieveServiceClass, req: C_MOVE, context: PresentationContext, answer: Dataset
) -> None:
    rsp = C_MOVE()
    rsp.MessageIDBeingRespondedTo = req.MessageID
    rsp.AffectedSOPClassUID = req.AffectedSOPClassUID
    rsp = service.validate_status(answer, rsp)
    rsp.NumberOfCompletedSuboperations = 0
    rsp.NumberOfFailedSuboperations = 0
    rsp.NumberOfWarningSuboperations = 0
    assert context.context_id is not None
    service.dimse.send_msg(rsp, context.context_id)


def handle_get(event: Event, archive: Archive) -> Iterator[Any]:
    principal = principal_of(event)
    requester = event.assoc.requestor.ae_title.strip()
    with attempt("c-get", QueryStatus.UNABLE_TO_PROCESS) as planning:
        planned = plan(archive, event.identifier, _model(event), principal, principal.trust)
    if planning.failure is not None:
        yield from _failed(archive, principal, requester, planning)
        return
    audit_retrieve(archive, principal, planned.stored, requester)
    yield len(planned.stored)
    copies.send_as_stored(event.assoc)
    yield from _sub_operations(archive, planned, lambda: list(event.assoc.accepted_contexts), event)
