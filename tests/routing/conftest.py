"""The region of patient transfers: one server per backend, shared by the API and the
HL7 tests (each test moves a different patient or to a different trust)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.region.region import Region
from tests.routing.transfers import moving_region


@pytest.fixture(scope="session")
def moving(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Region]:
    with moving_region(tmp_path_factory.mktemp("moving"), backend) as region:
        yield region
