"""Large retrieves stream, caches revalidate, JSON travels compressed.

Rule 9 of STYLE.md: a study is never held in memory to be sent; the server's peak
resident memory while sending one is measured from /proc (proc(5): VmHWM, reset
through clear_refs). ETag / If-None-Match (RFC 9110 13.1.2) and Cache-Control are
checked on every kind of WADO-RS answer, gzip on every kind of JSON answer.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import numpy as np
import pytest
from pydicom.dataset import Dataset

from tests.peers import images
from tests.peers.dicomweb import part10, reset_peak_rss, rss_kib, stow
from tests.peers.server import RixServer
from tests.web.conftest import StoredStudy

LARGE_INSTANCES, LARGE_SIDE = 60, 512  # 60 x 512 x 512 x 16 bits: 30 MiB of pixels
ANY_SYNTAX = 'multipart/related; type="application/dicom"; transfer-syntax=*'


@dataclass(frozen=True, slots=True, kw_only=True)
class LargeStudy:
    study_uid: str
    bytes_stored: int  # the Part 10 files sent, summed


def large_slice(study_uid: str, series_uid: str, number: int) -> Dataset:
    ds = images.ct(
        patient_id="WEB-LARGE-1",
        name="Large^Study",
        study_uid=study_uid,
        series_uid=series_uid,
        number=number,
        size=LARGE_SIDE,
    )
    noise = np.random.default_rng(number).integers(0, 4096, LARGE_SIDE * LARGE_SIDE)
    ds.PixelData = noise.astype(np.uint16).tobytes()  # incompressible, as a CT's noise is
    return ds


@pytest.fixture(scope="session")
def large_study(http: httpx.Client) -> LargeStudy:
    study_uid, series_uid = images.fresh_uids()
    total = 0
    for first in range(1, LARGE_INSTANCES + 1, 10):
        files = [part10(large_slice(study_uid, series_uid, n)) for n in range(first, first + 10)]
        total += sum(map(len, files))
        assert stow(http, files).status_code == 200
    # the metadata builder reads each new instance once; let it finish before measuring
    assert http.get(f"/studies/{study_uid}/metadata").status_code == 200
    return LargeStudy(study_uid=study_uid, bytes_stored=total)


def received_while_streaming(http: httpx.Client, path: str, accept: str) -> int:
    received = 0
    with http.stream("GET", path, headers={"Accept": accept}) as response:
        assert response.status_code == 200
        for chunk in response.iter_raw(1 << 16):
            received += len(chunk)
    return received


def test_retrieving_a_large_study_streams_it(
    http: httpx.Client, rix_server: RixServer, large_study: LargeStudy
) -> None:
    assert rix_server.process is not None
    pid = rix_server.process.pid
    # one retrieve first, so lazily imported code and allocator pools are in place
    received_while_streaming(http, f"/studies/{large_study.study_uid}", ANY_SYNTAX)
    before = rss_kib(pid)
    if not reset_peak_rss(pid):
        pytest.skip("this kernel refuses to reset VmHWM")
    received = received_while_streaming(http, f"/studies/{large_study.study_uid}", ANY_SYNTAX)
    growth = (rss_kib(pid, "VmHWM") - before) * 1024
    assert received > large_study.bytes_stored  # every instance, plus multipart framing
    # a stream holds a few MiB of buffers whatever the study's size; a buffered answer
    # would grow by the whole study
    allowed = max(large_study.bytes_stored / 4, 16 << 20)
    assert growth < allowed < large_study.bytes_stored, (growth, large_study.bytes_stored)


@dataclass(frozen=True, slots=True, kw_only=True)
class Cached:
    path: str
    accept: str


def cached_resources(study: StoredStudy) -> dict[str, Cached]:
    ct, mf = study.ct[0], study.native
    return {
        "study": Cached(path=f"/studies/{study.study_uid}", accept=ANY_SYNTAX),
        "series": Cached(
            path=f"/studies/{study.study_uid}/series/{study.ct_series}", accept=ANY_SYNTAX
        ),
        "instance": Cached(path=study.path(ct), accept="application/dicom; transfer-syntax=*"),
        "study-metadata": Cached(
            path=f"/studies/{study.study_uid}/metadata", accept="application/dicom+json"
        ),
        "instance-metadata": Cached(
            path=study.path(ct) + "/metadata", accept="application/dicom+json"
        ),
        "frames": Cached(
            path=study.path(mf) + "/frames/1,2",
            accept='multipart/related; type="application/octet-stream"',
        ),
    }


RESOURCES = ["study", "series", "instance", "study-metadata", "instance-metadata", "frames"]


@pytest.mark.parametrize("name", RESOURCES)
def test_if_none_match_with_the_etag_answers_304(
    http: httpx.Client, study: StoredStudy, name: str
) -> None:
    resource = cached_resources(study)[name]
    first = http.get(resource.path, headers={"Accept": resource.accept})
    assert first.status_code == 200
    tag = first.headers["etag"]
    again = http.get(resource.path, headers={"Accept": resource.accept, "If-None-Match": tag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == tag
    other = http.get(resource.path, headers={"Accept": resource.accept, "If-None-Match": '"x"'})
    assert other.status_code == 200


@pytest.mark.parametrize("name", RESOURCES)
def test_cache_control_is_sent(http: httpx.Client, study: StoredStudy, name: str) -> None:
    resource = cached_resources(study)[name]
    response = http.get(resource.path, headers={"Accept": resource.accept})
    assert response.headers.get("cache-control")


@pytest.mark.parametrize("suffix", ["/rendered", "/thumbnail", "/frames/1/rendered"])
def test_cache_control_is_sent_with_pictures(
    http: httpx.Client, study: StoredStudy, suffix: str
) -> None:
    response = http.get(study.path(study.ct[0]) + suffix)
    assert response.status_code == 200
    assert "max-age" in response.headers.get("cache-control", "")


def test_a_studys_etag_changes_when_it_gains_an_instance(http: httpx.Client) -> None:
    study_uid, series_uid = images.fresh_uids()

    def slice_(n: int) -> bytes:
        return part10(
            images.ct(
                patient_id="WEB-ETAG-1",
                name="Etag^Study",
                study_uid=study_uid,
                series_uid=series_uid,
                number=n,
            )
        )

    assert stow(http, [slice_(1)]).status_code == 200
    path = f"/studies/{study_uid}"
    tag = http.get(path, headers={"Accept": ANY_SYNTAX}).headers["etag"]
    meta_tag = http.get(path + "/metadata").headers["etag"]
    assert stow(http, [slice_(2)]).status_code == 200
    assert http.get(path, headers={"Accept": ANY_SYNTAX, "If-None-Match": tag}).status_code == 200
    assert http.get(path + "/metadata", headers={"If-None-Match": meta_tag}).status_code == 200


@pytest.fixture
def json_answers(study: StoredStudy) -> Iterator[dict[str, str]]:
    yield {
        "study-metadata": f"/studies/{study.study_uid}/metadata",
        "series-metadata": f"/studies/{study.study_uid}/series/{study.ct_series}/metadata",
        "studies": f"/studies?PatientID={study.patient_id}&includefield=all",
        "series": f"/studies/{study.study_uid}/series?includefield=all",
        "instances": f"/studies/{study.study_uid}/instances?includefield=all",
    }


JSON_ANSWERS = ["study-metadata", "series-metadata", "studies", "series", "instances"]


@pytest.mark.parametrize("name", JSON_ANSWERS)
def test_json_is_gzipped_when_the_client_accepts_gzip(
    origin: str, json_answers: dict[str, str], name: str, rix_server: RixServer
) -> None:
    url = origin + "/dicomweb" + json_answers[name]
    with httpx.Client(timeout=30, headers=rix_server.auth) as client:
        zipped = client.get(url, headers={"Accept-Encoding": "gzip"})
        plain = client.get(url, headers={"Accept-Encoding": "identity"})
    assert zipped.headers.get("content-encoding") == "gzip"
    assert "content-encoding" not in plain.headers
    assert "accept-encoding" in zipped.headers.get("vary", "").lower()
    assert json.loads(zipped.content) == json.loads(plain.content)  # httpx un-gzips
    assert len(gzip.compress(plain.content)) < len(plain.content)


def test_gzip_refused_with_q_zero_is_not_sent(
    origin: str, study: StoredStudy, rix_server: RixServer
) -> None:
    url = f"{origin}/dicomweb/studies/{study.study_uid}/metadata"
    headers = {"Accept-Encoding": "gzip;q=0, identity", **rix_server.auth}
    response = httpx.get(url, headers=headers, timeout=30)
    assert response.status_code == 200
    assert "content-encoding" not in response.headers


@pytest.mark.parametrize("name", ["study", "series", "instance", "frames"])
def test_answers_chosen_by_accept_say_vary_accept(
    http: httpx.Client, study: StoredStudy, name: str
) -> None:
    """The same URL answers single or multipart, stored or decoded: without Vary an
    immutable cached answer to one Accept would be reused for another (RFC 9111 4.1)."""
    resource = cached_resources(study)[name]
    response = http.get(resource.path, headers={"Accept": resource.accept})
    assert "accept" in [v.strip().lower() for v in response.headers["vary"].split(",")]


@pytest.mark.parametrize("suffix", ["/rendered", "/thumbnail"])
def test_pictures_chosen_by_accept_say_vary_accept(
    http: httpx.Client, study: StoredStudy, suffix: str
) -> None:
    response = http.get(study.path(study.ct[0]) + suffix, headers={"Accept": "image/png"})
    assert response.headers["content-type"] == "image/png"
    assert response.headers.get("vary", "").lower() == "accept"


@pytest.mark.parametrize("level", ["study", "series"])
def test_study_and_series_thumbnails_are_revalidated(
    http: httpx.Client, study: StoredStudy, level: str
) -> None:
    """Their middle instance moves as instances arrive: never cached as immutable."""
    path = f"/studies/{study.study_uid}"
    if level == "series":
        path += f"/series/{study.ct_series}"
    response = http.get(path + "/thumbnail")
    assert response.status_code == 200
    cache = response.headers["cache-control"]
    assert "immutable" not in cache and "no-cache" in cache
