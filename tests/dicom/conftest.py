"""Data sent once per backend: pydicom's corpus and the synthetic patients."""

from __future__ import annotations

import pytest

from tests.dicom import synthetic
from tests.dicom.corpus_store import CorpusStore, capture_storescu_bytes, send_corpus
from tests.peers import scu
from tests.peers.server import RixServer


@pytest.fixture(scope="session")
def storescu_bytes() -> dict[str, bytes]:
    return capture_storescu_bytes()


@pytest.fixture(scope="session")
def corpus_store(rix_server: RixServer, storescu_bytes: dict[str, bytes]) -> CorpusStore:
    return send_corpus(rix_server, storescu_bytes)


@pytest.fixture(scope="session")
def synthetic_studies(rix_server: RixServer) -> tuple[synthetic.Study, ...]:
    """The synthetic patients of ``synthetic.py``, stored once per backend."""
    datasets = [ds for study in synthetic.STUDIES for ds in synthetic.instances(study)]
    assert scu.store_datasets(rix_server.dicom_port, datasets) == [0x0000] * len(datasets)
    return synthetic.STUDIES
