"""Query/Retrieve C-MOVE and C-GET SCP (PS3.4 C.4.2, C.4.3).

Instances are sent as stored: when the peer accepted the stored transfer syntax, the
stored file's Data Set bytes go out unchanged (byte-identical to what was received).
Only when the peer accepted none of it is the instance decoded, and decompressed to
Explicit VR Little Endian (transcoding only on request, DESIGN.md); and only when its
identity must change on the way out (``rix.region.identity.outgoing``: the destination
trust's patient ID, or outside media reconciled to a local record) is it decoded to
carry that identity.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import _config, build_context, evt
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContext

from rix import access, audit
from rix.access import EVERYTHING, trail
from rix.archive import Archive
from rix.dataset import transcode
from rix.dicom import identifiers
from rix.dicom.principal import principal_of
from rix.dicom.store import status
from rix.errors import NOT_AUTHORIZED, AccessDenied, InvalidQuery, QueryStatus, RixError
from rix.index import queries
from rix.index.attributes import UNIQUE_KEY
from rix.region import aes, identity
from rix.region.trusts import Trust
from rix.retrieve.network import set_nodelay
from rix.store.files import FileStore

log = structlog.get_logger(__name__)
UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1..255


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
    if refused is not None:
        for row in {r.get("StudyInstanceUID", r["PatientID"]): r for r in refused.hidden}.values():
            touched = trail.Touched(
                study_uid=row.get("StudyInstanceUID", ""),
                patient=f"{row['IssuerOfPatientID']}/{row['PatientID']}",
            )
            trail.record(
                archive.writer.submit,
                principal,
                audit.Kind.RETRIEVE,
                audit.Outcome.REFUSED,
                touched,
                {"destination": destination, "reason": refused.reason},
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


def contexts_for(stored: list[queries.StoredInstance]) -> list[PresentationContext]:
    """One context per stored (SOP class, syntax), plus an uncompressed fallback per class."""
    pairs = dict.fromkeys((s.sop_class_uid, s.transfer_syntax) for s in stored)
    contexts = [build_context(cls, [ts]) for cls, ts in pairs]
    for cls in dict.fromkeys(cls for cls, _ts in pairs):
        contexts.append(build_context(cls, list(UNCOMPRESSED)))
    return contexts[:MAX_CONTEXTS]


class AsStored(Dataset):
    """A stored instance to send as its file's Data Set bytes, unchanged.

    pynetdicom's retrieve services take only Datasets and re-encode them with pydicom,
    which drops group length elements (retired, PS3.5 7.2) and deflates anew, so the
    peer would not get what rix received. This carries just the UIDs those services
    read and the file that ``send_as_stored`` hands to pynetdicom's chunked sending.
    """

    def __init__(self, item: queries.StoredInstance, path: Path) -> None:
        super().__init__()
        self.SOPClassUID = UID(item.sop_class_uid)
        self.SOPInstanceUID = UID(item.sop_uid)
        self.stored_path = path


def send_as_stored(assoc: Association) -> None:
    """Make ``assoc`` send ``AsStored`` instances from their files, bytes unchanged, and
    keep each C-STORE response for the send that waits for it.

    pynetdicom pauses the association's reactor thread during a send, but the reactor can
    be between its pause check and its next look at the message queue when the send
    starts; with a fast peer it then takes the C-STORE-RSP itself ("Received unexpected
    C-STORE service message"), the send waits out the DIMSE timeout and every later
    sub-operation of the C-MOVE fails. While a send is in flight the reactor is shown
    an empty queue.
    """
    original = assoc.send_c_store
    if getattr(original, "sends_as_stored", False):
        return
    sending = threading.Event()
    get_msg = assoc.dimse.get_msg

    def reactor_safe_get_msg(block: bool = False) -> Any:
        if not block and sending.is_set():
            return None, None
        return get_msg(block)

    def send_c_store(dataset: Any, *args: Any, **kwargs: Any) -> Dataset:
        if isinstance(dataset, AsStored):
            dataset = dataset.stored_path  # sent chunked: STORE_SEND_CHUNKED_DATASET
        sending.set()
        try:
            return original(dataset, *args, **kwargs)  # type: ignore[no-any-return]
        finally:
            sending.clear()

    send_c_store.sends_as_stored = True  # type: ignore[attr-defined]
    assoc.dimse.get_msg = reactor_safe_get_msg  # type: ignore[method-assign]
    assoc.send_c_store = send_c_store  # type: ignore[method-assign]


def enable_sending_as_stored() -> None:
    """pynetdicom sends a file path's Data Set without decoding it (only rix sends paths)."""
    _config.STORE_SEND_CHUNKED_DATASET = True


def load(
    archive: Archive,
    item: queries.StoredInstance,
    accepted: list[PresentationContext],
    coercion: identity.Coercion | None = None,
) -> Dataset:
    stored_ts = UID(item.transfer_syntax)
    offered = {
        str(ts)
        for cx in accepted
        if cx.abstract_syntax == item.sop_class_uid
        for ts in cx.transfer_syntax
    }
    if coercion is None and str(stored_ts) in offered and isinstance(archive.store, FileStore):
        path = archive.store.path(item.storage_key)
        if not path.is_file():
            raise FileNotFoundError(f"object {item.storage_key} is missing from the store")
        return AsStored(item, path)
    with archive.store.open(item.storage_key) as f:
        ds = dcmread(f)
    if coercion is not None:
        coercion.apply(ds)
    if stored_ts.is_compressed and str(stored_ts) not in offered and offered & set(UNCOMPRESSED):
        transcode.to_syntax(ds, ExplicitVRLittleEndian)  # keeps the SOP Instance UID
    return ds


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
            yield QueryStatus.PENDING, load(archive, item, accepted(), planned.outgoing.of(item))
        except (RixError, OSError, ValueError, RuntimeError) as exc:
            log.warning("retrieve sub-operation could not load", error=str(exc))
            failed = Dataset()
            failed.SOPInstanceUID = item.sop_uid
            yield QueryStatus.PENDING, failed  # counted as a failed sub-operation


def _model(event: Event) -> str:
    request: Any = event.request
    return str(request.AffectedSOPClassUID)


def _refusal(reason: str) -> Dataset:
    return status(NOT_AUTHORIZED, reason)


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
    refused: RixError | None = None
    planned = Plan(stored=[], outgoing=identity.AS_STORED)
    try:
        planned = plan(archive, event.identifier, _model(event), principal, destination.trust)
    except RixError as exc:
        refused = exc
    sub_assoc: dict[str, Any] = {}

    def established(ev: Event) -> None:
        send_as_stored(ev.assoc)
        sub_assoc["assoc"] = ev.assoc

    yield (
        destination.host,
        destination.port,
        {
            "contexts": contexts_for(planned.stored) or [build_context("1.2.840.10008.1.1")],
            "ae_title": destination.title,
            "evt_handlers": [(evt.EVT_CONN_OPEN, set_nodelay), (evt.EVT_ESTABLISHED, established)],
        },
    )
    if isinstance(refused, Refused):
        audit_retrieve(archive, principal, [], title, refused)
        yield 1
        yield _refusal(refused.reason), None
        return
    if refused is not None:
        log.warning("c-move refused", reason=refused.reason)
        raise refused  # pynetdicom answers a failure (0xC513) before associating
    audit_retrieve(archive, principal, planned.stored, title)
    yield len(planned.stored)

    def accepted() -> list[PresentationContext]:
        assoc = sub_assoc.get("assoc")
        return list(assoc.accepted_contexts) if assoc is not None else []

    yield from _sub_operations(archive, planned, accepted, event)


def handle_get(event: Event, archive: Archive) -> Iterator[Any]:
    principal = principal_of(event)
    requester = event.assoc.requestor.ae_title.strip()
    try:
        planned = plan(archive, event.identifier, _model(event), principal, principal.trust)
    except Refused as exc:
        audit_retrieve(archive, principal, [], requester, exc)
        yield 1
        yield _refusal(exc.reason), None
        return
    except RixError as exc:
        log.warning("c-get refused", reason=exc.reason)
        raise  # pynetdicom answers a failure status
    audit_retrieve(archive, principal, planned.stored, requester)
    yield len(planned.stored)
    send_as_stored(event.assoc)
    yield from _sub_operations(archive, planned, lambda: list(event.assoc.accepted_contexts), event)
