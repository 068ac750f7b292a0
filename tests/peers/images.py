"""Synthetic images for DICOMweb tests, made with pydicom (never real patient data):
CT slices with a modality LUT and a window, multi-frame instances native and RLE
compressed, and the bulk data a viewer meets (overlays, icons)."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import RLELossless, generate_uid

from tests.peers.synthetic import ct_slice

MULTIFRAME_GRAYSCALE_BYTE = "1.2.840.10008.5.1.4.1.1.7.2"
MULTIFRAME_GRAYSCALE_WORD = "1.2.840.10008.5.1.4.1.1.7.3"


def ct(
    *, patient_id: str, name: str, study_uid: str, series_uid: str, number: int, size: int = 64
) -> Dataset:
    """A CT slice in Hounsfield units: stored values 0..4095, intercept -1024, soft-tissue
    window, a gradient that crosses the window so rendering has something to show."""
    ds = ct_slice(
        patient_id=patient_id,
        patient_name=name,
        study_uid=study_uid,
        series_uid=series_uid,
        number=number,
        size=size,
    )
    ds.BitsStored, ds.HighBit = 12, 11
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ramp = np.linspace(0, 4095, size * size, dtype=np.float64).reshape(size, size)
    ds.PixelData = (ramp.astype(np.uint16) + number).tobytes()
    return ds


def with_overlay(ds: Dataset, size: int = 128) -> Dataset:
    """Overlay Plane (PS3.3 C.9.2): 1-bit Overlay Data of ``size``² bits, bulk data in JSON."""
    ds.add_new(0x60000010, "US", size)  # Overlay Rows
    ds.add_new(0x60000011, "US", size)  # Overlay Columns
    ds.add_new(0x60000040, "CS", "G")  # Overlay Type
    ds.add_new(0x60000050, "SS", [1, 1])  # Overlay Origin
    ds.add_new(0x60000100, "US", 1)  # Overlay Bits Allocated
    ds.add_new(0x60000102, "US", 0)  # Overlay Bit Position
    bits = np.zeros(size * size // 8, dtype=np.uint8)
    bits[::3] = 0b10100101
    ds.add_new(0x60003000, "OW", bits.tobytes())  # Overlay Data
    return ds


def with_icon(ds: Dataset, size: int = 48) -> Dataset:
    """Icon Image Sequence (PS3.3 F.7): a nested Pixel Data longer than the bulk threshold."""
    icon = Dataset()
    icon.Rows = icon.Columns = size
    icon.SamplesPerPixel = 1
    icon.PhotometricInterpretation = "MONOCHROME2"
    icon.BitsAllocated = icon.BitsStored = 8
    icon.HighBit = 7
    icon.PixelRepresentation = 0
    icon.PixelData = (np.arange(size * size) % 251).astype(np.uint8).tobytes()
    ds.IconImageSequence = Sequence([icon])
    return ds


def multiframe(
    *,
    patient_id: str,
    name: str,
    study_uid: str,
    series_uid: str,
    number: int,
    frames: int,
    size: int = 32,
    bits: int = 8,
) -> Dataset:
    """A multi-frame Secondary Capture, each frame a different pattern."""
    ds = ct_slice(
        patient_id=patient_id,
        patient_name=name,
        study_uid=study_uid,
        series_uid=series_uid,
        number=number,
        size=size,
        modality="OT",
    )
    ds.SOPClassUID = MULTIFRAME_GRAYSCALE_BYTE if bits == 8 else MULTIFRAME_GRAYSCALE_WORD
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    for keyword in ("RescaleIntercept", "RescaleSlope"):
        if keyword in ds:
            delattr(ds, keyword)
    dtype = np.uint8 if bits == 8 else np.uint16
    grid = np.add.outer(np.arange(size), np.arange(size))
    pixels = np.stack([(grid * (k + 1) + 17 * k) % (1 << min(bits, 12)) for k in range(frames)])
    ds.NumberOfFrames = frames
    ds.PixelData = pixels.astype(dtype).tobytes()
    return ds


def rle(ds: Dataset) -> Dataset:
    """``ds`` compressed with RLE Lossless (pydicom's own encoder)."""
    ds.compress(RLELossless, generate_instance_uid=False)
    return ds


def fresh_uids() -> tuple[str, str]:
    return generate_uid(), generate_uid()
