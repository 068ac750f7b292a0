"""DICOMweb fixtures: clients of the session's live server (one per backend) and a
synthetic study stored once through STOW-RS by a real client, dicomweb-client."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from dicomweb_client import DICOMwebClient
from pydicom.dataset import Dataset

from tests.peers import images, postgres
from tests.peers.server import RixServer


@pytest.fixture(scope="session")
def origin(rix_server: RixServer) -> str:
    return f"http://127.0.0.1:{rix_server.http_port}"


@pytest.fixture(scope="session")
def http(origin: str, rix_server: RixServer) -> Iterator[httpx.Client]:
    """Plain HTTP to ``/dicomweb``: for what a DICOMweb client library does not send."""
    with httpx.Client(base_url=origin + "/dicomweb", timeout=60, headers=rix_server.auth) as c:
        yield c


@pytest.fixture(scope="session")
def client(origin: str, rix_server: RixServer) -> DICOMwebClient:
    dw = DICOMwebClient(origin + "/dicomweb", headers=rix_server.auth)
    # dicomweb-client sets Host without the port (web.py `headers['Host'] = self.host`),
    # so every URL rix derives from Host would lose it; say what a browser would.
    dw.host = origin.removeprefix("http://")
    return dw


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredStudy:
    """One patient, one study, two series: CT slices and multi-frame instances."""

    patient_id: str
    patient_name: str
    study_uid: str
    ct_series: str
    mf_series: str
    ct: tuple[Dataset, ...]  # slice 1 has an overlay, slice 2 an icon
    native: Dataset  # 4 frames, 8 bits, stored uncompressed
    compressed: Dataset  # 3 frames, 16 bits, stored RLE Lossless

    @property
    def instances(self) -> tuple[Dataset, ...]:
        return (*self.ct, self.native, self.compressed)

    def path(self, ds: Dataset) -> str:
        return (
            f"/studies/{self.study_uid}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
        )


@pytest.fixture(scope="session")
def study(client: DICOMwebClient, rix_server: RixServer) -> StoredStudy:
    study_uid, ct_series = images.fresh_uids()
    mf_series = images.fresh_uids()[0]
    who = {"patient_id": "WEB-CLIENT-1", "name": "Webster^Ada^Q"}
    ct = [images.ct(**who, study_uid=study_uid, series_uid=ct_series, number=n) for n in (1, 2, 3)]
    images.with_overlay(ct[0])
    images.with_icon(ct[1])
    common = {**who, "study_uid": study_uid, "series_uid": mf_series}
    native = images.multiframe(**common, number=1, frames=4)
    compressed = images.rle(images.multiframe(**common, number=2, frames=3, bits=16))
    stored = StoredStudy(
        patient_id=who["patient_id"],
        patient_name=who["name"],
        study_uid=study_uid,
        ct_series=ct_series,
        mf_series=mf_series,
        ct=tuple(ct),
        native=native,
        compressed=compressed,
    )
    answer = client.store_instances(list(stored.instances))
    assert len(answer.ReferencedSOPSequence) == len(stored.instances)
    return stored


@contextmanager
def own_server(folder: Path, backend: str) -> Iterator[RixServer]:
    """A server with a data folder and database of its own, for tests whose expectations
    depend on what else is in the archive (the session server is shared with tests/dicom)."""
    url = postgres.create_database(migrated=True) if backend == "postgresql" else ""
    server = RixServer(data=folder / "data", database_url=url).start()
    try:
        yield server
    finally:
        server.stop(wait=False)
        if url:
            postgres.drop_database(url)
