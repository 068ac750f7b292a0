"""Retrieval returns each instance bit for bit as it was received (PS3.4 C.4.2, C.4.3).

C-MOVE to a DCMTK storescp and C-GET by DCMTK getscu, both writing what arrives without
re-encoding (``+B``); the Data Set received equals rix's stored object and what was sent
to rix, in the stored transfer syntax.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ImplicitVRLittleEndian, generate_uid
from pynetdicom import build_context

from tests.dicom.corpus_store import CorpusStore, Sent, expected
from tests.peers import corpus, dcmtk, scu
from tests.peers.corpus import CorpusFile
from tests.peers.objects import dataset_of, instance_key, stored
from tests.peers.server import RixServer

# Syntaxes the corpus holds only as later copies of an instance stored first in another
# syntax; sent again under UIDs of their own so that retrieval in them is checked too.
ONLY_AS_LATER_COPIES = (
    "test_files/MR_small_RLE.dcm",
    "test_files/MR_small_jpeg_ls_lossless.dcm",
    "test_files/JPEGLSNearLossless_08.dcm",  # also lacks a Study Instance UID: given one
)


def renamed(file: CorpusFile) -> CorpusFile:
    ds = pydicom.dcmread(file.path)
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        setattr(ds, keyword, generate_uid(entropy_srcs=[file.name, keyword]))
    return replace(
        file,
        dataset=scu.encode(ds, file.transfer_syntax),
        sop_instance_uid=str(ds.SOPInstanceUID),
        study_uid=str(ds.StudyInstanceUID),
        series_uid=str(ds.SeriesInstanceUID),
    )


@pytest.fixture(scope="module")
def kept(corpus_store: CorpusStore, rix_server: RixServer) -> dict[str, Sent]:
    """The copy rix keeps current for each stored SOP Instance UID."""
    firsts = [e.first for e in expected(corpus_store.sent).values() if e.first is not None]
    files = [renamed(f) for f in corpus.readable() if f.name in ONLY_AS_LATER_COPIES]
    contexts = [build_context(f.sop_class_uid, [f.transfer_syntax]) for f in files]
    with scu.association(rix_server.dicom_port, contexts) as assoc:
        for f in files:
            status = scu.store_bytes(
                assoc,
                sop_class=f.sop_class_uid,
                sop_instance=f.sop_instance_uid,
                transfer_syntax=f.transfer_syntax,
                dataset=f.dataset,
            )
            assert status.Status == 0x0000, status
            firsts.append(
                Sent(file=f, sender="pynetdicom", dataset=f.dataset, status=0, error_comment="")
            )
    out = {s.file.sop_instance_uid: s for s in firsts}
    assert len(out) > 100
    return out


@pytest.fixture(scope="module")
def storescp(
    rix_server: RixServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dcmtk.StoreSCP]:
    with dcmtk.storescp(tmp_path_factory.mktemp("storescp") / "in") as scp:
        rix_server.add_ae(scp.ae_title, dcmtk.HOST, scp.port)
        yield scp


def received(folder: Path) -> dict[str, tuple[str, bytes]]:
    """SOP Instance UID → (transfer syntax, Data Set bytes) of every file in ``folder``."""
    out = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        syntax, dataset = dataset_of(path)
        meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
        out[str(meta.MediaStorageSOPInstanceUID)] = (syntax, dataset)
    return out


def assert_as_stored(got: dict[str, tuple[str, bytes]], kept: dict[str, Sent], data: Path) -> None:
    assert sorted(got) == sorted(kept)
    for uid, (syntax, dataset) in got.items():
        s = kept[uid]
        key = instance_key(s.file.study_uid, s.file.series_uid, uid)
        assert (syntax, dataset) == stored(data, key), s.name
        assert (syntax, dataset) == (s.file.transfer_syntax, s.archived), s.name


def test_cmove_to_storescp_delivers_the_stored_bytes(
    rix_server: RixServer, storescp: dcmtk.StoreSCP, kept: dict[str, Sent]
) -> None:
    storescp.clear()
    uids = "\\".join(sorted(kept))
    result = dcmtk.movescu(
        rix_server.dicom_port,
        {"QueryRetrieveLevel": "IMAGE", "SOPInstanceUID": uids},
        storescp.ae_title,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert_as_stored(received(storescp.folder), kept, rix_server.data)


def test_cget_proposing_the_stored_syntax_delivers_the_stored_bytes(
    rix_server: RixServer, kept: dict[str, Sent], tmp_path: Path
) -> None:
    syntaxes = sorted({s.file.transfer_syntax for s in kept.values()} - {ImplicitVRLittleEndian})
    assert len(syntaxes) >= 11
    got: dict[str, tuple[str, bytes]] = {}
    for ts in syntaxes:
        uids = "\\".join(sorted(u for u, s in kept.items() if s.file.transfer_syntax == ts))
        folder = tmp_path / ts
        result = dcmtk.getscu(
            rix_server.dicom_port,
            {"QueryRetrieveLevel": "IMAGE", "SOPInstanceUID": uids},
            folder,
            transfer_syntax=ts,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        got.update(received(folder))
    assert_as_stored(
        got, {u: s for u, s in kept.items() if s.file.transfer_syntax in syntaxes}, rix_server.data
    )


def test_cget_in_implicit_vr_delivers_the_stored_bytes(
    rix_server: RixServer, kept: dict[str, Sent]
) -> None:
    """pynetdicom asks here: getscu 3.6.7 cannot propose implicit VR alone (+xi)."""
    implicit = {u: s for u, s in kept.items() if s.file.transfer_syntax == ImplicitVRLittleEndian}
    assert len(implicit) >= 4
    storage = sorted({(s.file.sop_class_uid, ImplicitVRLittleEndian) for s in implicit.values()})
    result = scu.get(
        rix_server.dicom_port, scu.query("IMAGE", SOPInstanceUID=sorted(implicit)), storage
    )
    assert (result.status, result.completed, result.failed) == (0x0000, len(implicit), 0)
    got = {c.sop_instance_uid: (c.transfer_syntax, c.dataset) for c in result.stored}
    assert_as_stored(got, implicit, rix_server.data)
