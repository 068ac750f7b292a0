"""Bad input gets a 4xx with a reason, never a 5xx, and the server stays up (PS3.18 8.6).

Every case ends by asking /healthz. A STOW-RS part that is refused leaves no object
and no index row behind.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from pydicom.uid import generate_uid

from tests.peers import images
from tests.peers.dicomweb import (
    BOUNDARY,
    DICOM_PARTS,
    ERROR_COMMENT,
    FAILED_SOP_SEQUENCE,
    FAILURE_REASON,
    first_value,
    multipart,
    part10,
    raw_request,
    sequence,
    status_line,
    stow,
)
from tests.peers.server import RixServer
from tests.web.conftest import StoredStudy

CANNOT_UNDERSTAND, STUDY_MISMATCH = 0xC000, 0xA900


@dataclass(frozen=True, slots=True, kw_only=True)
class Bad:
    """A request rix must refuse. ``{study}``, ``{series}`` and ``{sop}`` in ``path`` are
    a stored CT instance of ``conftest.study``; ``{uid}`` a valid UID nobody stored."""

    path: str
    status: int
    method: str = "GET"
    params: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


INSTANCE = "/studies/{study}/series/{series}/instances/{sop}"
STOW_HEADERS = {"Content-Type": DICOM_PARTS}
NOT_DICOM = multipart([({"Content-Type": "application/dicom"}, b"hello, not DICOM" * 10)])
A = {"Accept": "application/dicom"}

STOW_CASES = {
    "no-closing-delimiter": Bad(
        path="/studies",
        method="POST",
        headers=STOW_HEADERS,
        body=NOT_DICOM.removesuffix(f"--{BOUNDARY}--\r\n".encode()),
        status=400,
    ),
    "body-ends-inside-part-headers": Bad(
        path="/studies",
        method="POST",
        headers=STOW_HEADERS,
        body=f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n".encode(),
        status=400,
    ),
    "part-header-without-colon": Bad(
        path="/studies",
        method="POST",
        headers=STOW_HEADERS,
        body=f"--{BOUNDARY}\r\nnot a header\r\n\r\nxx\r\n--{BOUNDARY}--\r\n".encode(),
        status=400,
    ),
    "wrong-boundary": Bad(
        path="/studies",
        method="POST",
        headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=other'},
        body=NOT_DICOM,
        status=400,
    ),
    "missing-boundary": Bad(
        path="/studies",
        method="POST",
        headers={"Content-Type": 'multipart/related; type="application/dicom"'},
        body=NOT_DICOM,
        status=400,
    ),
    "boundary-over-70-characters": Bad(
        path="/studies",
        method="POST",
        headers={"Content-Type": "multipart/related; boundary=" + "b" * 71},
        body=NOT_DICOM,
        status=400,
    ),
    "empty-body": Bad(path="/studies", method="POST", headers=STOW_HEADERS, status=400),
    "no-parts": Bad(
        path="/studies",
        method="POST",
        headers=STOW_HEADERS,
        body=f"--{BOUNDARY}--\r\n".encode(),
        status=400,
    ),
    "unsupported-content-type": Bad(
        path="/studies",
        method="POST",
        headers={"Content-Type": "application/json"},
        body=b"{}",
        status=415,
    ),
    "unsupported-part-type": Bad(
        path="/studies",
        method="POST",
        headers={"Content-Type": f'multipart/related; type="image/png"; boundary={BOUNDARY}'},
        body=NOT_DICOM,
        status=415,
    ),
    "malformed-study-uid-in-url": Bad(
        path="/studies/1.2.abc", method="POST", headers=STOW_HEADERS, body=NOT_DICOM, status=400
    ),
    "answer-only-as-html": Bad(
        path="/studies",
        method="POST",
        headers={**STOW_HEADERS, "Accept": "text/html"},
        body=NOT_DICOM,
        status=406,
    ),
}

QIDO_CASES = {
    "negative-offset": Bad(path="/studies", params=[("offset", "-1")], status=400),
    "negative-limit": Bad(path="/studies", params=[("limit", "-1")], status=400),
    "offset-not-a-number": Bad(path="/studies", params=[("offset", "ten")], status=400),
    "offset-beyond-64-bits": Bad(path="/studies", params=[("offset", "9" * 30)], status=400),
    "a-thousand-includefields": Bad(
        path="/studies", params=[("includefield", "PatientAge")] * 1000, status=400
    ),
    "includefield-of-no-attribute": Bad(
        path="/studies", params=[("includefield", "NoSuchKeyword")], status=400
    ),
    "unknown-query-key": Bad(path="/studies", params=[("Colour", "blue")], status=400),
    "10000-character-name": Bad(path="/studies", params=[("PatientName", "x" * 10000)], status=400),
    "10000-character-uid-list": Bad(
        path="/instances", params=[("SOPInstanceUID", "1" * 10000)], status=400
    ),
    "a-thousand-dates": Bad(path="/studies", params=[("StudyDate", "2020\\" * 1000)], status=400),
    "a-thousand-modalities": Bad(
        path="/studies", params=[("ModalitiesInStudy", "CT\\" * 1000)], status=400
    ),
    "a-thousand-sexes": Bad(path="/studies", params=[("PatientSex", "F\\" * 1000)], status=400),
    "instance-number-beyond-64-bits": Bad(
        path="/instances", params=[("InstanceNumber", "9" * 20)], status=400
    ),
    "series-number-not-a-number": Bad(path="/series", params=[("SeriesNumber", "one")], status=400),
    "date-range-without-bounds": Bad(path="/studies", params=[("StudyDate", "-")], status=400),
    "answer-only-as-png": Bad(path="/studies", headers={"Accept": "image/png"}, status=406),
    "malformed-study-uid-in-series-search": Bad(path="/studies/1.2.x/series", status=400),
    "malformed-study-uid-in-instance-search": Bad(path="/studies/1..2/instances", status=400),
    "malformed-series-uid-in-instance-search": Bad(
        path="/studies/{study}/series/abc/instances", status=400
    ),
}

UNKNOWN = {
    "study": "/studies/{uid}",
    "series": "/studies/{study}/series/{uid}",
    "instance": "/studies/{study}/series/{series}/instances/{uid}",
    "study-metadata": "/studies/{uid}/metadata",
    "series-metadata": "/studies/{study}/series/{uid}/metadata",
    "instance-metadata": "/studies/{study}/series/{series}/instances/{uid}/metadata",
    "frames": "/studies/{study}/series/{series}/instances/{uid}/frames/1",
    "bulk": "/studies/{study}/series/{series}/instances/{uid}/bulk/7FE00010",
    "rendered": "/studies/{study}/series/{series}/instances/{uid}/rendered",
    "frame-rendered": "/studies/{study}/series/{series}/instances/{uid}/frames/1/rendered",
    "study-thumbnail": "/studies/{uid}/thumbnail",
    "series-thumbnail": "/studies/{study}/series/{uid}/thumbnail",
    "instance-thumbnail": "/studies/{study}/series/{series}/instances/{uid}/thumbnail",
}
WADO_CASES = {f"unknown-{name}": Bad(path=path, status=404) for name, path in UNKNOWN.items()}
WADO_CASES |= {
    f"malformed-uid-{name}-{bad}": Bad(path=path.replace("{uid}", uid), status=400)
    for name, path in UNKNOWN.items()
    for bad, uid in (("letters", "1.2.abc"), ("empty-component", "1..2"), ("65-chars", "1" * 65))
}
WADO_CASES |= {
    "frame-zero": Bad(path=INSTANCE + "/frames/0", status=400),
    "frame-negative": Bad(path=INSTANCE + "/frames/-1", status=400),
    "frame-not-a-number": Bad(path=INSTANCE + "/frames/one", status=400),
    "frame-list-with-a-gap": Bad(path=INSTANCE + "/frames/1,,2", status=400),
    "frame-beyond-the-last": Bad(path=INSTANCE + "/frames/2", status=404),
    "frame-beyond-64-bits": Bad(path=INSTANCE + "/frames/" + "9" * 30, status=404),
    "ten-thousand-and-one-frames": Bad(
        path=INSTANCE + "/frames/" + ",".join(["1"] * 10_001), status=400
    ),
    "rendered-frame-not-a-number": Bad(path=INSTANCE + "/frames/one/rendered", status=422),
    "rendered-frame-beyond-the-last": Bad(path=INSTANCE + "/frames/2/rendered", status=400),
    "bulk-tag-not-hexadecimal": Bad(path=INSTANCE + "/bulk/7FE0001Z", status=400),
    "bulk-tag-absent": Bad(path=INSTANCE + "/bulk/00420011", status=404),
    "bulk-tag-not-bulk": Bad(path=INSTANCE + "/bulk/00100010", status=404),
    "bulk-item-beyond-the-last": Bad(path=INSTANCE + "/bulk/00880200/5/7FE00010", status=404),
    "bulk-path-through-a-non-sequence": Bad(
        path=INSTANCE + "/bulk/00100010/0/7FE00010", status=400
    ),
    "window-not-numbers": Bad(path=INSTANCE + "/rendered", params=[("window", "a,b")], status=400),
    "window-nan": Bad(path=INSTANCE + "/rendered", params=[("window", "nan,nan")], status=400),
    "window-infinite": Bad(path=INSTANCE + "/rendered", params=[("window", "inf,inf")], status=400),
    "window-width-zero": Bad(path=INSTANCE + "/rendered", params=[("window", "40,0")], status=400),
    "window-function-unknown": Bad(
        path=INSTANCE + "/rendered", params=[("window", "40,400,cubic")], status=400
    ),
    "viewport-zero": Bad(path=INSTANCE + "/rendered", params=[("viewport", "0,0")], status=400),
    "viewport-huge": Bad(path=INSTANCE + "/thumbnail", params=[("viewport", "9999,9")], status=400),
    "quality-zero": Bad(path=INSTANCE + "/rendered", params=[("quality", "0")], status=400),
    "quality-not-a-number": Bad(
        path=INSTANCE + "/rendered", params=[("quality", "hi")], status=400
    ),
    "instance-as-png": Bad(path=INSTANCE, headers={"Accept": "image/png"}, status=406),
    "study-in-jpeg-baseline": Bad(
        path="/studies/{study}",
        headers={
            "Accept": 'multipart/related; type="application/dicom"; '
            "transfer-syntax=1.2.840.10008.1.2.4.50"
        },
        status=406,
    ),
    "instance-in-an-unknown-syntax": Bad(
        path=INSTANCE, headers={"Accept": "application/dicom; transfer-syntax=1.2.3.4"}, status=406
    ),
    "metadata-as-xml": Bad(
        path="/studies/{study}/metadata", headers={"Accept": "application/xml"}, status=406
    ),
    "frames-as-jpeg-of-a-native-instance": Bad(
        path=INSTANCE + "/frames/1",
        headers={
            "Accept": 'multipart/related; type="application/octet-stream"; '
            "transfer-syntax=1.2.840.10008.1.2.4.50"
        },
        status=406,
    ),
    "frames-as-text": Bad(
        path=INSTANCE + "/frames/1", headers={"Accept": "text/plain"}, status=406
    ),
    "bulk-as-html": Bad(
        path=INSTANCE + "/bulk/7FE00010", headers={"Accept": "text/html"}, status=406
    ),
    "rendered-as-dicom": Bad(path=INSTANCE + "/rendered", headers=A, status=406),
    "thumbnail-as-dicom": Bad(path="/studies/{study}/thumbnail", headers=A, status=406),
}


def resolve(bad: Bad, study: StoredStudy) -> str:
    ds = study.ct[0]
    return bad.path.format(
        study=study.study_uid, series=study.ct_series, sop=ds.SOPInstanceUID, uid=generate_uid()
    )


def assert_refused_with_a_reason(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text[:300]
    body = response.json()
    if isinstance(body, dict) and FAILED_SOP_SEQUENCE in body:
        comments = [first_value(f, ERROR_COMMENT) for f in sequence(body, FAILED_SOP_SEQUENCE)]
        assert all(comments), body
    else:
        reason = body.get("error") or body.get("detail")
        assert reason, body


@pytest.fixture
def healthy(origin: str) -> Iterator[None]:
    yield
    assert httpx.get(origin + "/healthz", timeout=10).json() == {"status": "ok"}


def send(http: httpx.Client, bad: Bad, study: StoredStudy) -> httpx.Response:
    return http.request(
        bad.method, resolve(bad, study), params=bad.params, headers=bad.headers, content=bad.body
    )


@pytest.mark.usefixtures("healthy")
@pytest.mark.parametrize("case", STOW_CASES, ids=str)
def test_stow_bad_request_is_refused_with_a_reason(
    http: httpx.Client, study: StoredStudy, case: str
) -> None:
    bad = STOW_CASES[case]
    assert_refused_with_a_reason(send(http, bad, study), bad.status)


@pytest.mark.usefixtures("healthy")
@pytest.mark.parametrize("case", QIDO_CASES, ids=str)
def test_qido_bad_request_is_refused_with_a_reason(
    http: httpx.Client, study: StoredStudy, case: str
) -> None:
    bad = QIDO_CASES[case]
    assert_refused_with_a_reason(send(http, bad, study), bad.status)


@pytest.mark.usefixtures("healthy")
@pytest.mark.parametrize("case", WADO_CASES, ids=str)
def test_wado_bad_request_is_refused_with_a_reason(
    http: httpx.Client, study: StoredStudy, case: str
) -> None:
    bad = WADO_CASES[case]
    assert_refused_with_a_reason(send(http, bad, study), bad.status)


@pytest.mark.usefixtures("healthy")
@pytest.mark.parametrize(
    "params",
    [
        {"contentType": "text/html"},
        {"contentType": "application/dicom", "transferSyntax": "1.2.840.10008.1.2.4.50"},
        {"frameNumber": "0"},
        {"frameNumber": "one"},
        {"rows": "0"},
        {"windowCenter": "a", "windowWidth": "1"},
        {"windowCenter": "nan", "windowWidth": "nan"},
        {"requestType": "WADO-RS"},
        {"objectUID": "1.2.abc"},
        {"objectUID": "1.2.3.4.5"},
    ],
    ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()),
)
def test_wado_uri_bad_request_is_refused_with_a_reason(
    origin: str, study: StoredStudy, params: dict[str, str], rix_server: RixServer
) -> None:
    query = {
        "requestType": "WADO",
        "studyUID": study.study_uid,
        "seriesUID": study.ct_series,
        "objectUID": study.ct[0].SOPInstanceUID,
        **params,
    }
    response = httpx.get(origin + "/wado", params=query, timeout=30, headers=rix_server.auth)
    assert 400 <= response.status_code < 500, response.text
    assert response.json().get("error"), response.text


@pytest.mark.usefixtures("healthy")
def test_limit_of_a_billion_is_capped_with_a_warning(http: httpx.Client) -> None:
    response = http.get("/studies", params={"limit": "1000000000"})
    assert response.status_code == 200
    assert len(response.json()) <= 1000
    assert response.headers["warning"].startswith('299 rix "')
    assert "1000" in response.headers["warning"]


@pytest.mark.usefixtures("healthy")
@pytest.mark.parametrize("key", ["PatientName", "PatientID", "AccessionNumber", "StudyDescription"])
def test_sql_wildcards_and_quotes_in_a_value_match_only_themselves(
    http: httpx.Client, study: StoredStudy, key: str
) -> None:
    for value in ("'%_\\", "%", "_", "' OR '1'='1", '"; DROP TABLE studies; --'):
        response = http.get("/studies", params={key: value})
        assert response.status_code in (200, 400), response.text
        if response.status_code == 200:
            assert response.json() == [], value
    assert http.get("/studies", params={"PatientID": study.patient_id}).json()


@pytest.mark.usefixtures("healthy")
def test_content_length_of_4_gib_without_a_body_gets_413(rix_server: RixServer) -> None:
    head = (
        "POST /dicomweb/studies HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        f"Authorization: Bearer {rix_server.token}\r\n"
        f"Content-Type: {DICOM_PARTS}\r\n"
        "Content-Length: 4294967295\r\n\r\n"
    ).encode()
    answer = raw_request(rix_server.http_port, head)
    assert status_line(answer) == 413
    assert b'"error"' in answer


def object_files(server: RixServer) -> set[Path]:
    root = server.data / "objects"
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def truncated_instance() -> bytes:
    study_uid, series_uid = images.fresh_uids()
    ds = images.ct(
        patient_id="WEB-BAD-1",
        name="Bad^Input",
        study_uid=study_uid,
        series_uid=series_uid,
        number=1,
    )
    return part10(ds)[:-1000]


def test_a_refused_part_stores_nothing(
    http: httpx.Client, rix_server: RixServer, healthy: None
) -> None:
    before = object_files(rix_server)
    data = truncated_instance()
    response = stow(http, [data])
    assert_refused_with_a_reason(response, 409)
    (failed,) = sequence(response.json(), FAILED_SOP_SEQUENCE)
    assert first_value(failed, FAILURE_REASON) == CANNOT_UNDERSTAND
    assert object_files(rix_server) == before
    assert http.get("/studies", params={"PatientID": "WEB-BAD-1"}).json() == []


def test_good_parts_are_stored_and_bad_ones_refused_in_one_request(
    http: httpx.Client, rix_server: RixServer, healthy: None
) -> None:
    study_uid, series_uid = images.fresh_uids()
    good = images.ct(
        patient_id="WEB-BAD-2",
        name="Mixed^Parts",
        study_uid=study_uid,
        series_uid=series_uid,
        number=1,
    )
    response = stow(http, [b"not DICOM at all", part10(good), truncated_instance()])
    assert response.status_code == 202
    answer = response.json()
    assert len(sequence(answer, FAILED_SOP_SEQUENCE)) == 2
    found = http.get("/instances", params={"PatientID": "WEB-BAD-2"}).json()
    assert [f["00080018"]["Value"][0] for f in found] == [good.SOPInstanceUID]
    assert http.get("/studies", params={"PatientID": "WEB-BAD-1"}).json() == []


def test_an_instance_of_another_study_is_refused_at_a_study_url(
    http: httpx.Client, rix_server: RixServer, healthy: None
) -> None:
    study_uid, series_uid = images.fresh_uids()
    ds = images.ct(
        patient_id="WEB-BAD-3",
        name="Other^Study",
        study_uid=study_uid,
        series_uid=series_uid,
        number=1,
    )
    before = object_files(rix_server)
    response = stow(http, [part10(ds)], study=generate_uid())
    assert_refused_with_a_reason(response, 409)
    (failed,) = sequence(response.json(), FAILED_SOP_SEQUENCE)
    assert first_value(failed, FAILURE_REASON) == STUDY_MISMATCH
    assert first_value(failed, "00081155") == ds.SOPInstanceUID
    assert object_files(rix_server) == before
    assert http.get("/studies", params={"PatientID": "WEB-BAD-3"}).json() == []


def test_a_part_that_is_not_dicom_is_refused_with_its_reason(
    http: httpx.Client, healthy: None
) -> None:
    body = multipart(
        [({"Content-Type": "text/plain"}, b"hello"), ({"Content-Type": "application/dicom"}, b"x")]
    )
    response = http.post("/studies", content=body, headers={"Content-Type": DICOM_PARTS})
    assert_refused_with_a_reason(response, 409)
    assert len(sequence(response.json(), FAILED_SOP_SEQUENCE)) == 2


@pytest.mark.usefixtures("healthy")
@pytest.mark.parametrize(
    ("name", "document"),
    [
        ("not-json", b"{"),
        ("not-datasets", b'[1, "x", null]'),
        ("bulk-data-uri-without-its-part", b'[{"7FE00010": {"vr": "OW", "BulkDataURI": "x"}}]'),
        ("without-sop-uids", b'{"00100010": {"vr": "PN", "Value": [{"Alphabetic": "X"}]}}'),
    ],
)
def test_stow_of_bad_dicom_json_is_refused_with_a_reason(
    http: httpx.Client, name: str, document: bytes
) -> None:
    content_type = f'multipart/related; type="application/dicom+json"; boundary={BOUNDARY}'
    body = multipart([({"Content-Type": "application/dicom+json"}, document)])
    response = http.post("/studies", content=body, headers={"Content-Type": content_type})
    assert_refused_with_a_reason(response, 409)


def test_a_chunked_body_over_the_upload_limit_gets_413(
    tmp_path: Path, migrated_database_url: str
) -> None:
    server = RixServer(
        data=tmp_path / "data",
        database_url=migrated_database_url,
        extra_env={"RIX_MAX_UPLOAD_MB": "1"},
    ).start()
    try:
        url = f"http://127.0.0.1:{server.http_port}/dicomweb/studies"

        def chunks() -> Iterator[bytes]:
            yield f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            for _ in range(40):
                yield bytes(64 << 10)

        with httpx.Client(timeout=30) as client:
            try:
                headers = {**STOW_HEADERS, **server.auth}
                response = client.post(url, content=chunks(), headers=headers)
                assert response.status_code == 413, response.text
            except httpx.TransportError:
                pass  # the server may close the connection while the body is still sent
            assert client.get(url.replace("/dicomweb/studies", "/healthz")).status_code == 200
        assert object_files(server) == set()
    finally:
        server.stop(wait=False)


def test_a_body_broken_after_complete_parts_is_refused_and_those_parts_kept(
    http: httpx.Client, healthy: None
) -> None:
    """multipart.py keeps what was complete: the client gets a 400 and re-sends, which
    is a plain success for identical instances (PS3.4 B.2.3)."""
    study_uid, series_uid = images.fresh_uids()
    ds = images.ct(
        patient_id="WEB-BAD-4",
        name="Broken^Body",
        study_uid=study_uid,
        series_uid=series_uid,
        number=1,
    )
    complete = multipart([({"Content-Type": "application/dicom"}, part10(ds))])
    body = complete.removesuffix(f"--{BOUNDARY}--\r\n".encode())
    body += f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + b"\x00" * 500
    response = http.post("/studies", content=body, headers={"Content-Type": DICOM_PARTS})
    assert_refused_with_a_reason(response, 400)
    assert stow(http, [part10(ds)]).status_code == 200


def test_server_answers_normally_after_all_this(http: httpx.Client, study: StoredStudy) -> None:
    response = http.get("/studies", params={"PatientID": study.patient_id})
    assert response.status_code == 200
    assert len(response.json()) == 1
    assert (
        io.BytesIO(http.get(study.path(study.ct[0]) + "/rendered").content).read(2) == b"\xff\xd8"
    )


@pytest.mark.usefixtures("healthy")
@pytest.mark.parametrize(
    ("path", "key", "value"),
    [
        ("/studies", "ModalitiesInStudy", "CT"),
        ("/studies", "SOPClassesInStudy", "1.2.3"),
        ("/studies", "StudyDate", "20200101-20200102"),
        ("/studies", "StudyTime", "1200"),
        ("/studies", "PatientSex", "F"),
        ("/series", "Modality", "MR"),
        ("/instances", "InstanceNumber", "7"),
    ],
)
def test_a_hundred_values_of_one_key_are_still_answered(
    http: httpx.Client, path: str, key: str, value: str
) -> None:
    response = http.get(path, params={key: "\\".join([value] * 100)})
    assert response.status_code == 200, response.text
