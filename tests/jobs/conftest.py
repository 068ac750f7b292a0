"""Fixtures of the job tests: an in-process archive per backend, emptied of jobs for
each test, so each test sees only the jobs it queued."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import delete

from rix.archive import Archive
from rix.index.database import begin_write
from rix.index.schema import deliveries, jobs
from tests.peers import postgres
from tests.peers.archive import opened


@pytest.fixture(scope="module")
def module_archive(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    url = postgres.create_database(migrated=True) if backend == "postgresql" else ""
    try:
        with opened(tmp_path_factory.mktemp("jobs") / "data", url) as archive:
            yield archive
    finally:
        if url:
            postgres.drop_database(url)


@pytest.fixture
def archive(module_archive: Archive) -> Archive:
    with begin_write(module_archive.engine) as conn:
        conn.execute(delete(deliveries))
        conn.execute(delete(jobs))
    return module_archive
