"""Fixtures of the radiology workflow's tests (issue 7)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.workflow.ordering import Workflow, workflow_region


@pytest.fixture(scope="session")
def workflow(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workflow]:
    """Orders, worklist and MPPS: one server per backend with HL7 on (``ordering``)."""
    with workflow_region(tmp_path_factory.mktemp("workflow"), backend) as built:
        yield built
