"""Managing jobs over ``/api/jobs`` and ``rix jobs``: administrators only, a trust
administrator their own trust's jobs, every change audited (``rix.routing.manage``).

The server runs no worker threads (``RIX_WORKERS=0``), so a job stays as the test left it.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from rix.archive import Archive
from rix.cli.main import app
from rix.index.database import begin_write
from rix.jobs import queue
from rix.jobs.queue import Job
from rix.region import trusts
from tests.peers import postgres
from tests.peers.archive import opened
from tests.peers.server import RixServer

LATER = 3600.0  # run_at this far ahead: never due during the test
# priorities above every job queued before, so the job just queued is the one claimed
_FIRST = itertools.count(10_000)
WORKER = "elsewhere:1/0"


@dataclass(frozen=True, slots=True, kw_only=True)
class Region:
    server: RixServer
    archive: Archive  # the server's, opened in the test process
    region_admin: httpx.Client
    trust_admin: httpx.Client  # of trust TEST
    clinician: httpx.Client  # of trust TEST
    trust_pks: dict[str, int]

    def add(self, trust: str | None, **kw: Any) -> int:
        """A job of ``trust`` (or of none), not due unless ``run_at`` says so."""
        kw.setdefault("run_at", time.time() + LATER)
        trust_pk = None if trust is None else self.trust_pks[trust]
        with begin_write(self.archive.engine) as conn:
            return queue.enqueue(conn, kw.pop("kind", "send"), {}, trust_pk=trust_pk, **kw)

    def claimed(self, trust: str | None) -> Job:
        """A new job of ``trust``, claimed by a worker of another host."""
        pk = self.add(trust, priority=next(_FIRST), run_at=time.time())
        job = queue.claim(self.archive.engine, WORKER)
        assert job is not None and job.pk == pk
        return job

    def dead(self, trust: str | None) -> int:
        job = self.claimed(trust)
        with begin_write(self.archive.engine) as conn:
            queue.fail(conn, job, WORKER, "Permanent: gone", 24.0, permanent=True)
        return job.pk

    def audited(self, user: str) -> list[dict[str, Any]]:
        answer = self.region_admin.get("/api/audit", params={"user": user})
        assert answer.status_code == 200, answer.text
        events: list[dict[str, Any]] = answer.json()
        return events


def client(stack: ExitStack, server: RixServer, token: str) -> httpx.Client:
    return stack.enter_context(
        httpx.Client(
            base_url=f"http://127.0.0.1:{server.http_port}",
            timeout=30,
            headers={"Authorization": f"Bearer {token}"},
        )
    )


def add_user(admin: httpx.Client, username: str, role: str) -> str:
    """A user of trust TEST, and an API token of theirs."""
    body = {"username": username, "roles": [role], "password": f"{username}-pw", "trust": "TEST"}
    answer = admin.post("/api/users", json=body)
    assert answer.status_code == 201, answer.text
    token = admin.post(f"/api/users/{username}/tokens", json={"label": "tests"})
    assert token.status_code == 201, token.text
    return str(token.json()["token"])


@pytest.fixture(scope="module")
def region(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Region]:
    url = postgres.create_database(migrated=True) if backend == "postgresql" else ""
    folder = tmp_path_factory.mktemp("manage")
    server = RixServer(data=folder / "data", database_url=url, extra_env={"RIX_WORKERS": "0"})
    try:
        with ExitStack() as stack:
            server.start()
            server.add_user("radmin", "region-admin")
            admin = client(stack, server, server.create_token("radmin"))
            for code in ("TEST", "OTHER"):
                body = {"code": code, "name": f"{code} NHS Trust", "issuer": f"{code}-MRN"}
                answer = admin.post("/api/trusts", json=body)
                assert answer.status_code == 201, answer.text
            archive = stack.enter_context(opened(server.data, url, migrate=False))
            with archive.engine.connect() as conn:
                pks = {code: trusts.get_trust(conn, code).pk for code in ("TEST", "OTHER")}
            yield Region(
                server=server,
                archive=archive,
                region_admin=admin,
                trust_admin=client(stack, server, add_user(admin, "tadmin", "trust-admin")),
                clinician=client(stack, server, add_user(admin, "clin", "clinician")),
                trust_pks=pks,
            )
    finally:
        server.stop(wait=False)
        if url:
            postgres.drop_database(url)


def listed(http: httpx.Client, **params: Any) -> set[int]:
    answer = http.get("/api/jobs", params=params)
    assert answer.status_code == 200, answer.text
    return {job["id"] for job in answer.json()}


def test_jobs_api_refuses_a_clinician(region: Region) -> None:
    pk = region.add("TEST")
    assert region.clinician.get("/api/jobs").status_code == 403
    assert region.clinician.get(f"/api/jobs/{pk}").status_code == 403
    assert region.clinician.post(f"/api/jobs/{pk}/cancel").status_code == 403
    assert region.region_admin.get(f"/api/jobs/{pk}").json()["state"] == "pending"


def test_region_admin_sees_every_trusts_jobs(region: Region) -> None:
    ours, theirs, nobodys = region.add("TEST"), region.add("OTHER"), region.add(None)
    assert {ours, theirs, nobodys} <= listed(region.region_admin, limit=1000)
    for pk in (ours, theirs, nobodys):
        assert region.region_admin.get(f"/api/jobs/{pk}").status_code == 200


def test_trust_admin_sees_only_their_trusts_jobs(region: Region) -> None:
    ours, theirs, nobodys = region.add("TEST"), region.add("OTHER"), region.add(None)
    seen = listed(region.trust_admin, limit=1000)
    assert ours in seen
    assert not {theirs, nobodys} & seen
    assert region.trust_admin.get(f"/api/jobs/{ours}").status_code == 200
    assert region.trust_admin.get(f"/api/jobs/{theirs}").status_code == 403


def test_trust_admin_cannot_cancel_or_retry_another_trusts_job(region: Region) -> None:
    theirs = region.dead("OTHER")
    assert region.trust_admin.post(f"/api/jobs/{theirs}/retry").status_code == 403
    assert region.trust_admin.post(f"/api/jobs/{theirs}/cancel").status_code == 403
    assert region.region_admin.get(f"/api/jobs/{theirs}").json()["state"] == "dead"


def test_retry_makes_a_dead_job_due_and_is_audited(region: Region) -> None:
    pk = region.dead("OTHER")
    answer = region.region_admin.post(f"/api/jobs/{pk}/retry")
    assert answer.status_code == 200, answer.text
    retried = answer.json()
    assert (retried["id"], retried["state"], retried["attempts"]) == (pk, "pending", 0)
    assert retried["run_at"] <= time.time()
    events = [e for e in region.audited("radmin") if e["detail"].get("job") == pk]
    assert [(e["kind"], e["outcome"], e["detail"]["action"]) for e in events] == [
        ("admin", "success", "job retry")
    ]


def test_trust_admin_cancels_a_transfer_and_its_deliveries_audited(region: Region) -> None:
    transfer = region.add("TEST", kind="transfer")
    deliveries = {region.add("TEST", parent_pk=transfer) for _ in range(2)}
    answer = region.trust_admin.post(f"/api/jobs/{transfer}/cancel")
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "cancelled"
    children = region.trust_admin.get("/api/jobs", params={"parent": transfer}).json()
    assert {(c["id"], c["state"]) for c in children} == {(d, "cancelled") for d in deliveries}
    detail = region.trust_admin.get(f"/api/jobs/{transfer}").json()
    assert detail["deliveries"] == {"done": 0, "of": 2, "instances": 0}
    events = [e for e in region.audited("tadmin") if e["detail"].get("job") == transfer]
    assert [(e["trust"], e["detail"]["action"]) for e in events] == [("TEST", "job cancel")]


def test_retry_of_a_finished_job_is_a_conflict(region: Region) -> None:
    job = region.claimed("TEST")
    assert queue.finish(region.archive.engine, job, WORKER)
    assert region.region_admin.post(f"/api/jobs/{job.pk}/retry").status_code == 409
    assert region.region_admin.get("/api/jobs/999999999").status_code == 404


def test_trust_admin_listing_is_not_crowded_out_by_other_trusts_jobs(region: Region) -> None:
    ours = region.add("TEST")
    for _ in range(3):
        region.add("OTHER")
    assert ours in listed(region.trust_admin, limit=2)


def test_jobs_list_prints_the_counts_by_state(region: Region) -> None:
    region.dead("TEST")
    with region.archive.engine.connect() as conn:
        counts = queue.counts(conn)
    assert counts.get("dead") and counts.get("pending")
    printed = region.server.rix("jobs", "list").stdout.strip().splitlines()[-1]
    assert sorted(printed.split(", ")) == sorted(f"{n} {state}" for state, n in counts.items())


def rix(region: Region, *args: str) -> Result:
    """``rix ARGS`` in this process, on the server's data folder and database, its output
    piped (not a terminal), as a script reads it."""
    where = ["--data", str(region.server.data)]
    if region.server.database_url:
        where += ["--database-url", region.server.database_url]
    result = CliRunner().invoke(app, [*args, *where], env={"COLUMNS": None})
    assert result.exit_code == 0, result.output
    return result


def test_jobs_list_json_is_one_document_with_every_value_whole(region: Region) -> None:
    label = "send 1.2.826.0.1.3680043.8.498.10203040506070809101112131415161718 to REMOTE_PACS"
    pk = region.add("TEST", label=label, priority=next(_FIRST))

    listed = json.loads(rix(region, "jobs", "list", "--json").stdout)

    job = next(j for j in listed["jobs"] if j["id"] == pk)
    assert (job["label"], job["state"], job["kind"]) == (label, "pending", "send")
    with region.archive.engine.connect() as conn:
        assert listed["counts"] == queue.counts(conn)


def test_jobs_list_piped_cuts_no_value(region: Region) -> None:
    """Piped, rich would size the table to 80 columns and cut the label to ``send 1.2.82…``."""
    label = "send 1.2.826.0.1.3680043.8.498.99887766554433221100998877665544332211 to FAR_AWAY_PACS"
    region.add("TEST", label=label, priority=next(_FIRST))

    printed = rix(region, "jobs", "list").stdout

    assert label in printed
    assert "…" not in printed
