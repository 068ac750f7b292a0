"""pydicom's corpus through STOW-RS and back through WADO-RS (PS3.18 10.4, 10.5).

Each readable file is stored as one STOW-RS request, on a server of its own (the
session server also receives this corpus over DIMSE, where storescu re-encodes some
files). What comes back is checked against pydicom reading the same file: the dataset
bytes, the DICOM JSON (PS3.18 F), the bulk data, the frames and the rendered pixels.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels import apply_modality_lut, pixel_array
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from tests.peers import corpus
from tests.peers.corpus import CorpusFile
from tests.peers.dicomweb import (
    ERROR_COMMENT,
    FAILED_SOP_SEQUENCE,
    FAILURE_REASON,
    REFERENCED_SOP_SEQUENCE,
    WARNING_REASON,
    after_file_meta,
    first_value,
    parse_multipart,
    sequence,
    stow,
)
from tests.web.conftest import own_server

CANNOT_UNDERSTAND, COERCION = 0xC000, 0xB000
# PS3.18 Table 8.7.3-5: how a compressed frame travels
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}


def refusal(file: CorpusFile) -> str:
    """Why rix must refuse ``file`` (a part of its error comment), '' when it must store it."""
    special = {
        "test_files/ExplVR_BigEndNoMeta.dcm": "not a DICOM file",  # no preamble, big endian
        "test_files/meta_missing_tsyntax.dcm": "no Transfer Syntax UID",
        "test_files/SC_rgb_jpeg.dcm": "not explicit VR",  # its meta says otherwise
    }
    if file.name in special:
        return special[file.name]
    if file.name in corpus.TRUNCATED:
        return "truncated"
    for keyword, value in (
        ("SOPClassUID", file.sop_class_uid),
        ("SOPInstanceUID", file.sop_instance_uid),
        ("StudyInstanceUID", file.study_uid),
        ("SeriesInstanceUID", file.series_uid),
    ):
        if not value:
            return f"{keyword} is missing"
    return ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Stowed:
    """One corpus file sent as one STOW-RS request, and the answer."""

    file: CorpusFile
    status: int
    answer: dict[str, Any]
    sop_uid: str  # the file's own, or a new one for a relabelled copy

    @property
    def name(self) -> str:
        return self.file.name

    @property
    def failures(self) -> list[dict[str, Any]]:
        return sequence(self.answer, FAILED_SOP_SEQUENCE)

    @property
    def references(self) -> list[dict[str, Any]]:
        return sequence(self.answer, REFERENCED_SOP_SEQUENCE)

    @property
    def path(self) -> str:
        f = self.file
        return f"/studies/{f.study_uid}/series/{f.series_uid}/instances/{self.sop_uid}"


@dataclass(frozen=True, kw_only=True)
class Archived:
    """What the corpus server holds: every answer, and the first copy of each instance."""

    stowed: tuple[Stowed, ...]
    relabelled: tuple[Stowed, ...]  # compressed later copies, stored under UIDs of their own
    http: httpx.Client

    @property
    def with_pixels(self) -> tuple[Stowed, ...]:
        return self.current + self.relabelled

    @cached_property
    def current(self) -> tuple[Stowed, ...]:
        """The copy kept for each SOP Instance UID (keep-first): the first one stored."""
        first: dict[str, Stowed] = {}
        for s in self.stowed:
            if not refusal(s.file):
                first.setdefault(s.file.sop_instance_uid, s)
        return tuple(first.values())

    def read(self, s: Stowed) -> Dataset:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(s.file.path, force=True)


@pytest.fixture(scope="module")
def archived(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archived]:
    with own_server(tmp_path_factory.mktemp("corpus"), backend) as server:
        origin = f"http://127.0.0.1:{server.http_port}"
        with httpx.Client(base_url=origin + "/dicomweb", timeout=60, headers=server.auth) as http:
            stowed = [send(http, file, file.path.read_bytes()) for file in corpus.readable()]
            archived = Archived(stowed=tuple(stowed), relabelled=(), http=http)
            relabelled = [
                relabel(http, archived, s) for s in stowed if later_compressed(archived, s)
            ]
            yield Archived(stowed=tuple(stowed), relabelled=tuple(relabelled), http=http)


def send(http: httpx.Client, file: CorpusFile, data: bytes, sop_uid: str = "") -> Stowed:
    response = stow(http, [data])
    return Stowed(
        file=file,
        status=response.status_code,
        answer=response.json(),
        sop_uid=sop_uid or file.sop_instance_uid,
    )


def later_compressed(archived: Archived, s: Stowed) -> bool:
    """A compressed variant of a file stored first (``MR_small_RLE.dcm`` of ``MR_small.dcm``)."""
    return (
        not refusal(s.file)
        and s not in archived.current
        and UID(s.file.transfer_syntax).is_compressed
    )


def relabel(http: httpx.Client, archived: Archived, s: Stowed) -> Stowed:
    """``s`` under a SOP Instance UID of its own, so its frames can be asked for."""
    ds = archived.read(s)
    uid = str(generate_uid(entropy_srcs=[s.name]))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    stowed = send(http, s.file, out.getvalue(), uid)
    assert stowed.status == 200, (s.name, stowed.answer)
    return stowed


def pixel_files(archived: Archived) -> Iterator[tuple[Stowed, Dataset]]:
    """Stored instances with Pixel Data that pydicom itself can decode."""
    for s in archived.with_pixels:
        ds = archived.read(s)
        if "PixelData" not in ds or "Rows" not in ds:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pixel_array(ds, index=0 if frames_of(ds) > 1 else None)
        except Exception:
            continue
        yield s, ds


def frames_of(ds: Dataset) -> int:
    return int(ds.get("NumberOfFrames") or 1)


def test_every_corpus_file_is_answered_stored_or_refused_as_expected(archived: Archived) -> None:
    wrong = []
    for s in archived.stowed:
        why = refusal(s.file)
        if why:
            comments = [first_value(f, ERROR_COMMENT) for f in s.failures]
            ok = s.status == 409 and len(comments) == 1 and why in comments[0]
            ok = ok and first_value(s.failures[0], FAILURE_REASON) == CANNOT_UNDERSTAND
        else:
            ok = s.status in (200, 202) and len(s.references) == 1 and not s.failures
        if not ok:
            wrong.append((s.name, why, s.status, s.answer))
    assert not wrong
    assert sum(not refusal(s.file) for s in archived.stowed) > 150


def test_a_later_copy_with_other_bytes_is_a_warning_and_the_first_stays(
    archived: Archived,
) -> None:
    current = {s.file.sop_instance_uid: s for s in archived.current}
    later = [s for s in archived.stowed if not refusal(s.file) and s not in archived.current]
    assert later, "the corpus has files sharing a SOP Instance UID"
    wrong = []
    for s in later:
        differs = s.file.dataset != current[s.file.sop_instance_uid].file.dataset
        (ref,) = s.references
        warning = first_value(ref, WARNING_REASON)
        expected = (202, COERCION) if differs else (200, None)
        if (s.status, warning) != expected:
            wrong.append((s.name, s.status, warning))
    assert not wrong


def test_refused_files_leave_nothing_behind(archived: Archived) -> None:
    stored = {s.file.sop_instance_uid for s in archived.current}
    for s in archived.stowed:
        uid = s.file.sop_instance_uid
        if refusal(s.file) and uid and uid not in stored:
            found = archived.http.get("/instances", params={"SOPInstanceUID": uid})
            assert found.status_code == 200 and found.json() == [], s.name


def test_wado_returns_the_dataset_bytes_stowed(archived: Archived) -> None:
    wrong = []
    for s in archived.current:
        response = archived.http.get(
            s.path, headers={"Accept": "application/dicom; transfer-syntax=*"}
        )
        assert response.status_code == 200, (s.name, response.text)
        ts = response.headers["content-type"].partition("transfer-syntax=")[2]
        if ts != s.file.transfer_syntax or after_file_meta(response.content) != s.file.dataset:
            wrong.append(s.name)
    assert not wrong


def test_wado_multipart_of_a_study_holds_each_instance_as_stored(archived: Archived) -> None:
    s = next(x for x in archived.current if x.name == "test_files/CT_small.dcm")
    response = archived.http.get(
        f"/studies/{s.file.study_uid}",
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
    )
    assert response.status_code == 200
    parts = parse_multipart(response.headers["content-type"], response.content)
    datasets = {after_file_meta(p.body) for p in parts}
    assert s.file.dataset in datasets


def bulk_free(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with every BulkDataURI replaced by one marker, sequences included."""
    out = {}
    for tag, original in document.items():
        element = dict(original)
        if "BulkDataURI" in element:
            element["BulkDataURI"] = "<bulk>"
        if element.get("vr") == "SQ" and "Value" in element:
            element["Value"] = [bulk_free(item) for item in element["Value"]]
        out[tag] = element
    return out


def pydicom_json(ds: Dataset) -> tuple[dict[str, Any], set[str]]:
    """pydicom's DICOM JSON of ``ds``; for a dataset it cannot encode whole (an IS of
    ``1A``), the elements it can encode and the tags of those it cannot."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ds.to_json_dict(1024, lambda _e: ""), set()
        except ValueError:
            pass
        out, bad = {}, set()
        for elem in ds:
            try:
                out[f"{elem.tag:08X}"] = elem.to_json_dict(lambda _e: "", 1024)
            except ValueError:
                bad.add(f"{elem.tag:08X}")
        return out, bad


def test_metadata_is_pydicoms_json_bulk_data_aside(archived: Archived) -> None:
    wrong = []
    for s in archived.current:
        response = archived.http.get(s.path + "/metadata")
        assert response.status_code == 200, (s.name, response.text)
        (got,) = response.json()
        expected, unencodable = pydicom_json(archived.read(s))
        same = got.keys() == expected.keys() | unencodable
        if not same or bulk_free({t: got[t] for t in expected}) != bulk_free(expected):
            wrong.append(s.name)
    assert not wrong


def test_metadata_keeps_an_element_pydicom_cannot_encode_as_its_text(
    archived: Archived,
) -> None:
    s = next(x for x in archived.current if x.name == "test_files/badVR.dcm")
    (got,) = archived.http.get(s.path + "/metadata").json()
    assert got["00280008"] == {"vr": "IS", "Value": ["1A"]}  # Number of Frames


def bulk_elements(document: dict[str, Any], ds: Dataset) -> Iterator[tuple[str, DataElement]]:
    for tag, element in document.items():
        if "BulkDataURI" in element:
            yield element["BulkDataURI"], ds[int(tag, 16)]
        elif element.get("vr") == "SQ":
            for item_json, item_ds in zip(
                element.get("Value", []), ds[int(tag, 16)].value, strict=True
            ):
                yield from bulk_elements(item_json, item_ds)


def test_every_bulk_data_uri_retrieves_the_elements_value(archived: Archived) -> None:
    wrong, checked = [], 0
    for s in archived.current:
        (document,) = archived.http.get(s.path + "/metadata").json()
        ds = archived.read(s)
        for uri, elem in bulk_elements(document, ds):
            response = archived.http.get(uri)
            parts = parse_multipart(response.headers["content-type"], response.content)
            checked += 1
            if response.status_code != 200 or [p.body for p in parts] != [elem.value]:
                wrong.append((s.name, uri.rpartition("/bulk/")[2], response.status_code))
    assert checked > 40
    assert not wrong


def test_frames_as_stored_are_the_frames_pydicom_finds(archived: Archived) -> None:
    wrong, checked = [], 0
    for s in archived.with_pixels:
        ts = s.file.transfer_syntax
        ds = archived.read(s)
        if ts not in FRAME_MEDIA_TYPES or "PixelData" not in ds:
            continue
        count = frames_of(ds)
        expected = list(generate_frames(ds.PixelData, number_of_frames=count))
        numbers = ",".join(str(n) for n in range(1, count + 1))
        accept = f'multipart/related; type="{FRAME_MEDIA_TYPES[ts]}"; transfer-syntax={ts}'
        response = archived.http.get(f"{s.path}/frames/{numbers}", headers={"Accept": accept})
        checked += 1
        if response.status_code != 200:
            wrong.append((s.name, response.status_code, response.text[:100]))
            continue
        parts = parse_multipart(response.headers["content-type"], response.content)
        if [p.body for p in parts] != expected or any(
            p.content_type != f"{FRAME_MEDIA_TYPES[ts]}; transfer-syntax={ts}" for p in parts
        ):
            wrong.append((s.name, "frames differ"))
    assert checked >= 25
    assert not wrong


def native_frame(ds: Dataset, index: int) -> bytes:
    """Frame ``index`` as pydicom decodes it, raw (no colour conversion), little endian."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        count = frames_of(ds)
        pixels = pixel_array(ds, index=index if count > 1 else None, raw=True)
    return pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()


def test_frames_asked_as_explicit_little_endian_are_pydicoms_pixels(archived: Archived) -> None:
    accept = (
        'multipart/related; type="application/octet-stream"; '
        f"transfer-syntax={ExplicitVRLittleEndian}"
    )
    wrong, checked = [], 0
    for s, ds in pixel_files(archived):
        if int(ds.get("BitsAllocated", 8)) == 1:
            continue  # packed bits: a frame need not start on a byte
        count = frames_of(ds)
        numbers = sorted({1, count, (count + 1) // 2})
        response = archived.http.get(
            f"{s.path}/frames/{','.join(map(str, numbers))}", headers={"Accept": accept}
        )
        checked += 1
        if response.status_code != 200:
            wrong.append((s.name, response.status_code, response.text[:100]))
            continue
        parts = parse_multipart(response.headers["content-type"], response.content)
        if [p.body for p in parts] != [native_frame(ds, n - 1) for n in numbers]:
            wrong.append((s.name, "pixels differ"))
        elif any(
            p.content_type.partition("transfer-syntax=")[2] != ExplicitVRLittleEndian for p in parts
        ):
            wrong.append((s.name, "labelled", parts[0].content_type))
    assert checked >= 60
    assert not wrong


def expected_rendering(ds: Dataset, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 linear VOI to 8 bits, after the modality LUT; MONOCHROME1
    shown inverted."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pixels = pixel_array(ds, index=0 if frames_of(ds) > 1 else None)
        values = apply_modality_lut(pixels, ds).astype(np.float64)
    low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    grey = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255
    grey = np.where(values <= low, 0, np.where(values > high, 255, grey))
    if ds.PhotometricInterpretation == "MONOCHROME1":
        grey = 255 - grey
    return grey


def window_of(ds: Dataset) -> tuple[float, float]:
    """A window over the whole range of the first frame's modality values."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pixels = pixel_array(ds, index=0 if frames_of(ds) > 1 else None)
        values = apply_modality_lut(pixels, ds)
    low, high = float(values.min()), float(values.max())
    return (low + high) / 2, max(high - low, 2.0)


def test_rendered_png_matches_pydicoms_windowed_pixels(archived: Archived) -> None:
    wrong, checked = [], 0
    for s, ds in pixel_files(archived):
        if ds.get("PhotometricInterpretation") not in ("MONOCHROME1", "MONOCHROME2"):
            continue
        center, width = window_of(ds)
        response = archived.http.get(
            f"{s.path}/frames/1/rendered",
            params={"window": f"{center!r},{width!r}"},
            headers={"Accept": "image/png"},
        )
        checked += 1
        if response.status_code != 200:
            wrong.append((s.name, response.status_code, response.text[:100]))
            continue
        got = np.asarray(Image.open(io.BytesIO(response.content)), dtype=np.float64)
        expected = expected_rendering(ds, center, width)
        if got.shape != expected.shape or np.abs(got - expected).max() > 1:
            wrong.append((s.name, "pixels differ"))
    assert checked >= 40
    assert not wrong


def test_frames_were_checked_in_every_compressed_syntax_stored(archived: Archived) -> None:
    stored = {UID(s.file.transfer_syntax) for s in archived.stowed if not refusal(s.file)}
    checked = {UID(s.file.transfer_syntax) for s in archived.with_pixels}
    assert {ts for ts in stored if ts.is_compressed} <= checked
    assert len(checked) >= 10


UNDECODABLE = "test_files/JPEG2000-embedded-sequence-delimiter.dcm"  # pydicom cannot decode it


def test_an_instance_that_cannot_be_decompressed_asked_uncompressed_is_406(
    archived: Archived,
) -> None:
    s = next(x for x in archived.current if x.name == UNDECODABLE)
    response = archived.http.get(s.path, headers={"Accept": "application/dicom"})
    assert response.status_code == 406
    assert "decompress" in response.json()["error"]


def test_a_series_asked_uncompressed_sends_an_undecodable_instance_as_stored(
    archived: Archived,
) -> None:
    """Once a multipart 200 has started no error can be answered; the part says what it is."""
    s = next(x for x in archived.current if x.name == UNDECODABLE)
    response = archived.http.get(
        f"/studies/{s.file.study_uid}/series/{s.file.series_uid}",
        headers={"Accept": 'multipart/related; type="application/dicom"'},
    )
    assert response.status_code == 200
    parts = parse_multipart(response.headers["content-type"], response.content)
    (mine,) = [p for p in parts if after_file_meta(p.body) == s.file.dataset]
    assert mine.content_type == f"application/dicom; transfer-syntax={s.file.transfer_syntax}"
