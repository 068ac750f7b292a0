"""The one ingest path, in process: validation, durability order, duplicates, group commit."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from sqlalchemy import func, select

from rix import audit, config
from rix.archive import Archive
from rix.config import DuplicatePolicy
from rix.dataset.parsing import read_header, split_file
from rix.errors import DuplicateRejected, InvalidInstance
from rix.index import database
from rix.index.group_commit import IndexWriter
from rix.index.schema import audit_events, instance_conflicts, instances
from rix.ingest import Outcome, Received, ingest, received_from_file
from rix.store.memory import MemoryStore
from tests.peers.synthetic import ct_slice


def make_archive(tmp: Path, url: str, policy: DuplicatePolicy) -> Archive:
    settings = config.load({"data": tmp, "database_url": url, "duplicate_policy": policy}, env={})
    engine = database.connect(settings.index_url)
    database.upgrade(engine)
    return Archive(
        settings=settings, engine=engine, store=MemoryStore(), writer=IndexWriter(engine)
    )


@pytest.fixture(params=list(DuplicatePolicy))
def policy(request: pytest.FixtureRequest) -> DuplicatePolicy:
    return DuplicatePolicy(request.param)


@pytest.fixture
def archive(tmp_path: Path, migrated_database_url: str) -> Iterator[Archive]:
    archive = make_archive(tmp_path, migrated_database_url, DuplicatePolicy.KEEP_FIRST)
    yield archive
    archive.close()


def encoded(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def new_slice(**changes: object) -> Dataset:
    ds = ct_slice(
        patient_id="ING1",
        patient_name="Ingest^Test",
        study_uid=generate_uid(),
        series_uid=generate_uid(),
        number=1,
    )
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    return ds


def count(archive: Archive, table: object) -> int:
    with archive.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_stored_bytes_are_the_received_dataset_under_a_new_file_meta(archive: Archive) -> None:
    data = encoded(new_slice())
    result = ingest(archive, received_from_file(data))
    assert result.outcome is Outcome.STORED
    (key,) = list(archive.store.all_keys())
    with archive.store.open(key) as f:
        stored = f.read()
    assert stored[:128] == b"\0" * 128 and stored[128:132] == b"DICM"
    assert stored[split_file(stored).dataset_offset :] == data[split_file(data).dataset_offset :]


def test_same_instance_with_identical_bytes_is_success_with_one_copy(archive: Archive) -> None:
    data = encoded(new_slice())
    ingest(archive, received_from_file(data))
    again = ingest(archive, received_from_file(data))
    assert again.outcome is Outcome.ALREADY_PRESENT
    assert again.status == 0x0000
    assert len(list(archive.store.all_keys())) == 1


def test_different_bytes_follow_the_policy_and_keep_both_copies(
    tmp_path: Path, migrated_database_url: str, policy: DuplicatePolicy
) -> None:
    archive = make_archive(tmp_path, migrated_database_url, policy)
    first = new_slice()
    second = new_slice(
        SOPInstanceUID=first.SOPInstanceUID,
        StudyInstanceUID=first.StudyInstanceUID,
        SeriesInstanceUID=first.SeriesInstanceUID,
        PatientName="Changed^Name",
    )
    ingest(archive, received_from_file(encoded(first)))
    if policy is DuplicatePolicy.REJECT:
        with pytest.raises(DuplicateRejected) as refused:
            ingest(archive, received_from_file(encoded(second)))
        assert refused.value.dimse_status == 0x0111
    else:
        result = ingest(archive, received_from_file(encoded(second)))
        assert result.status == 0xB000
        assert "already stored with different content" in result.reason
    assert len(list(archive.store.all_keys())) == 2  # neither copy deleted
    assert count(archive, instances) == 1
    assert count(archive, instance_conflicts) == 1
    with archive.engine.connect() as conn:
        kinds = list(conn.execute(select(audit_events.c.kind)).scalars())
        current = conn.execute(select(instances.c.sha256)).scalar_one()
    assert kinds == ["store-duplicate"]
    first_sha = hashlib.sha256(
        encoded(first)[split_file(encoded(first)).dataset_offset :]
    ).hexdigest()
    assert (current == first_sha) == (policy is not DuplicatePolicy.KEEP_LATEST)
    assert audit.verify_chain(archive.engine) == []
    archive.close()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"SOPInstanceUID": "1.2.3/../x"}, "SOPInstanceUID '1.2.3/../x' is not a valid DICOM UID"),
        ({"StudyInstanceUID": "1.2.3."}, "StudyInstanceUID '1.2.3.' is not a valid DICOM UID"),
        ({"SeriesInstanceUID": "../../etc"}, "is not a valid DICOM UID"),
    ],
)
def test_invalid_uids_are_refused_before_any_path_is_built(
    archive: Archive, change: dict[str, str], reason: str
) -> None:
    with pytest.raises(InvalidInstance, match=reason.replace("(", r"\(").replace(".", r"\.")):
        ingest(archive, received_from_file(encoded(new_slice(**change))))
    assert list(archive.store.all_keys()) == []


def test_missing_sop_class_is_refused_with_the_reason(archive: Archive) -> None:
    ds = new_slice()
    del ds.SOPClassUID
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    write_dataset(out, ds)
    received = Received(dataset=out.getvalue(), transfer_syntax=ExplicitVRLittleEndian)
    with pytest.raises(InvalidInstance, match="SOPClassUID is missing"):
        ingest(archive, received)


def test_command_and_dataset_disagreeing_on_the_instance_is_refused(archive: Archive) -> None:
    data = encoded(new_slice())
    split = split_file(data)
    received = Received(
        dataset=data[split.dataset_offset :],
        transfer_syntax=split.transfer_syntax,
        sop_instance_uid="1.2.3.4",
    )
    with pytest.raises(InvalidInstance, match="differs from the C-STORE request"):
        ingest(archive, received)


def test_an_object_left_by_a_crash_before_the_index_commit_is_indexed_on_resend(
    archive: Archive,
) -> None:
    data = encoded(new_slice())
    result_key = None
    received = received_from_file(data)
    header = read_header(received.dataset, received.transfer_syntax)
    ds = header.dataset
    result_key = f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
    archive.store.put(result_key, data)  # bytes durable, index never committed
    result = ingest(archive, received)
    assert result.outcome is Outcome.STORED
    assert count(archive, instances) == 1


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=1, max_value=10_000))
def test_truncated_datasets_are_refused_never_stored(cut: int) -> None:
    data = encoded(new_slice())
    split = split_file(data)
    dataset = data[split.dataset_offset :]
    pixel_start = dataset.index(b"\xe0\x7f\x10\x00")
    if not pixel_start < len(dataset) - cut:
        return
    with pytest.raises(InvalidInstance, match="truncated"):
        read_header(dataset[: len(dataset) - cut], split.transfer_syntax)


def test_garbage_is_refused_as_not_dicom() -> None:
    with pytest.raises(InvalidInstance, match="not a DICOM file"):
        received_from_file(b"\x89PNG\r\n\x1a\n" + b"\0" * 400)


def test_concurrent_stores_share_index_commits(archive: Archive) -> None:
    """Group commit: 8 threads x 25 stores need far fewer commits than stores."""
    payloads = [encoded(new_slice()) for _ in range(200)]
    errors: list[BaseException] = []

    def send(chunk: list[bytes]) -> None:
        try:
            for data in chunk:
                ingest(archive, received_from_file(data))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(payloads[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert count(archive, instances) == 200
    assert archive.writer.operations == 200
    assert archive.writer.batches < 200
