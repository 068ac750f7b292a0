"""Reading received datasets: header without pixel data, structure checked end to end.

pydicom reads leniently and stops quietly at a short read, so a truncated file would
look whole. ``check_structure`` walks every top-level element's length (item headers
only inside sequences and encapsulated pixel data, PS3.5 7.5 and A.4) and refuses a
dataset whose lengths do not add up, without ever decoding pixel data.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import _read_file_meta_info, read_dataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian

from rix import uids
from rix.errors import InvalidInstance

PREAMBLE = b"\x00" * 128 + b"DICM"
PIXEL_DATA = 0x7FE00010
IMPLEMENTATION_CLASS_UID = "2.25.238523925419405398736201929612357421713"
IMPLEMENTATION_VERSION = "RIX_0_1"
# Private Information Creator UID (PS3.10 7.1) of what rix records in a stored file's meta:
# the owning trust, so `rix reindex` can rebuild ownership from the store alone.
PRIVATE_INFORMATION_UID = "2.25.182468871432915302411093625931474207361"
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT"}
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF


@dataclass(frozen=True, slots=True, kw_only=True)
class Header:
    """The parsed header of one instance and where its pixel data begins."""

    dataset: Dataset
    transfer_syntax: str
    pixel_data_offset: int | None  # in the dataset bytes (after the file meta)

    @property
    def has_pixel_data(self) -> bool:
        return self.pixel_data_offset is not None


def read_header(data: bytes, transfer_syntax: str) -> Header:
    """Parse ``data`` (a dataset without file meta) in ``transfer_syntax``, pixels skipped."""
    ts = UID(transfer_syntax)
    if not uids.is_valid(str(ts)):
        raise InvalidInstance(f"transfer syntax {transfer_syntax!r} is not a valid UID")
    plain = _inflate(data) if ts == DeflatedExplicitVRLittleEndian else data
    implicit = ts == ImplicitVRLittleEndian
    little = ts != "1.2.840.10008.1.2.2"
    pixel_offset = check_structure(plain, implicit=implicit, little=little)
    try:
        ds = read_dataset(
            io.BytesIO(plain),
            implicit,
            little,
            stop_when=lambda tag, _vr, _length: tag == PIXEL_DATA,
        )
    except (EOFError, ValueError, struct.error, KeyError, NotImplementedError) as exc:
        raise InvalidInstance(f"cannot parse dataset: {exc}") from exc
    if ts == DeflatedExplicitVRLittleEndian:
        pixel_offset = None  # offsets would refer to the inflated bytes, not the stored ones
    return Header(dataset=ds, transfer_syntax=str(ts), pixel_data_offset=pixel_offset)


def _inflate(data: bytes) -> bytes:
    try:
        return zlib.decompress(data, -zlib.MAX_WBITS)
    except zlib.error as exc:
        raise InvalidInstance(f"deflated dataset does not inflate: {exc}") from exc


def check_structure(data: bytes, *, implicit: bool, little: bool) -> int | None:
    """Walk the top-level elements; return the offset of Pixel Data, if present.

    Raises InvalidInstance when an element runs past the end or the bytes stop inside one.
    """
    if not data:
        raise InvalidInstance("empty dataset")
    walker = _Walker(data, little=little)
    try:
        return walker.dataset(0, len(data), implicit=implicit, top=True)
    except (struct.error, IndexError) as exc:
        raise InvalidInstance(f"dataset is truncated: {exc}") from exc


class _Walker:
    def __init__(self, data: bytes, *, little: bool) -> None:
        self.data = data
        e = "<" if little else ">"
        self.tag_len = struct.Struct(e + "HHL")
        self.tag_vr_short = struct.Struct(e + "HH2sH")
        self.u32 = struct.Struct(e + "L")
        self.pixel_offset: int | None = None

    def element(self, pos: int, implicit: bool) -> tuple[int, int, int, bool]:
        """(tag, value position, value length, nested-is-implicit) of the element at ``pos``.

        An explicit-VR UN of undefined length holds an implicit-VR sequence (PS3.5 6.2.2).
        """
        group, elem, length = self.tag_len.unpack_from(self.data, pos)
        tag = group << 16 | elem
        if implicit or group == 0xFFFE:
            return tag, pos + 8, length, implicit
        _g, _e, vr, short = self.tag_vr_short.unpack_from(self.data, pos)
        if vr in _LONG_VRS:
            (length,) = self.u32.unpack_from(self.data, pos + 8)
            return tag, pos + 12, length, vr == b"UN"
        if not (vr[:1].isalpha() and vr[1:].isalpha()):
            # hex, not repr: a backslash would split the LO Error Comment (PS3.5 6.2)
            raise InvalidInstance(f"not explicit VR: bytes {vr.hex()} where a VR belongs, at {pos}")
        return tag, pos + 8, short, False

    def dataset(self, pos: int, end: int, *, implicit: bool, top: bool = False) -> int | None:
        """Walk elements from ``pos`` to ``end`` (or an item delimiter when nested)."""
        while pos < end:
            if end - pos < 8:
                raise InvalidInstance(f"dataset is truncated inside an element header at {pos}")
            start = pos
            tag, pos, length, nested_implicit = self.element(pos, implicit)
            if tag == _ITEM_END and not top:
                return pos
            if top and tag == PIXEL_DATA:
                self.pixel_offset = start
            if length == _UNDEFINED:
                pos = self.undefined_value(pos, end, nested_implicit)
                continue
            if pos + length > end:
                raise InvalidInstance(  # the meaning first: Error Comment keeps 64 characters
                    f"dataset is truncated: ({tag >> 16:04X},{tag & 0xFFFF:04X}) needs "
                    f"{length} bytes, {end - pos} remain"
                )
            pos += length
        if not top:
            raise InvalidInstance("sequence item has no delimiter: the dataset is truncated")
        return self.pixel_offset

    def undefined_value(self, pos: int, end: int, implicit: bool) -> int:
        """Skip a sequence or encapsulated pixel data of undefined length; PS3.5 7.5.2."""
        while True:
            if end - pos < 8:
                raise InvalidInstance("sequence has no delimiter: the dataset is truncated")
            group, elem, length = self.tag_len.unpack_from(self.data, pos)
            tag = group << 16 | elem
            pos += 8
            if tag == _SEQ_END:
                return pos
            if tag != _ITEM:
                raise InvalidInstance(f"expected an item tag at byte {pos - 8}")
            if length == _UNDEFINED:
                result = self.dataset(pos, end, implicit=implicit)
                assert result is not None
                pos = result
            elif pos + length > end:
                raise InvalidInstance("item runs past the end: the dataset is truncated")
            else:
                pos += length


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitFile:
    meta: FileMetaDataset | None
    dataset_offset: int
    transfer_syntax: str


def split_file(data: bytes) -> SplitFile:
    """Locate the dataset inside a Part 10 file (or a bare dataset, as some media hold).

    Some writers (dicomweb-client among them) drop the preamble and prefix but keep the
    File Meta group: it is read as file meta, never stored as part of the dataset.
    """
    has_prefix = len(data) >= 132 and data[128:132] == b"DICM"
    if has_prefix or data[:2] == b"\x02\x00":
        fp = io.BytesIO(data)
        fp.seek(132 if has_prefix else 0)
        try:
            meta = _read_file_meta_info(fp)
        except (EOFError, ValueError, struct.error) as exc:
            raise InvalidInstance(f"unreadable file meta information: {exc}") from exc
        ts = uids.clean(meta.get("TransferSyntaxUID", ""))
        if not ts:
            raise InvalidInstance("file meta information has no Transfer Syntax UID")
        return SplitFile(meta=meta, dataset_offset=fp.tell(), transfer_syntax=ts)
    return SplitFile(meta=None, dataset_offset=0, transfer_syntax=_guess_syntax(data))


def _guess_syntax(data: bytes) -> str:
    """A file without meta: explicit VR if bytes 4-5 look like a VR, else implicit (PS3.5 A.1)."""
    if len(data) < 8 or data[:2] not in (b"\x08\x00", b"\x02\x00", b"\x10\x00"):
        raise InvalidInstance("not a DICOM file: no DICM prefix and no dataset at the start")
    vr = data[4:6]
    if vr.isalpha() and vr.isupper():
        return "1.2.840.10008.1.2.1"
    return "1.2.840.10008.1.2"


def _meta_element(group_elem: int, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian element of group 0002 (PS3.10 7.1, PS3.5 7.1.2)."""
    tag = struct.pack("<HH", group_elem >> 16, group_elem & 0xFFFF)
    if vr == b"OB":
        return tag + vr + b"\0\0" + struct.pack("<L", len(value)) + value
    return tag + vr + struct.pack("<H", len(value)) + value


def _padded(text: str, pad: bytes) -> bytes:
    raw = text.encode("ascii")
    return raw + pad if len(raw) % 2 else raw


def file_meta(
    *,
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax: str,
    source_ae: str,
    private: bytes = b"",
) -> bytes:
    """Preamble, prefix and File Meta Information (PS3.10 7.1), encoded directly.

    Byte-identical to pydicom's ``write_file_meta_info`` (a test checks it) at a
    fiftieth of the cost: this runs once for every stored instance.
    """
    body = b"".join(
        (
            _meta_element(0x00020001, b"OB", b"\0\1"),
            _meta_element(0x00020002, b"UI", _padded(sop_class_uid, b"\0")),
            _meta_element(0x00020003, b"UI", _padded(sop_instance_uid, b"\0")),
            _meta_element(0x00020010, b"UI", _padded(transfer_syntax, b"\0")),
            _meta_element(0x00020012, b"UI", _padded(IMPLEMENTATION_CLASS_UID, b"\0")),
            _meta_element(0x00020013, b"SH", _padded(IMPLEMENTATION_VERSION, b" ")),
            _meta_element(0x00020016, b"AE", _padded(source_ae[:16], b" ")) if source_ae else b"",
            _private_information(private),
        )
    )
    return PREAMBLE + _meta_element(0x00020000, b"UL", struct.pack("<L", len(body))) + body


def _private_information(private: bytes) -> bytes:
    if not private:
        return b""
    return _meta_element(0x00020100, b"UI", _padded(PRIVATE_INFORMATION_UID, b"\0")) + (
        _meta_element(0x00020102, b"OB", _padded_bytes(private))
    )


def _padded_bytes(value: bytes) -> bytes:
    return value + b"\0" if len(value) % 2 else value


def private_information(meta: Dataset | None) -> bytes:
    """What rix recorded in a stored file's meta (empty for anyone else's)."""
    if meta is None or str(meta.get("PrivateInformationCreatorUID", "")) != PRIVATE_INFORMATION_UID:
        return b""
    return bytes(meta.get("PrivateInformation", b"") or b"").rstrip(b"\0")


def file_meta_by_pydicom(
    *,
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax: str,
    source_ae: str,
    private: bytes = b"",
) -> bytes:
    """The reference encoding ``file_meta`` must equal (used by tests)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    if source_ae:
        meta.SourceApplicationEntityTitle = source_ae[:16]
    if private:
        meta.PrivateInformationCreatorUID = UID(PRIVATE_INFORMATION_UID)
        meta.PrivateInformation = _padded_bytes(private)
    out = io.BytesIO()
    out.write(PREAMBLE)
    write_file_meta_info(out, meta, enforce_standard=True)  # type: ignore[arg-type]
    return out.getvalue()


_BINARY_VRS = {
    "US",
    "UL",
    "SS",
    "SL",
    "FL",
    "FD",
    "AT",
    "OB",
    "OW",
    "OF",
    "OD",
    "OL",
    "OV",
    "SV",
    "UV",
    "SQ",
    "UN",
}


def text_at(ds: Dataset, tag: int, keyword: str, vr: str) -> str:
    """Like ``text`` by tag: ASCII string values are read from the raw bytes directly.

    Converting every raw element through pydicom is most of the cost of indexing an
    instance; plain ASCII text needs no character set and no conversion. Bytes holding
    ESC are not plain: ISO 2022 code extensions (PS3.5 6.1.2.5.3) switch to JIS X 0208,
    KS X 1001, ... inside 7-bit bytes, so they are decoded by pydicom per charset.
    """
    if vr not in _BINARY_VRS:
        raw = ds.get_item(tag)
        if raw is None:
            return ""
        value = raw.value
        if isinstance(value, bytes) and value.isascii() and b"\x1b" not in value:
            return value.decode("ascii").strip("\x00 ")
    return text(ds, keyword)


def text(ds: Dataset, keyword: str) -> str:
    """An element's value as text ('' when absent or empty); PN decoded per charset."""
    try:
        value: Any = ds.get(keyword)
    except (ValueError, LookupError, TypeError):
        return ""
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip("\x00 ")
