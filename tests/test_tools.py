"""The `rix` tools on a data folder: import, export, reindex and verify (SQLite and PostgreSQL)."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.fileset import FileSet

from rix.dataset.parsing import split_file
from tests.peers.server import RixServer
from tests.peers.synthetic import write_series


@pytest.fixture
def server(tmp_path: Path, migrated_database_url: str) -> RixServer:
    """A data folder and database of the test's own; started only where a test needs it."""
    return RixServer(data=tmp_path / "data", database_url=migrated_database_url)


def objects(server: RixServer) -> list[Path]:
    return sorted(p for p in (server.data / "objects").rglob("*.dcm") if "conflicts" not in p.parts)


def test_import_reports_stored_present_and_rejected_and_is_idempotent(
    server: RixServer, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    files = write_series(media / "series", 5, patient_id="IMP1")
    (media / "README.TXT").write_text("not a DICOM file")
    (media / "broken.dcm").write_bytes(files[0].read_bytes()[:700])
    with zipfile.ZipFile(tmp_path / "cd.zip", "w") as z:
        for path in write_series(tmp_path / "zipped", 3, patient_id="IMP2"):
            z.write(path, f"DICOM/{path.name}")

    first = server.rix("import", str(media), str(tmp_path / "cd.zip"), check=False)
    assert "stored 8, already present 0" in first.stdout
    assert "rejected 2" in first.stdout
    assert first.returncode == 1  # rejections are reported as a failure of the run
    second = server.rix("import", str(media), str(tmp_path / "cd.zip"), check=False)
    assert "stored 0, already present 8" in second.stdout
    assert len(objects(server)) == 8


def test_export_writes_a_dicomdir_and_the_files_exactly_as_stored(
    server: RixServer, tmp_path: Path
) -> None:
    files = write_series(tmp_path / "in", 4, patient_id="EXP1")
    server.rix("import", str(tmp_path / "in"))
    study = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    server.rix("export", study, "--to", str(tmp_path / "out.zip"))
    with zipfile.ZipFile(tmp_path / "out.zip") as z:
        z.extractall(tmp_path / "out")
    fileset = FileSet(tmp_path / "out" / "DICOMDIR")
    exported = {str(i.SOPInstanceUID): Path(i.path).read_bytes() for i in fileset}
    stored = {p.stem: p.read_bytes() for p in objects(server)}
    assert exported == stored


def test_export_of_an_unknown_study_fails_with_a_reason(server: RixServer, tmp_path: Path) -> None:
    result = server.rix("export", "1.2.3.4", "--to", str(tmp_path / "x"), check=False)
    assert result.returncode == 1
    assert "no such studies: 1.2.3.4" in result.stdout


def test_reindex_rebuilds_the_same_index_from_the_store_alone(
    server: RixServer, tmp_path: Path
) -> None:
    write_series(tmp_path / "a", 3, patient_id="RE1", name="Reindex^One")
    write_series(tmp_path / "b", 2, patient_id="RE2", name="Reindex^Two")
    server.rix("import", str(tmp_path / "a"), str(tmp_path / "b"))
    before = _study_answers(server)
    result = server.rix("reindex")
    assert "indexed 5 instances" in result.stdout
    assert "0 differences" in result.stdout
    assert _study_answers(server) == before


def test_reindex_reports_objects_the_index_did_not_know(server: RixServer, tmp_path: Path) -> None:
    files = write_series(tmp_path / "a", 2, patient_id="RE3")
    server.rix("import", str(tmp_path / "a"))
    stray = write_series(tmp_path / "stray", 1, patient_id="RE4")[0]
    ds = dcmread(stray, stop_before_pixels=True)
    folder = server.data / "objects" / ds.StudyInstanceUID / ds.SeriesInstanceUID
    folder.mkdir(parents=True)
    shutil.copy(stray, folder / f"{ds.SOPInstanceUID}.dcm")
    result = server.rix("reindex")
    assert "indexed 3 instances" in result.stdout
    assert f"added: {ds.SOPInstanceUID}" in result.stdout
    assert len(files) == 2


def test_verify_reports_an_altered_object(server: RixServer, tmp_path: Path) -> None:
    write_series(tmp_path / "a", 3, patient_id="VER1")
    server.rix("import", str(tmp_path / "a"))
    assert server.rix("verify").returncode == 0
    victim = objects(server)[1]
    data = bytearray(victim.read_bytes())
    data[split_file(bytes(data)).dataset_offset + 40] ^= 0xFF
    victim.write_bytes(bytes(data))
    result = server.rix("verify", check=False)
    assert result.returncode == 1
    assert "checksum mismatch" in result.stdout
    assert victim.name in result.stdout.replace("\n", "")


def _study_answers(server: RixServer) -> list[str]:
    """Study-level C-FIND answers from findscu, as a user would see them."""
    server.start()
    try:
        result = subprocess.run(
            [
                "findscu",
                "-S",
                "-aec",
                "RIX",
                "-k",
                "QueryRetrieveLevel=STUDY",
                "-k",
                "StudyInstanceUID=",
                "-k",
                "PatientName=",
                "-k",
                "PatientID=",
                "-k",
                "NumberOfStudyRelatedInstances=",
                "-k",
                "ModalitiesInStudy=",
                "127.0.0.1",
                str(server.dicom_port),
            ],
            env={**server.env, "TCP_NODELAY": "1"},
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        server.stop()
    lines = [line for line in result.stderr.splitlines() if line.startswith("I: (")]
    assert lines, result.stderr
    return sorted(lines)
