"""Generated requests from rix's own OpenAPI document never get a 5xx (schemathesis).

Every operation of /openapi.json gets requests generated from its parameters, valid
(positive) and schema-violating (negative). A second pass pins the path to a stored
multi-frame instance, so generated frame lists, bulk paths, windows, viewports and
qualities reach the code behind the UID lookup; it runs only the operations with a UID in
their path (the others would get the first pass's requests again: generation is
derandomized). schemathesis's pytest plugin does not run under pytest 9, so its Python API
drives hypothesis here directly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.peers.server import RixServer
from tests.web.conftest import StoredStudy

EXAMPLES = 12  # per operation and mode
FAST = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # report what failed; no shrinking
    suppress_health_check=list(HealthCheck),
)
# (document digest, operation, mode) for which hypothesis found no input: generation is
# derandomized and sends nothing until it has one, so asking again (the other backend, the
# second pass) would only spend its hundreds of attempts again
UNSATISFIABLE: set[tuple[str, str, str]] = set()


@pytest.fixture(scope="session")
def api_schema(origin: str, rix_server: RixServer) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(
        origin + "/openapi.json", timeout=10, headers=rix_server.auth
    )
    schema.rix_auth = rix_server.auth  # type: ignore[attr-defined]
    return schema


def server_errors(
    api_schema: schemathesis.BaseSchema,
    adjust: Callable[[schemathesis.Case], None],
    only: Callable[[str], bool] = lambda _path: True,
) -> list[str]:
    """Run every operation (whose path ``only`` accepts) in both modes, signed in as the
    test user so requests reach the code behind authentication; the failures as one line
    each."""
    auth: dict[str, str] = api_schema.rix_auth  # type: ignore[attr-defined]
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    document = json.dumps(api_schema.raw_schema, sort_keys=True).encode()
    digest = hashlib.sha256(document).hexdigest()
    for operation in [op for op in operations if only(op.path)]:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            key = (digest, operation.label, mode.value)
            if key in UNSATISFIABLE:
                continue

            @FAST
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case) -> None:
                adjust(case)
                case.headers = {**(case.headers or {}), **auth}
                case.call_and_validate(checks=[not_a_server_error])

            try:
                run()
            except Unsatisfiable:  # no schema-violating input exists (no parameters to break)
                UNSATISFIABLE.add(key)
            except Exception as exc:  # one line per operation, then the next one
                first = str(exc).strip().splitlines()[:3]
                failures.append(f"{operation.label} {mode.value}: {' | '.join(first)}")
    return failures


def test_generated_requests_get_no_server_error(api_schema: schemathesis.BaseSchema) -> None:
    assert server_errors(api_schema, lambda _case: None) == []


def test_generated_requests_on_a_stored_instance_get_no_server_error(
    api_schema: schemathesis.BaseSchema, study: StoredStudy
) -> None:
    pinned = {
        "study": study.study_uid,
        "series": study.mf_series,
        "sop": study.native.SOPInstanceUID,
    }

    def pin(case: schemathesis.Case) -> None:
        for name, uid in pinned.items():
            if case.path_parameters and name in case.path_parameters:
                case.path_parameters[name] = uid

    def has_a_uid(path: str) -> bool:
        return any("{" + name + "}" in path for name in pinned)

    assert server_errors(api_schema, pin, only=has_a_uid) == []


def test_openapi_document_lists_every_dicomweb_route(origin: str, rix_server: RixServer) -> None:
    paths = httpx.get(origin + "/openapi.json", timeout=10, headers=rix_server.auth).json()["paths"]
    instance = "/dicomweb/studies/{study}/series/{series}/instances/{sop}"
    for path in (
        "/dicomweb/studies",
        "/dicomweb/series",
        "/dicomweb/instances",
        "/dicomweb/studies/{study}/metadata",
        instance + "/frames/{frame_list}",
        instance + "/rendered",
        instance + "/thumbnail",
        "/wado",
    ):
        assert path in paths
