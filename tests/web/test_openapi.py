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
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jsonschema_rs
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


# --- the JSON API as a contract (issue 24, item 9) ---------------------------------------

JSON = "application/json"
# what an /api route may answer instead of JSON: the turnaround export and the rules
OTHER_MEDIA = {"text/csv", "application/toml"}


def api_operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every operation under /api: (method, path, operation), from the route table."""
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        if path.startswith("/api/")
        for method, operation in item.items()
    ]


def success_content(operation: dict[str, Any]) -> dict[str, Any]:
    """The media types of an operation's success answer, and their schemas."""
    status = next(s for s in operation["responses"] if s.startswith("2"))
    content: dict[str, Any] = operation["responses"][status].get("content", {})
    return content


def success_schema(operation: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema of an operation's success answer (None: not JSON)."""
    content = success_content(operation)
    return content[JSON]["schema"] if JSON in content else None


def declared(schema: dict[str, Any]) -> bool:
    """A named model, or a list of one: not the free-form object of ``dict[str, Any]``."""
    if schema.get("type") == "array":
        return declared(schema.get("items", {}))
    return "$ref" in schema or any(declared(s) for s in schema.get("anyOf", ()))


@pytest.fixture(scope="module")
def api_document(origin: str, rix_server: RixServer) -> dict[str, Any]:
    answer = httpx.get(origin + "/openapi.json", timeout=10, headers=rix_server.auth)
    document: dict[str, Any] = answer.json()
    return document


def test_every_api_route_declares_a_model_of_its_answer(api_document: dict[str, Any]) -> None:
    undeclared = []
    for method, path, operation in api_operations(api_document):
        schema = success_schema(operation)
        if schema is None and set(success_content(operation)) & OTHER_MEDIA:
            continue
        if schema is None or not declared(schema):
            undeclared.append(f"{method.upper()} {path}")
    assert undeclared == []


@pytest.fixture(scope="module")
def contract_client(origin: str, rix_server: RixServer) -> Iterator[httpx.Client]:
    """One user who may call every /api GET: clinician, radiologist and region-admin."""
    rix_server.add_user("api.contract", "clinician,radiologist,region-admin", trust="TEST")
    token = rix_server.create_token("api.contract")
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=origin, headers=auth, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def path_values(contract_client: httpx.Client, study: StoredStudy) -> dict[str, str]:
    """A value for every path parameter of an /api GET, made through the API itself."""
    api = contract_client
    upload = api.post("/api/imports", json={"files": [{"name": "a.dcm", "size": 1}]})
    order = api.post(
        "/api/orders",
        json={"trust": "TEST", "patient": {"patient_id": "CONTRACT-1"}, "modality": "CT"},
    )
    share = api.post(
        "/api/shares",
        json={
            "studies": [study.study_uid],
            "recipient_name": "Dr Contract",
            "recipient_email": "contract@example.org",
        },
    )
    invalid = {"patient_id": "CONTRACT-2", "nhs_number": "1234567890"}  # for the MPI's review
    unlinked = api.post("/api/orders", json={"trust": "TEST", "patient": invalid, "modality": "CT"})
    peer = {"title": "CONTRACT_WS", "host": "127.0.0.1", "port": 104, "kind": "workstation"}
    ae = api.post("/api/aes", json={**peer, "trust": "TEST"})
    now = time.time()
    shift = api.post(
        "/api/rota", json={"username": "api.contract", "starts_at": now, "ends_at": now + 3600}
    )
    for answer in (upload, order, share, ae, unlinked, shift):
        assert answer.status_code == 201, answer.text
    patient = order.json()["patient"]
    prefetch = api.post("/api/prefetch", json={"trust": "TEST", "patient": patient})
    assert prefetch.status_code == 202, prefetch.text
    return {
        "upload_id": upload.json()["id"],
        "order_id": str(order.json()["id"]),
        "share_id": str(share.json()["id"]),
        "job_id": str(prefetch.json()["job"]),
        "study": study.study_uid,
        "patient": patient,
    }


QUERIES = {  # routes that answer only when asked about something
    "/api/timeline": {"patient": "{patient}"},
    "/api/turnaround": {"days": "3"},
    "/api/imports/{upload_id}/candidates": {"q": "CONTRACT-1"},
}


def test_every_api_get_answers_what_the_document_declares(
    api_document: dict[str, Any], contract_client: httpx.Client, path_values: dict[str, str]
) -> None:
    """Each GET under /api, called with data made by the API, answers 200 with a body that
    validates against the schema /openapi.json declares for it; a new route is covered as
    soon as it is in the route table (a new path parameter needs a value above)."""
    failures = []
    components = {"components": api_document.get("components", {})}
    gets = [(p, op) for m, p, op in api_operations(api_document) if m == "get"]
    assert len(gets) >= 20
    for path, operation in gets:
        url = path.format(**path_values)
        query = {k: v.format(**path_values) for k, v in QUERIES.get(path, {}).items()}
        answer = contract_client.get(url, params=query)
        if answer.status_code != 200:
            failures.append(f"GET {url}: {answer.status_code} {answer.text[:200]}")
            continue
        media = answer.headers["content-type"].split(";")[0]
        if media != JSON:
            if media not in success_content(operation):
                failures.append(f"GET {url}: {media} is not declared")
            continue
        schema = success_schema(operation) or {"not": {}}
        validator = jsonschema_rs.validator_for({**schema, **components})
        errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(answer.json())]
        if errors:
            failures.append(f"GET {url}: {errors[:3]}")
        elif answer.json() in ([], {}) or list_of_nothing(answer.json()):
            failures.append(f"GET {url}: nothing to validate; make some data above")
    assert failures == []


def list_of_nothing(body: Any) -> bool:
    """An answer whose only list is empty (``{"studies": []}``): it validates whatever."""
    return isinstance(body, dict) and len(body) == 1 and next(iter(body.values())) == []
