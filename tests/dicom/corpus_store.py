"""pydicom's corpus sent to rix by outside peers, and what rix must answer for each file.

DCMTK storescu sends the files in uncompressed syntaxes (one association per syntax, the
file's own syntax proposed alone, so nothing is converted); pynetdicom sends the rest as
their exact bytes: compressed and deflated files, and files DCMTK will not send.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydicom.uid import DeflatedExplicitVRLittleEndian
from pynetdicom import build_context

from tests.peers import corpus, dcmtk, scu
from tests.peers.corpus import CorpusFile
from tests.peers.objects import object_keys
from tests.peers.server import RixServer


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent:
    """One corpus file sent to rix and the C-STORE response it got."""

    file: CorpusFile
    sender: str  # "storescu" or "pynetdicom"
    dataset: bytes  # exactly the Data Set that went over the network
    status: int | None  # None: the sender could not send it
    error_comment: str

    @property
    def name(self) -> str:
        return self.file.name

    @property
    def archived(self) -> bytes:
        """What rix must keep: the bytes sent, except that a deflated Data Set of odd
        length gets the trailing NUL that PS3.5 A.5 requires."""
        if self.file.transfer_syntax == DeflatedExplicitVRLittleEndian and len(self.dataset) % 2:
            return self.dataset + b"\x00"
        return self.dataset


@dataclass(frozen=True, slots=True, kw_only=True)
class CorpusStore:
    sent: tuple[Sent, ...]  # in the order sent
    new_objects: frozenset[str]  # object files that appeared under data/objects

    def by_name(self) -> dict[str, Sent]:
        return {s.name: s for s in self.sent}


def storescu_batches() -> list[tuple[str, list[CorpusFile]]]:
    """Files storescu sends, one batch (one association) per transfer syntax."""
    files = [f for f in corpus.readable() if f.storescu_sends]
    return [
        (ts, [f for f in files if f.transfer_syntax == ts]) for ts in sorted(dcmtk.PROPOSE_ONLY)
    ]


def pynetdicom_files() -> list[CorpusFile]:
    return [f for f in corpus.readable() if not f.storescu_sends]


def capture_storescu_bytes() -> dict[str, bytes]:
    """What storescu puts on the wire for each file it sends (it re-encodes, e.g. drops
    trailing padding), captured by a pynetdicom SCP that accepts what rix accepts."""
    sent: dict[str, bytes] = {}
    with scu.CaptureSCP() as capture:
        for ts, files in storescu_batches():
            before = len(capture.received)
            answers = dcmtk.storescu(capture.port, [f.path for f in files], ts, called="CAPTURE")
            got = capture.received[before:]
            sent_files = [f for f, a in zip(files, answers, strict=True) if a.status == 0]
            assert len(got) == len(sent_files) == len(files), "storescu skipped a file"
            for file, captured in zip(sent_files, got, strict=True):
                assert captured.sop_instance_uid == file.sop_instance_uid
                assert captured.transfer_syntax == ts
                sent[file.name] = captured.dataset
    return sent


def send_corpus(rix_server: RixServer, storescu_bytes: dict[str, bytes]) -> CorpusStore:
    """Every readable corpus file to ``rix_server``; what each got, and the new objects."""
    before = object_keys(rix_server.data)
    sent: list[Sent] = []
    for ts, files in storescu_batches():
        answers = dcmtk.storescu(rix_server.dicom_port, [f.path for f in files], ts)
        for file, answer in zip(files, answers, strict=True):
            sent.append(
                Sent(
                    file=file,
                    sender="storescu",
                    dataset=storescu_bytes[file.name],
                    status=answer.status,
                    error_comment=answer.error_comment,
                )
            )
    sent.extend(_send_with_pynetdicom(rix_server.dicom_port, pynetdicom_files()))
    new = object_keys(rix_server.data) - before
    return CorpusStore(sent=tuple(sent), new_objects=frozenset(new))


def _send_with_pynetdicom(port: int, files: Iterable[CorpusFile]) -> list[Sent]:
    files = list(files)
    pairs = dict.fromkeys((f.command_sop_class, f.transfer_syntax) for f in files)
    contexts = [build_context(cls, [ts]) for cls, ts in pairs]
    assert len(contexts) <= 128
    out = []
    with scu.association(port, contexts) as assoc:
        for file in files:
            status = scu.store_bytes(
                assoc,
                sop_class=file.command_sop_class,
                sop_instance=file.command_sop_instance,
                transfer_syntax=file.transfer_syntax,
                dataset=file.dataset,
            )
            out.append(
                Sent(
                    file=file,
                    sender="pynetdicom",
                    dataset=file.dataset,
                    status=int(status.Status),
                    error_comment=str(status.get("ErrorComment", "")),
                )
            )
    return out


# What rix must answer (PS3.4 B.2.3), the policy being keep-first
SUCCESS, WARNING_COERCION, CANNOT_UNDERSTAND = 0x0000, 0xB000, 0xC000
# A dataset whose bytes are not in the transfer syntax it came with: the file meta says
# JPEG Baseline (explicit VR) but the dataset is encoded in implicit VR.
NOT_IN_ITS_SYNTAX = frozenset({"test_files/SC_rgb_jpeg.dcm"})


def refusal(file: CorpusFile) -> str:
    """Why rix must refuse to archive ``file`` (PS3.4 B.2.3 0xC000), '' when it must not."""
    if not file.sop_class_uid:
        return "SOPClassUID is missing"
    if not file.study_uid:
        return "StudyInstanceUID is missing"
    if file.name in corpus.TRUNCATED:
        return "truncated"
    if file.name in NOT_IN_ITS_SYNTAX:
        return "not explicit VR"
    return ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Expected:
    status: int
    first: Sent | None = None  # the copy kept current for this SOP Instance UID


def expected(sent: tuple[Sent, ...]) -> dict[str, Expected]:
    """keep-first: the first copy of a UID is stored; a later copy is a plain success
    when its bytes are the same, a warning when they differ."""
    first: dict[str, Sent] = {}
    out = {}
    for s in sent:
        if refusal(s.file):
            out[s.name] = Expected(status=CANNOT_UNDERSTAND)
            continue
        kept = first.setdefault(s.file.sop_instance_uid, s)
        same = kept.archived == s.archived
        out[s.name] = Expected(status=SUCCESS if same else WARNING_COERCION, first=kept)
    return out
