"""Requests racing the background metadata builder (rix.metadata) all get their answer.

Right after a STOW-RS, the builder thread and every metadata request build the same new
instances' DICOM JSON; whichever writes second must not turn that into an error.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.peers import images
from tests.peers.dicomweb import part10, stow


def test_concurrent_metadata_requests_for_a_study_just_stored_all_succeed(
    http: httpx.Client, origin: str
) -> None:
    for round_ in range(3):
        study_uid, series_uid = images.fresh_uids()
        files = [
            part10(
                images.ct(
                    patient_id=f"WEB-RACE-{round_}",
                    name="Race^Condition",
                    study_uid=study_uid,
                    series_uid=series_uid,
                    number=n,
                )
            )
            for n in range(1, 41)
        ]
        assert stow(http, files).status_code == 200
        url = f"{origin}/dicomweb/studies/{study_uid}/metadata"

        def fetch(_: int, url: str = url) -> tuple[int, int]:
            response = httpx.get(url, timeout=60, headers=http.headers)
            return response.status_code, len(response.json()) if response.is_success else 0

        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(fetch, range(6)))
        assert answers == [(200, 40)] * 6
