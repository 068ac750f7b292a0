"""Small synthetic instances written with pydicom (never real patient data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def ct_slice(
    *,
    patient_id: str,
    patient_name: str,
    study_uid: str,
    series_uid: str,
    number: int,
    size: int = 32,
    study_date: str = "20250101",
    modality: str = "CT",
) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyDate = study_date
    ds.StudyTime = "120000"
    ds.AccessionNumber = f"A{patient_id}"
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = (np.arange(size * size, dtype=np.uint16) + number).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def write_series(
    folder: Path, count: int, *, patient_id: str, name: str = "Test^Patient"
) -> list[Path]:
    """``count`` slices of one new study and series, saved as Part 10 files."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid = generate_uid(), generate_uid()
    paths = []
    for number in range(1, count + 1):
        ds = ct_slice(
            patient_id=patient_id,
            patient_name=name,
            study_uid=study_uid,
            series_uid=series_uid,
            number=number,
        )
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
