"""Routing rules on a live server: a study, once stable, goes to every destination a
matching rule names (C-STORE to a registered AE, or STOW-RS) and nowhere else.

The destinations are DCMTK storescp processes writing what arrives bit for bit, and a
second rix server as the DICOMweb receiver. They belong to no trust, so no identity is
rewritten: what arrives is exactly what the modality sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.peers import dcmtk, postgres
from tests.peers.objects import instance_key, stored
from tests.peers.server import RixServer
from tests.region.region import received_by
from tests.routing import index
from tests.routing.studies import Study, store, write_study
from tests.web.conftest import own_server

TOKEN_ENV = "RIX_TEST_RECEIVER_TOKEN"  # the bearer token of the STOW-RS receiver
CALLERS = {"EMH_CT1": "EMH", "WARD_US": "", "OTHER_CT": ""}  # calling AE → its trust
DESTINATIONS = ("DEST_A", "DEST_B")

RULES = """
[[rule]]
name = "EMH CT to A"
[rule.when]
trust = "EMH"
modality = "CT"
[rule.send]
ae = "DEST_A"

[[rule]]
name = "Ward ultrasound to B"
[rule.when]
calling_ae = ["WARD_US"]
[rule.send]
ae = "DEST_B"

[[rule]]
name = "Stroke to B"
priority = "emergency"
[rule.when]
description = "*stroke*"
[rule.send]
ae = "dest_b"
"""

# name: (calling AE, modality, study description, where the rules send it)
ROUTES = {
    "emh-ct": ("EMH_CT1", "CT", "CT chest", {"DEST_A"}),
    "emh-stroke": ("EMH_CT1", "CT", "CT head STROKE protocol", {"DEST_A", "DEST_B"}),
    "ward-us": ("WARD_US", "US", "Abdomen", {"DEST_B"}),
    "ward-stroke": ("WARD_US", "US", "Stroke: carotid doppler", {"DEST_B"}),  # two rules
    "emh-mr": ("EMH_CT1", "MR", "MR knee", set()),  # EMH's, but not CT
    "other-ct": ("OTHER_CT", "CT", "CT chest", set()),  # CT, but of no trust
}


@dataclass
class Router:
    server: RixServer
    admin: httpx.Client  # the region administrator's
    receiver: RixServer  # a DICOMweb server of its own
    destinations: dict[str, dcmtk.StoreSCP]
    media: Path

    def load(self, rules: str) -> None:
        answer = self.admin.put("/api/rules", content=rules.encode())
        assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def router(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    folder = tmp_path_factory.mktemp("routing")
    with ExitStack() as stack:
        receiver = stack.enter_context(own_server(folder / "receiver", backend))
        url = postgres.create_database(migrated=True) if backend == "postgresql" else ""
        if url:
            stack.callback(postgres.drop_database, url)
        server = RixServer(
            data=folder / "data",
            database_url=url,
            extra_env={"RIX_STABLE_SECONDS": "1", TOKEN_ENV: receiver.token},
        ).start()
        stack.callback(server.stop, wait=False)
        server.add_user("admin", "region-admin")
        token = server.create_token("admin")
        admin = stack.enter_context(
            httpx.Client(
                base_url=f"http://127.0.0.1:{server.http_port}",
                timeout=30,
                headers={"Authorization": f"Bearer {token}"},
            )
        )
        answer = admin.post("/api/trusts", json={"code": "EMH", "name": "East Midlands"})
        assert answer.status_code == 201, answer.text
        for title, trust in CALLERS.items():
            body = {"title": title, "host": dcmtk.HOST, "port": 11112, "trust": trust}
            assert admin.post("/api/aes", json=body).status_code == 201
        destinations = {}
        for title in DESTINATIONS:
            scp = stack.enter_context(dcmtk.storescp(folder / title, ae_title=title))
            body = {"title": title, "host": dcmtk.HOST, "port": scp.port}
            assert admin.post("/api/aes", json=body).status_code == 201
            destinations[title] = scp
        yield Router(server, admin, receiver, destinations, folder / "media")


def test_each_study_goes_where_the_rules_say_and_nowhere_else(router: Router) -> None:
    router.load(RULES)
    for scp in router.destinations.values():
        scp.clear()
    studies: dict[str, Study] = {}
    for name, (calling_ae, modality, description, _to) in ROUTES.items():
        studies[name] = write_study(router.media, modality=modality, description=description)
        store(router.server.dicom_port, calling_ae, studies[name])

    jobs = index.settled(router.server, {s.study_uid for s in studies.values()})

    for title, scp in router.destinations.items():
        expected: dict[str, bytes] = {}
        for name, (*_, to) in ROUTES.items():
            if title in to:
                expected.update(studies[name].datasets())
        assert received_by(scp) == expected, title
        assert index.delivered(router.server, f"ae:{title}") == sorted(expected)
    sends = sorted(r.label for r in jobs if r.kind == "send")
    assert all(r.state == "done" for r in jobs), [(r.label, r.last_error) for r in jobs]
    assert sends == sorted(
        f"send study {studies[name].study_uid} to ae:{title}"
        for name, (*_, to) in ROUTES.items()
        for title in to
    )


def test_each_delivery_is_in_the_audit_trail_as_a_transfer(router: Router) -> None:
    router.load(RULES)
    study = write_study(router.media, description="CT head stroke", count=2)
    store(router.server.dicom_port, "EMH_CT1", study)
    index.settled(router.server, {study.study_uid})

    events = router.admin.get("/api/audit", params={"study": study.study_uid}).json()
    transfers = sorted(
        (e["detail"]["destination"], e["detail"]["instances"], e["outcome"])
        for e in events
        if e["kind"] == "transfer"
    )
    assert transfers == [("ae:DEST_A", 2, "success"), ("ae:DEST_B", 2, "success")]


def test_a_stow_rule_delivers_to_a_dicomweb_server_with_the_bearer_token(router: Router) -> None:
    origin = f"http://127.0.0.1:{router.receiver.http_port}"
    router.load(
        '[[rule]]\nname = "Gateway to the receiver"\n[rule.when]\ncalling_ae = "GATEWAY"\n'
        f'[rule.send]\nstow = "{origin}/dicomweb"\ntoken_env = "{TOKEN_ENV}"\n'
    )
    study = write_study(router.media, description="for the cloud", count=3)
    store(router.server.dicom_port, "GATEWAY", study)
    jobs = index.settled(router.server, {study.study_uid})

    assert [(r.state, r.last_error) for r in jobs if r.kind == "send"][-1] == ("done", "")
    sent = study.datasets()
    assert index.delivered(router.server, f"stow:{origin}/dicomweb") == sorted(sent)
    with httpx.Client(base_url=f"{origin}/dicomweb", headers=router.receiver.auth) as qido:
        found = qido.get(f"/studies/{study.study_uid}/instances")
        assert found.status_code == 200, found.text
    series = {i["0020000E"]["Value"][0] for i in found.json()}
    assert sorted(i["00080018"]["Value"][0] for i in found.json()) == sorted(sent)
    [series_uid] = series
    for sop_uid, dataset in sent.items():
        key = instance_key(study.study_uid, series_uid, sop_uid)
        assert stored(router.receiver.data, key)[1] == dataset


def test_rules_change_only_whole_and_only_by_a_region_administrator(router: Router) -> None:
    router.load(RULES)
    in_force = router.admin.get("/api/rules").text
    broken = RULES + '\n[[rule]]\nname = "Stroke to B"\n[rule.send]\nae = "DEST_A"\n'

    refused = router.admin.put("/api/rules", content=broken.encode())
    assert (refused.status_code, refused.json()["error"]) == (409, "rule names must be unique")
    body = {"username": "emh.clinician", "roles": ["clinician"], "trust": "EMH"}
    assert router.admin.post("/api/users", json=body).status_code == 201
    token = router.admin.post("/api/users/emh.clinician/tokens", json={}).json()["token"]
    clinician = {"Authorization": f"Bearer {token}"}
    forbidden = router.admin.put("/api/rules", content=b"", headers=clinician)
    assert forbidden.status_code == 403

    assert router.admin.get("/api/rules").text == in_force


def test_rules_test_says_which_rules_a_stored_study_matches(router: Router) -> None:
    router.load(RULES)
    study = write_study(router.media, description="Stroke CT", count=1)
    store(router.server.dicom_port, "EMH_CT1", study)
    index.settled(router.server, {study.study_uid})

    said = router.server.rix("rules", "test", study.study_uid).stdout

    assert "EMH CT to A: matches -> ae:DEST_A" in said
    assert "Ward ultrasound to B: no match -> ae:DEST_B" in said
    assert "Stroke to B: matches -> ae:DEST_B" in said
