"""Small synthetic studies of a chosen modality and description, and storescu sending
them as a chosen calling AE (``-aet``): what routing rules look at."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydicom.uid import UID, generate_uid

from tests.peers import dcmtk
from tests.peers.objects import dataset_of
from tests.peers.synthetic import CT_IMAGE_STORAGE, ct_slice

SOP_CLASSES = {
    "CT": CT_IMAGE_STORAGE,
    "MR": "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    "US": "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image Storage
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Study:
    study_uid: str
    files: tuple[Path, ...]

    def datasets(self) -> dict[str, bytes]:
        """SOP Instance UID → the Data Set bytes of each file, as storescu sends them."""
        return {path.stem: dataset_of(path)[1] for path in self.files}


def write_study(
    folder: Path,
    *,
    modality: str = "CT",
    description: str = "",
    count: int = 2,
    patient_id: str = "ROUTED-1",
) -> Study:
    """``count`` instances of one new study and series, saved as Part 10 files."""
    study_uid, series_uid = str(generate_uid()), str(generate_uid())
    folder = folder / study_uid
    folder.mkdir(parents=True)
    paths = []
    for number in range(1, count + 1):
        ds = ct_slice(
            patient_id=patient_id,
            patient_name="Routed^Test",
            study_uid=study_uid,
            series_uid=series_uid,
            number=number,
            modality=modality,
        )
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID(SOP_CLASSES[modality])
        ds.StudyDescription = description
        ds.SeriesDescription = f"{modality} series"
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return Study(study_uid=study_uid, files=tuple(paths))


def store(port: int, calling_ae: str, study: Study) -> None:
    """C-STORE the study's files to rix on one association, as ``calling_ae``."""
    result = dcmtk.run(
        "storescu",
        "-R",
        "-xe",  # the files' own syntax, Explicit VR Little Endian: sent unconverted
        "-aet",
        calling_ae,
        "-aec",
        "RIX",
        dcmtk.HOST,
        str(port),
        *map(str, study.files),
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
