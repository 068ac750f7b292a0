"""pynetdicom as an outside peer: associations, C-STORE of exact bytes, a capturing SCP."""

from __future__ import annotations

import io
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import (
    AllTransferSyntaxes,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, _config, build_context, build_role, evt
from pynetdicom.association import Association
from pynetdicom.presentation import AllStoragePresentationContexts, PresentationContext

from rix.retrieve.network import set_nodelay
from tests.peers.server import free_port

HOST = "127.0.0.1"
NODELAY = [(evt.EVT_CONN_OPEN, set_nodelay)]
# Given a file path, pynetdicom sends the file's Data Set bytes as they are, undecoded.
# Set once for the test process: toggling it per send races between sending threads.
_config.STORE_SEND_CHUNKED_DATASET = True


def new_ae(ae_title: str = "RIXTEST") -> AE:
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    return ae


@contextmanager
def association(
    port: int,
    contexts: Sequence[PresentationContext],
    *,
    calling: str = "RIXTEST",
    called: str = "RIX",
    **kwargs: Any,
) -> Iterator[Association]:
    """An established association to ``port``; released (or aborted) on exit."""
    ae = new_ae(calling)
    handlers = NODELAY + list(kwargs.pop("evt_handlers", []))
    assoc = ae.associate(
        HOST, port, list(contexts), ae_title=called, evt_handlers=handlers, **kwargs
    )
    assert assoc.is_established, f"association to {called}@{port} was not established"
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def part10(sop_class: str, sop_instance: str, transfer_syntax: str, dataset: bytes) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = transfer_syntax
    out = io.BytesIO()
    out.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=False)  # type: ignore[arg-type]
    return out.getvalue() + dataset


def store_bytes(
    assoc: Association,
    *,
    sop_class: str,
    sop_instance: str,
    transfer_syntax: str,
    dataset: bytes,
) -> Dataset:
    """C-STORE whose Data Set is exactly ``dataset`` (needs an exactly matching context).

    The bytes go through a Part 10 file because that is how pynetdicom sends undecoded
    data (``STORE_SEND_CHUNKED_DATASET``); the file meta itself is not sent.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "dataset.dcm"
        path.write_bytes(part10(sop_class, sop_instance, transfer_syntax, dataset))
        status: Dataset = assoc.send_c_store(path)
    assert "Status" in status, "no C-STORE response (association aborted?)"
    return status


def encode(ds: Dataset, transfer_syntax: str = ExplicitVRLittleEndian) -> bytes:
    """``ds`` encoded as a C-STORE carries it (no file meta); compressed syntaxes are
    explicit VR little endian with the pixel data left as it is."""
    out = DicomBytesIO()
    out.is_little_endian = transfer_syntax != ExplicitVRBigEndian
    out.is_implicit_VR = transfer_syntax == ImplicitVRLittleEndian
    write_dataset(out, ds)
    return bytes(out.getvalue())


def store_datasets(
    port: int, datasets: Sequence[Dataset], *, transfer_syntax: str = ExplicitVRLittleEndian
) -> list[int]:
    """Store datasets on one association; their statuses in order."""
    classes = dict.fromkeys(str(ds.SOPClassUID) for ds in datasets)
    contexts = [build_context(c, [transfer_syntax]) for c in classes]
    statuses = []
    with association(port, contexts) as assoc:
        for ds in datasets:
            status = store_bytes(
                assoc,
                sop_class=str(ds.SOPClassUID),
                sop_instance=str(ds.SOPInstanceUID),
                transfer_syntax=transfer_syntax,
                dataset=encode(ds, transfer_syntax),
            )
            statuses.append(int(status.Status))
    return statuses


@dataclass(frozen=True, slots=True, kw_only=True)
class Captured:
    sop_instance_uid: str
    transfer_syntax: str
    dataset: bytes


class CaptureSCP:
    """A storage SCP that keeps the exact Data Set bytes of every C-STORE, in order.

    It accepts what rix accepts (every storage class, one syntax per proposed context,
    the first proposed), so a sender behaves towards it as it does towards rix.
    """

    def __init__(self, ae_title: str = "CAPTURE", answers: dict[str, int] | None = None) -> None:
        self.ae_title = ae_title
        self.port = free_port()
        self.answers = answers or {}  # SOP Instance UID → the status to answer (default 0)
        self.received: list[Captured] = []
        self.connections = 0  # every connection opened to it, accepted or not
        self._lock = threading.Lock()
        self._ae = new_ae(ae_title)
        for cx in AllStoragePresentationContexts:
            assert cx.abstract_syntax is not None
            self._ae.add_supported_context(
                cx.abstract_syntax, list(AllTransferSyntaxes), scu_role=True, scp_role=True
            )
        self._server: Any = None

    def _on_store(self, event: Any) -> int:
        captured = Captured(
            sop_instance_uid=str(event.request.AffectedSOPInstanceUID),
            transfer_syntax=str(event.context.transfer_syntax),
            dataset=event.request.DataSet.getvalue(),
        )
        with self._lock:
            self.received.append(captured)
        return self.answers.get(captured.sop_instance_uid, 0x0000)

    def _on_open(self, _event: Any) -> None:
        with self._lock:
            self.connections += 1

    def __enter__(self) -> CaptureSCP:
        self._server = self._ae.start_server(
            (HOST, self.port),
            block=False,
            evt_handlers=[
                *NODELAY,
                (evt.EVT_CONN_OPEN, self._on_open),
                (evt.EVT_C_STORE, self._on_store),
            ],
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()


STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"


@dataclass(frozen=True, slots=True, kw_only=True)
class FindResult:
    matches: list[Dataset]  # identifiers of the pending responses, in order
    status: int  # the final status
    error_comment: str


def find(
    port: int,
    identifier: Dataset,
    *,
    model: str = STUDY_ROOT_FIND,
    transfer_syntax: str | None = None,
) -> FindResult:
    """C-FIND on its own association; every pending identifier and the final status."""
    matches: list[Dataset] = []
    syntaxes = [transfer_syntax] if transfer_syntax else None
    with association(port, [build_context(model, syntaxes)]) as assoc:
        for status, found in assoc.send_c_find(identifier, model):
            assert "Status" in status, "no C-FIND response (association aborted?)"
            if status.Status in (0xFF00, 0xFF01):
                matches.append(found)
                continue
            return FindResult(
                matches=matches,
                status=int(status.Status),
                error_comment=str(status.get("ErrorComment", "")),
            )
    raise AssertionError("C-FIND ended without a final response")


def query(level: str, charset: str = "", **keys: Any) -> Dataset:
    """An identifier: QueryRetrieveLevel plus keys given as keyword=value."""
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrieveResult:
    """The final response of a C-MOVE or C-GET and what the peer stored meanwhile."""

    status: int
    completed: int
    failed: int
    warning: int
    failed_uids: list[str]
    pending: int  # pending responses before the final one
    stored: list[Captured]  # C-GET only: the sub-operations' data sets, as received
    error_comment: str = ""


def _retrieve_result(
    responses: Iterator[tuple[Dataset, Dataset | None]], stored: list[Captured]
) -> RetrieveResult:
    pending = 0
    for status, identifier in responses:
        assert "Status" in status, "no response (association aborted?)"
        if status.Status in (0xFF00, 0xFF01):
            pending += 1
            continue
        failed = identifier.get("FailedSOPInstanceUIDList", []) if identifier else []
        return RetrieveResult(
            status=int(status.Status),
            completed=int(status.get("NumberOfCompletedSuboperations") or 0),
            failed=int(status.get("NumberOfFailedSuboperations") or 0),
            warning=int(status.get("NumberOfWarningSuboperations") or 0),
            failed_uids=[failed] if isinstance(failed, str) else [str(u) for u in failed],
            pending=pending,
            stored=stored,
            error_comment=str(status.get("ErrorComment", "")),
        )
    raise AssertionError("retrieve ended without a final response")


def get(
    port: int,
    identifier: Dataset,
    storage: Sequence[tuple[str, str]],
    *,
    model: str = STUDY_ROOT_GET,
    answers: dict[str, int] | None = None,
) -> RetrieveResult:
    """C-GET accepting ``storage`` (SOP class, transfer syntax) pairs as storage SCP;
    ``answers`` are C-STORE statuses other than success, by SOP Instance UID."""
    stored: list[Captured] = []

    def on_store(event: Any) -> int:
        captured = Captured(
            sop_instance_uid=str(event.request.AffectedSOPInstanceUID),
            transfer_syntax=str(event.context.transfer_syntax),
            dataset=event.request.DataSet.getvalue(),
        )
        stored.append(captured)
        return (answers or {}).get(captured.sop_instance_uid, 0x0000)

    contexts = [build_context(model)] + [build_context(c, [ts]) for c, ts in storage]
    roles = [build_role(c, scp_role=True) for c in dict.fromkeys(c for c, _ts in storage)]
    with association(
        port, contexts, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    ) as assoc:
        return _retrieve_result(assoc.send_c_get(identifier, model), stored)


def move(
    port: int,
    identifier: Dataset,
    destination: str,
    *,
    model: str = STUDY_ROOT_MOVE,
    calling: str = "RIXTEST",
) -> RetrieveResult:
    with association(port, [build_context(model)], calling=calling) as assoc:
        return _retrieve_result(assoc.send_c_move(identifier, destination, model), [])
