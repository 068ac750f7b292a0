"""Re-encoding an instance in another transfer syntax, only when a recipient needs it.

Lossless only: decompression to the uncompressed syntaxes, and compression to RLE
Lossless or JPEG 2000 Lossless (the encoders rix ships). The SOP Instance UID stays: the
instance is the same one, losslessly re-encoded (pydicom would otherwise mint a new UID).
"""

from __future__ import annotations

import io

from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

UNCOMPRESSED = frozenset({ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian})
LOSSLESS_ENCODERS = frozenset({RLELossless, JPEG2000Lossless})
PRODUCIBLE = UNCOMPRESSED | LOSSLESS_ENCODERS


class CannotTranscode(ValueError):
    """The target is not one rix produces, or the stored pixel data cannot be decoded."""


def check(target: str) -> None:
    if UID(target) not in PRODUCIBLE:
        names = ", ".join(sorted(UID(u).name for u in PRODUCIBLE))
        raise CannotTranscode(f"rix does not encode {UID(target).name}; it encodes {names}")


def to_syntax(ds: Dataset, target: str) -> None:
    """Re-encode ``ds`` (read from a stored file) in ``target``, in place."""
    check(target)
    target_uid = UID(target)
    current = UID(ds.file_meta.TransferSyntaxUID)
    if current == target_uid:
        return
    try:
        if current.is_compressed:
            ds.decompress(generate_instance_uid=False)
        if target_uid in LOSSLESS_ENCODERS and "PixelData" in ds:
            ds.compress(target_uid, generate_instance_uid=False)
    except Exception as exc:  # a codec's own error types: all mean "cannot"
        raise CannotTranscode(f"stored pixel data cannot be re-encoded: {exc}") from exc
    ds.file_meta.TransferSyntaxUID = target_uid


def encoded(ds: Dataset) -> bytes:
    """``ds`` as a Part 10 file in the transfer syntax its file meta names."""
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    out = io.BytesIO()
    ds.save_as(
        out,
        enforce_file_format=True,
        implicit_vr=syntax == ImplicitVRLittleEndian,
        little_endian=syntax != ExplicitVRBigEndian,
    )
    return out.getvalue()
