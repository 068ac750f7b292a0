"""Frames read straight from stored bytes, using the Pixel Data offset recorded at ingest.

Native pixel data: frame k is a fixed-size slice after the element header (PS3.5 8.1.1).
Encapsulated: item headers are walked from the recorded offset (PS3.5 A.4); with one
fragment per frame, or a Basic Offset Table, a frame is read without touching the rest.
Only when neither holds is the whole element read and split by pydicom.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames

from rix.dataset import parsing
from rix.errors import NotFound, RixError
from rix.store import ObjectStore

IMPLICIT_LE = "1.2.840.10008.1.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
UNDEFINED = 0xFFFFFFFF
ITEM = 0xFFFEE000


class FrameUnavailable(RixError):
    http_status = 404


@dataclass(frozen=True, slots=True, kw_only=True)
class PixelLayout:
    storage_key: str
    transfer_syntax: str
    pixel_data_offset: int
    frames: int
    frame_size: int  # bytes of one native frame (0 for encapsulated)


def layout(store: ObjectStore, key: str, transfer_syntax: str, offset: int | None) -> PixelLayout:
    """The pixel layout of a stored object; cached, since stored objects never change."""
    return _layout(store, key, transfer_syntax, offset)  # type: ignore[arg-type]  # stores hash by identity


@lru_cache(maxsize=8192)
def _layout(store: ObjectStore, key: str, transfer_syntax: str, offset: int | None) -> PixelLayout:
    with store.open(key) as f:
        if offset is None:  # indexed before offsets were recorded, or deflated: look now
            offset = _find_pixel_data(f.read())
        f.seek(0)
        ds = dcmread(f, stop_before_pixels=True)
    frames = int(ds.get("NumberOfFrames") or 1)
    return PixelLayout(
        storage_key=key,
        transfer_syntax=transfer_syntax,
        pixel_data_offset=offset,
        frames=frames,
        frame_size=native_frame_size(ds),
    )


def _find_pixel_data(data: bytes) -> int:
    split = parsing.split_file(data)
    if split.transfer_syntax == DEFLATED:
        raise FrameUnavailable("frames of a deflated instance need the whole instance")
    header = parsing.read_header(data[split.dataset_offset :], split.transfer_syntax)
    if header.pixel_data_offset is None:
        raise FrameUnavailable("this instance has no pixel data")
    return split.dataset_offset + header.pixel_data_offset


def native_frame_size(ds: Dataset) -> int:
    rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    samples = int(ds.get("SamplesPerPixel") or 1)
    bits = int(ds.get("BitsAllocated") or 0)
    return rows * columns * samples * bits // 8


def _value_start(store: ObjectStore, pl: PixelLayout) -> tuple[int, int]:
    """(offset of the Pixel Data value, its length) from the element header."""
    head = store.get_range(pl.storage_key, pl.pixel_data_offset, 12)
    endian = ">" if pl.transfer_syntax == BIG_ENDIAN else "<"
    if pl.transfer_syntax == IMPLICIT_LE:
        (length,) = struct.unpack_from("<L", head, 4)
        return pl.pixel_data_offset + 8, length
    (length,) = struct.unpack_from(endian + "L", head, 8)
    return pl.pixel_data_offset + 12, length


def frame(store: ObjectStore, pl: PixelLayout, number: int) -> bytes:
    """Frame ``number`` (1-based) as stored: native bytes, or the compressed bitstream."""
    if not 1 <= number <= pl.frames:
        raise NotFound(f"frame {number} does not exist; the instance has {pl.frames}")
    start, length = _value_start(store, pl)
    if length != UNDEFINED:
        if pl.frame_size * pl.frames > length:
            raise FrameUnavailable("pixel data is shorter than its frames need")
        return store.get_range(pl.storage_key, start + (number - 1) * pl.frame_size, pl.frame_size)
    return _encapsulated_frame(store, pl, start, number)


def _items(store: ObjectStore, key: str, start: int) -> list[tuple[int, int]]:
    """(value offset, length) of each item of encapsulated pixel data, BOT first."""
    items: list[tuple[int, int]] = []
    position = start
    while True:
        head = store.get_range(key, position, 8)
        if len(head) < 8:
            raise FrameUnavailable("encapsulated pixel data ends without a delimiter")
        tag = struct.unpack_from("<HH", head)
        length = struct.unpack_from("<L", head, 4)[0]
        if (tag[0] << 16 | tag[1]) != ITEM:
            return items
        items.append((position + 8, length))
        position += 8 + length


def _encapsulated_frame(store: ObjectStore, pl: PixelLayout, start: int, number: int) -> bytes:
    items = _items(store, pl.storage_key, start)
    if not items:
        raise FrameUnavailable("encapsulated pixel data has no items")
    table, fragments = items[0], items[1:]
    if len(fragments) == pl.frames:
        offset, length = fragments[number - 1]
        return store.get_range(pl.storage_key, offset, length)
    if pl.frames == 1:
        return b"".join(store.get_range(pl.storage_key, o, n) for o, n in fragments)
    if table[1] >= 4 * pl.frames:
        raw = store.get_range(pl.storage_key, table[0], table[1])
        offsets = list(struct.unpack(f"<{pl.frames}L", raw[: 4 * pl.frames]))
        first = fragments[0][0] - 8
        bounds = [first + o for o in offsets] + [fragments[-1][0] + fragments[-1][1]]
        chosen = [(o, n) for o, n in fragments if bounds[number - 1] <= o - 8 < bounds[number]]
        return b"".join(store.get_range(pl.storage_key, o, n) for o, n in chosen)
    with store.open(pl.storage_key) as f:
        ds = dcmread(f)
    for index, data in enumerate(generate_frames(ds.PixelData, number_of_frames=pl.frames), 1):
        if index == number:
            return bytes(data)
    raise FrameUnavailable(f"frame {number} could not be located in the pixel data")
