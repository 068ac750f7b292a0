"""Outgoing copies: a stored instance as it leaves rix for one destination.

Every way out (C-MOVE and C-GET, routing's C-STORE and STOW-RS, WADO-RS, ``rix export``
and downloads) sends the stored bytes unchanged when it can: when the destination takes
the stored transfer syntax and no identity change applies. Otherwise the instance is
decoded, given the identity it goes out with (``rix.region.identity.Outgoing.of``: the
destination trust's patient ID, or outside media reconciled to a local record) and
re-encoded: in the transfer syntax the destination asked for or, for a DICOM peer that
accepted none of the stored one, decompressed to Explicit VR Little Endian (transcoding
only on request, DESIGN.md).

Over DIMSE, pynetdicom re-encodes every Dataset it is given; ``AsStored`` and
``send_as_stored`` make it send the stored file's Data Set bytes instead.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import _config, build_context
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext

from rix.dataset import transcode
from rix.index import queries
from rix.region import identity
from rix.store import ObjectStore

UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
CHUNK = 1 << 20
MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1..255


def unchanged(
    item: queries.StoredInstance, coercion: identity.Coercion | None, target: str
) -> bool:
    """Whether the stored bytes themselves are the copy (``target`` '': as stored)."""
    return coercion is None and target in ("", item.transfer_syntax)


def decoded(
    store: ObjectStore,
    item: queries.StoredInstance,
    coercion: identity.Coercion | None,
    target: str = "",
) -> Dataset:
    """The instance decoded, with the identity ``coercion`` gives it and, when ``target``
    is another syntax than the stored one, re-encoded in it (``transcode.CannotTranscode``
    if rix cannot)."""
    with store.open(item.storage_key) as f:
        ds = dcmread(f)
    if coercion is not None:
        coercion.apply(ds)
    if target and target != item.transfer_syntax:
        transcode.to_syntax(ds, target)
    return ds


def encoded(
    store: ObjectStore,
    item: queries.StoredInstance,
    coercion: identity.Coercion | None,
    target: str = "",
) -> bytes:
    """The decoded copy as a Part 10 file (one instance in memory)."""
    return transcode.encoded(decoded(store, item, coercion, target))


def streamed(
    store: ObjectStore,
    item: queries.StoredInstance,
    coercion: identity.Coercion | None,
    target: str = "",
) -> Iterator[bytes]:
    """The copy's Part 10 bytes: the stored object read in pieces of ``CHUNK`` as they
    are taken (a 2 GB instance never sits in memory) when nothing changes; else the
    re-encoded copy, whole."""
    if not unchanged(item, coercion, target):
        yield encoded(store, item, coercion, target)
        return
    with store.open(item.storage_key) as f:
        while chunk := f.read(CHUNK):
            yield chunk


def for_association(
    store: ObjectStore,
    item: queries.StoredInstance,
    accepted: Sequence[PresentationContext],
    coercion: identity.Coercion | None,
    target: str = "",
) -> Dataset:
    """What one C-STORE (a C-MOVE or C-GET sub-operation, or a routed send) hands to
    pynetdicom: ``AsStored`` when the peer accepted the stored syntax and the identity
    stays; else the decoded copy, in ``target`` when one is asked for, decompressed when
    the peer accepted only uncompressed syntaxes for a compressed instance."""
    if target and target != item.transfer_syntax:
        return decoded(store, item, coercion, target)
    stored_ts = UID(item.transfer_syntax)
    offered = {
        str(ts)
        for cx in accepted
        if cx.abstract_syntax == item.sop_class_uid
        for ts in cx.transfer_syntax
    }
    if coercion is None and str(stored_ts) in offered:
        path = store.local_path(item.storage_key)
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"object {item.storage_key} is missing from the store")
        if path is not None:
            return AsStored(item, path)
    decompress = stored_ts.is_compressed and str(stored_ts) not in offered
    fallback = ExplicitVRLittleEndian if decompress and offered & set(UNCOMPRESSED) else ""
    return decoded(store, item, coercion, fallback)  # keeps the SOP Instance UID


def contexts_for(
    stored: Sequence[queries.StoredInstance], target: str = ""
) -> list[PresentationContext]:
    """One context per stored (SOP class, syntax), plus an uncompressed fallback per
    class; with a transcoding ``target``, that syntax alone for every SOP class."""
    classes = dict.fromkeys(s.sop_class_uid for s in stored)
    if target:
        return [build_context(cls, [target]) for cls in classes][:MAX_CONTEXTS]
    pairs = dict.fromkeys((s.sop_class_uid, s.transfer_syntax) for s in stored)
    contexts = [build_context(cls, [ts]) for cls, ts in pairs]
    contexts.extend(build_context(cls, list(UNCOMPRESSED)) for cls in classes)
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
