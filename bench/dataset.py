"""The benchmark's data, generated once into ``bench/work/dataset/`` and reused.

2,000 small instances (CT, MR, CR 16-bit; US 8-bit; 64x64 or 128x128) in 1,000 studies of
400 patients, plus one 300-slice 512x512 16-bit CT series in a study of its own, all
Explicit VR Little Endian and uncompressed so neither server transcodes or decompresses.
Generation is seeded, so every machine benchmarks the same bytes; ``VERSION`` in the
manifest forces regeneration when this module changes what it writes.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from rich.progress import Progress

import synthetic

WORK = Path(__file__).resolve().parent / "work"
DATASET_DIR = WORK / "dataset"
MANIFEST = "manifest.json"
VERSION = 1
SEED = 20240601
PATIENTS = 400
STUDIES = 1000
INSTANCES_PER_STUDY = 2
CT_SLICES = 300
CT_MATRIX = 512
CT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.2"


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchData:
    """What the measurements need to know about the files on disk."""

    small: tuple[Path, ...]
    ct: tuple[Path, ...]
    ct_study_uid: str
    small_bytes: int
    ct_bytes: int
    studies: int
    patients: int

    @classmethod
    def from_manifest(cls, folder: Path) -> BenchData:
        raw = json.loads((folder / MANIFEST).read_text())
        return cls(
            small=tuple(folder / p for p in raw["small"]),
            ct=tuple(folder / p for p in raw["ct"]),
            ct_study_uid=raw["ct_study_uid"],
            small_bytes=raw["small_bytes"],
            ct_bytes=raw["ct_bytes"],
            studies=raw["studies"],
            patients=raw["patients"],
        )


def load_or_generate(progress: Progress, *, regenerate: bool = False) -> BenchData:
    """The dataset, generated first if missing, stale (other VERSION) or asked for."""
    manifest = DATASET_DIR / MANIFEST
    current = manifest.exists() and json.loads(manifest.read_text()).get("version") == VERSION
    if current and not regenerate:
        return BenchData.from_manifest(DATASET_DIR)
    staging = WORK / "dataset.partial"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "small").mkdir(parents=True)
    (staging / "ct").mkdir()
    rng = random.Random(SEED)
    patients = [synthetic.patient(rng, n) for n in range(PATIENTS)]
    small = _write_small(staging, rng, patients, progress)
    ct, ct_study_uid = _write_ct(staging, patients[0], progress)
    raw = {
        "version": VERSION,
        "small": [str(p.relative_to(staging)) for p in small],
        "ct": [str(p.relative_to(staging)) for p in ct],
        "ct_study_uid": ct_study_uid,
        "small_bytes": sum(p.stat().st_size for p in small),
        "ct_bytes": sum(p.stat().st_size for p in ct),
        "studies": STUDIES + 1,
        "patients": PATIENTS,
    }
    (staging / MANIFEST).write_text(json.dumps(raw, indent=1))
    shutil.rmtree(DATASET_DIR, ignore_errors=True)
    staging.rename(DATASET_DIR)
    return BenchData.from_manifest(DATASET_DIR)


def warm(data: BenchData) -> None:
    """Read every file once so the first server measured does not pay for cold reads."""
    for path in (*data.small, *data.ct):
        path.read_bytes()


def _uid(*parts: object) -> str:
    return str(generate_uid(entropy_srcs=[str(SEED), *map(str, parts)]))


def _write_small(
    folder: Path, rng: random.Random, patients: list[synthetic.Patient], progress: Progress
) -> list[Path]:
    """Every patient gets one study, the rest go to random patients (some have many)."""
    owners = list(range(PATIENTS)) + [rng.randrange(PATIENTS) for _ in range(STUDIES - PATIENTS)]
    rng.shuffle(owners)
    task = progress.add_task("generating small instances", total=STUDIES * INSTANCES_PER_STUDY)
    pixels = np.random.default_rng(SEED)
    paths: list[Path] = []
    for number, owner in enumerate(owners):
        study = _study(rng, patients[owner], number)
        modality = synthetic.modality(rng)
        description, body_part = rng.choice(modality.descriptions)
        study.StudyDescription = description
        for index in range(INSTANCES_PER_STUDY):
            # radiographs: one view per series; cross-sectional: one series of images
            series_index = index if modality.code == "CR" else 0
            ds = _small_instance(study, modality, body_part, number, series_index, index, pixels)
            path = folder / "small" / f"{len(paths):05d}.dcm"
            _save(ds, path)
            paths.append(path)
            progress.advance(task)
    return paths


def _study(rng: random.Random, patient: synthetic.Patient, number: int) -> Dataset:
    when = synthetic.study_date(rng)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.IssuerOfPatientID = patient.issuer
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.PatientAge = synthetic.age(patient.birth_date, when)
    ds.StudyInstanceUID = _uid("study", number)
    ds.StudyDate = when.strftime("%Y%m%d")
    ds.StudyTime = synthetic.study_time(rng)
    ds.AccessionNumber = f"ACC{number + 1:08d}"
    ds.StudyID = str(number + 1)
    ds.ReferringPhysicianName = rng.choice(synthetic.REFERRERS)
    ds.InstitutionName = rng.choice(synthetic.INSTITUTIONS)
    return ds


def _small_instance(
    study: Dataset,
    modality: synthetic.Modality,
    body_part: str,
    study_number: int,
    series_index: int,
    index: int,
    pixels: np.random.Generator,
) -> Dataset:
    ds = Dataset()
    ds.update(study)
    ds.SOPClassUID = modality.sop_class_uid
    ds.SOPInstanceUID = _uid("instance", study_number, index)
    ds.SeriesInstanceUID = _uid("series", study_number, series_index)
    ds.Modality = modality.code
    ds.SeriesNumber = series_index + 1
    ds.InstanceNumber = index + 1
    ds.SeriesDescription = study.StudyDescription
    if modality.code == "CR":
        ds.ViewPosition = ("PA", "LL")[series_index]
        ds.SeriesDescription = f"{study.StudyDescription} {('PA', 'LAT')[series_index]}"
    ds.BodyPartExamined = body_part
    ds.SeriesDate = ds.ContentDate = study.StudyDate
    ds.SeriesTime = ds.ContentTime = study.StudyTime
    ds.Manufacturer = "RIX BENCH SYNTHETIC"
    ds.StationName = f"{modality.code}01"
    ds.ImageType = ["ORIGINAL", "PRIMARY", *(["AXIAL"] if modality.code in ("CT", "MR") else [])]
    high = (1 << modality.bits_stored) - 1
    shape = (modality.size, modality.size)
    image: np.ndarray[Any, Any] = pixels.integers(0, high, size=shape, dtype=np.uint16)
    if modality.signed:
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        image = image.astype(np.int16) - 1024
    elif modality.bits_allocated == 8:
        image = image.astype(np.uint8)
    _set_pixels(ds, image, modality.bits_allocated, modality.bits_stored, modality.signed)
    return ds


def _set_pixels(ds: Dataset, image: np.ndarray, allocated: int, stored: int, signed: bool) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = image.shape
    ds.BitsAllocated = allocated
    ds.BitsStored = stored
    ds.HighBit = stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.add_new(0x7FE00010, "OW" if allocated == 16 else "OB", image.tobytes())


def _write_ct(
    folder: Path, patient: synthetic.Patient, progress: Progress
) -> tuple[list[Path], str]:
    """A 300-slice chest CT: an elliptic body of soft tissue with noise, 1 mm slices."""
    study = _study(random.Random(SEED + 1), patient, STUDIES)
    study.StudyDate = "20240315"
    study.StudyDescription = "CT CHEST ABDOMEN PELVIS WITH CONTRAST"
    study.PatientAge = synthetic.age(patient.birth_date, date(2024, 3, 15))
    series_uid = _uid("ct-series")
    y, x = np.ogrid[:CT_MATRIX, :CT_MATRIX]
    body = ((x - 256) / 220) ** 2 + ((y - 256) / 160) ** 2 <= 1
    base = np.where(body, 1064, 24).astype(np.int16)  # stored values; -1024 rescale
    noise = np.random.default_rng(SEED + 2)
    task = progress.add_task("generating 300-slice CT", total=CT_SLICES)
    paths = []
    for index in range(CT_SLICES):
        ds = Dataset()
        ds.update(study)
        ds.SOPClassUID = CT_SOP_CLASS
        ds.SOPInstanceUID = _uid("ct-slice", index)
        ds.SeriesInstanceUID = series_uid
        ds.Modality = "CT"
        ds.SeriesNumber = 2
        ds.InstanceNumber = index + 1
        ds.SeriesDescription = "AXIAL 1.0 SOFT TISSUE"
        ds.BodyPartExamined = "CHEST"
        ds.SeriesDate = ds.ContentDate = study.StudyDate
        ds.SeriesTime = ds.ContentTime = study.StudyTime
        ds.Manufacturer = "RIX BENCH SYNTHETIC"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SliceThickness = 1.0
        ds.PixelSpacing = [0.78, 0.78]
        ds.ImagePositionPatient = [-200.0, -200.0, -150.0 + index]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = -150.0 + index
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        slice_ = base + noise.integers(-20, 20, size=base.shape, dtype=np.int16)
        _set_pixels(ds, slice_, 16, 12, True)
        path = folder / "ct" / f"{index:04d}.dcm"
        _save(ds, path)
        paths.append(path)
        progress.advance(task)
    return paths, str(study.StudyInstanceUID)


def _save(ds: Dataset, path: Path) -> None:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dcmwrite(path, ds, enforce_file_format=True)
