"""``run.py --only access``: what the access filter costs C-FIND and QIDO-RS.

Every index read takes ``scope=access.scope(principal)`` (DESIGN.md, "Access"); the
target is that a scoped query stays within 1.2x of the same query unscoped. Measured on
a regional index built for the purpose on SQLite (a file, as ``rix serve`` runs it) and
on a fresh PostgreSQL database (``RIX_BENCH_PG``, default the machine's server on
127.0.0.1:5432):

- six trusts of different sizes, three of them sharing with each other and two more
  with each other; 1,600 people with 2,000 hospital records (a quarter of the people
  have records at two trusts, linked by NHS number), 4,000 studies, 8,000 header-only
  instances (no pixel data: queries never read objects);
- an encounter at their own trust for every record, referrals to Northgate for 30%
  of its partners' patients, a few expired ones, and one break-glass declaration;
- principals: Northgate's AE (its own studies, and its partners' where a relationship
  exists; registered at 127.0.0.1) and a Northgate clinician who is also a radiologist
  (the same, plus break-glass and the reporting worklist's claims and reports: the widest
  scope; signed in with an API token); unscoped is rix itself.

PostgreSQL is ANALYZEd after the load, as autovacuum would be within a minute; SQLite is
measured as rix runs it, without statistics (rix never runs ANALYZE on it).

Twice, each query shape unscoped, as the AE and as the user in rotating order; the
figure is the median:

- in process, through ``rix.index.queries.find`` as both front ends call it, the scope
  built per query, every row read: the cost of the SQL alone (the diagnostic; the plans
  of shapes over target go to ``work/logs/access-plans.txt``);
- end to end, what a PACS or a viewer sees: rix's DIMSE listener and HTTP server run in
  this process on loopback (``access_e2e.py``); C-FIND shapes as C-FIND (Study Root,
  Patient Root for patients) as the AE and as the user it names (User Identity
  Negotiation, the API token as passcode); QIDO-RS shapes as QIDO-RS with the user's
  bearer token (HTTP has no AE principal, so no AE column); associations and the
  keep-alive HTTP connection stay open across a shape's rounds. A sample is one whole
  answer: every C-FIND response, or the QIDO-RS body to its last byte. Unscoped is the
  same request from the same principal with ``access.scope`` switched off in this
  process (bench code only).

Filtered answers hold fewer rows (a trust sees its own share and what it may share), so
the row counts are shown with the times; end to end they must equal those in process.
"""

from __future__ import annotations

import dataclasses
import os
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pynetdicom
import uvicorn
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, event, func, select
from sqlalchemy import __version__ as sqlalchemy_version

import access_e2e
import dataset
import facts
import report
import synthetic
from network import LOOPBACK, free_port
from rix import access
from rix.access import EVERYTHING, SYSTEM, Principal, grounds
from rix.admin import region as admin
from rix.archive import Archive
from rix.auth.users import Role
from rix.config import Settings
from rix.dataset import nhs
from rix.index import queries, write
from rix.index.attributes import BY_KEYWORD, Level
from rix.index.database import begin_write
from rix.index.records import InstanceRecord
from rix.index.schema import (
    break_glass,
    instances,
    patients,
    persons,
    relationships,
    series,
    studies,
)
from rix.index.workflow_tables import report_claims
from rix.region import aes, mpi
from rix.region.trusts import Trust
from rix.serve import open_archive

TARGET = 1.2  # scoped median / unscoped median, every shape and principal
PG_ADMIN_URL = os.environ.get("RIX_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SEED = 20250301
TRUSTS = (  # code, name, share of the region's records
    ("NORTHGATE", "Northgate General", 0.25),
    ("RIVERSIDE", "Riverside Royal Infirmary", 0.20),
    ("HILLCREST", "Hillcrest Community Hospital", 0.18),
    ("MOORSIDE", "Moorside University Hospitals", 0.17),
    ("COASTAL", "Coastal District General", 0.12),
    ("VALLEY", "Valley Cottage Hospital", 0.08),
)  # fmt: skip
AGREEMENTS = (
    ("NORTHGATE", "RIVERSIDE"), ("NORTHGATE", "HILLCREST"), ("RIVERSIDE", "HILLCREST"),
    ("MOORSIDE", "COASTAL"),
)  # fmt: skip
HOME = "NORTHGATE"  # the measured principals' trust
AE_TITLE = f"{HOME}_PACS"  # registered to HOME at 127.0.0.1: the measured AE
USERNAME = "bench-clinician"  # a HOME clinician: the measured user
PARTNERS = {b if a == HOME else a for a, b in AGREEMENTS if HOME in (a, b)}
PERSONS = 1600
SHARED = 400  # people with a record at a second trust: 2,000 records
STUDIES = 4000
NO_NHS_NUMBER = 0.05  # records that arrive without one stay unlinked
REFERRED = 0.3  # of the partners' patients, referred to HOME
EXPIRED = 20  # referrals to HOME that have lapsed
BATCH = 500  # instances per index transaction while building

WARMUP = 2
MIN_ROUNDS = 15
MAX_ROUNDS = 101
BUDGET = 4.0  # seconds per shape and backend, all three variants; MIN_ROUNDS always
# End to end a 4,000-study C-FIND takes ~7 s (~1.5 ms a response): a few rounds do for
# the large answers (far below target), and the budget gives 1-row ones 40-80. No warm-up:
# the in-process part has warmed the engine and the database, and the one slow first
# request on a new connection (seen only over HTTP) is one sample of the median's 30+.
E2E_WARMUP = 0
E2E_MIN_ROUNDS = 3
E2E_BUDGET = 3.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Shape:
    """One query as a front end sends it; ``{name}`` values come from ``Probes``."""

    key: str
    label: str
    level: Level
    keys: Mapping[str, str]
    limit: int | None = None  # QIDO-RS always pages (default and cap 1,000)
    offset: int = 0

    @property
    def over_http(self) -> bool:
        """A QIDO-RS search (it always has a limit), else a C-FIND."""
        return self.limit is not None


SHAPES = (
    Shape(key="find_name", label="C-FIND studies PatientName=SMI*", level=Level.STUDY,
          keys={"PatientName": "SMI*"}),
    Shape(key="find_patient_id", label="C-FIND studies PatientID", level=Level.STUDY,
          keys={"PatientID": "{patient_id}"}),
    Shape(key="find_date", label="C-FIND studies StudyDate 2020-2021", level=Level.STUDY,
          keys={"StudyDate": "20200101-20211231"}),
    Shape(key="find_modality", label="C-FIND studies ModalitiesInStudy=MR", level=Level.STUDY,
          keys={"ModalitiesInStudy": "MR"}),
    Shape(key="find_accession", label="C-FIND studies AccessionNumber", level=Level.STUDY,
          keys={"AccessionNumber": "{accession}"}),
    Shape(key="find_study_uid", label="C-FIND studies StudyInstanceUID", level=Level.STUDY,
          keys={"StudyInstanceUID": "{study_uid}"}),
    Shape(key="find_all", label="C-FIND all studies", level=Level.STUDY, keys={}),
    Shape(key="find_patients", label="C-FIND patients PatientName=SMI*", level=Level.PATIENT,
          keys={"PatientName": "SMI*"}),
    Shape(key="find_series_uid", label="C-FIND series of one study", level=Level.SERIES,
          keys={"StudyInstanceUID": "{study_uid}"}),
    Shape(key="find_series_mr", label="C-FIND series Modality=MR", level=Level.SERIES,
          keys={"Modality": "MR"}),
    Shape(key="qido_name", label="QIDO-RS studies PatientName=SMI*", level=Level.STUDY,
          keys={"PatientName": "SMI*"}, limit=1000),
    Shape(key="qido_date", label="QIDO-RS studies StudyDate, limit=100", level=Level.STUDY,
          keys={"StudyDate": "20200101-20211231"}, limit=100),
    Shape(key="qido_page", label="QIDO-RS studies, limit=100", level=Level.STUDY, keys={},
          limit=100),
    Shape(key="qido_page_deep", label="QIDO-RS studies, limit=100 offset=500",
          level=Level.STUDY, keys={}, limit=100, offset=500),
    Shape(key="qido_series", label="QIDO-RS series Modality=CT, limit=100", level=Level.SERIES,
          keys={"Modality": "CT"}, limit=100),
)  # fmt: skip
VARIANTS = ("unscoped", "trust AE", "user")


# --- the region --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Person:
    demographics: synthetic.Patient
    nhs_number: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """One trust's hospital record of a person."""

    person: Person
    trust: Trust
    patient_id: str
    has_nhs_number: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Probes:
    """Values the exact-match shapes ask for: a partner trust's patient referred to HOME,
    so every principal sees the answer and the filter is evaluated to its last term."""

    patient_id: str
    accession: str
    study_uid: str
    break_glass_patient: str  # a partner's patient only the user sees, by break-glass


@dataclass(frozen=True, slots=True, kw_only=True)
class Region:
    archive: Archive
    probes: Probes
    ae: Principal
    user: Principal
    token: str  # the user's API token: QIDO-RS bearer, C-FIND user identity passcode
    counts: dict[str, int]


def nhs_number(rng: random.Random, used: set[str]) -> str:
    """A valid NHS number in the 999 range the NHS keeps for testing (modulus 11)."""
    while True:
        body = f"999{rng.randrange(10**6):06d}"
        total = sum(int(d) * w for d, w in zip(body, range(10, 1, -1), strict=True))
        number = body + str((11 - total % 11) % 11)  # a check of 10 is 11 digits: invalid
        if nhs.is_valid(number) and number not in used:
            used.add(number)
            return number


def _records(rng: random.Random, trusts: Sequence[Trust]) -> list[Record]:
    weights = [share for _, _, share in TRUSTS]
    used: set[str] = set()
    people = [
        Person(demographics=synthetic.patient(rng, n), nhs_number=nhs_number(rng, used))
        for n in range(PERSONS)
    ]
    numbers = dict.fromkeys((t.code for t in trusts), 0)
    records = []

    def add(person: Person, trust: Trust) -> None:
        numbers[trust.code] += 1
        patient_id = f"{trust.code[:2]}{numbers[trust.code]:07d}"
        has_nhs = rng.random() >= NO_NHS_NUMBER
        records.append(
            Record(person=person, trust=trust, patient_id=patient_id, has_nhs_number=has_nhs)
        )

    for index, person in enumerate(people):
        home = rng.choices(trusts, weights=weights)[0]
        add(person, home)
        if index < SHARED:
            add(person, rng.choice([t for t in trusts if t.pk != home.pk]))
    return records


def _uid(rng: random.Random) -> str:
    return f"2.25.{rng.getrandbits(127)}"


def _study_headers(rng: random.Random, record: Record, number: int) -> list[Dataset]:
    """Header-only instances of one study, as ``dataset.py`` lays out the small ones:
    two views of a radiograph, otherwise one series of two images."""
    who = record.person.demographics
    when = synthetic.study_date(rng)
    modality = synthetic.modality(rng)
    description, body_part = rng.choice(modality.descriptions)
    study = Dataset()
    study.SpecificCharacterSet = "ISO_IR 100"
    study.PatientName = who.name
    study.PatientID = record.patient_id
    study.IssuerOfPatientID = record.trust.issuer
    study.PatientBirthDate = who.birth_date
    study.PatientSex = who.sex
    if record.has_nhs_number:
        item = Dataset()
        item.PatientID = record.person.nhs_number
        item.IssuerOfPatientID = "NHS"
        study.OtherPatientIDsSequence = [item]
    study.StudyInstanceUID = _uid(rng)
    study.StudyDate = when.strftime("%Y%m%d")
    study.StudyTime = synthetic.study_time(rng)
    study.AccessionNumber = f"{record.trust.code[:3]}{number:08d}"
    study.StudyID = str(number)
    study.StudyDescription = description
    study.ReferringPhysicianName = rng.choice(synthetic.REFERRERS)
    study.PatientAge = synthetic.age(who.birth_date, when)
    series_uids = [_uid(rng), _uid(rng)]
    out = []
    for index in range(2):
        series_index = index if modality.code == "CR" else 0
        ds = Dataset()
        ds.update(study)
        ds.SOPClassUID = modality.sop_class_uid
        ds.SOPInstanceUID = _uid(rng)
        ds.SeriesInstanceUID = series_uids[series_index]
        ds.Modality = modality.code
        ds.SeriesNumber = series_index + 1
        ds.InstanceNumber = index + 1
        ds.SeriesDescription = description
        ds.BodyPartExamined = body_part
        ds.InstitutionName = record.trust.name
        ds.SeriesDate = study.StudyDate
        ds.SeriesTime = study.StudyTime
        ds.Rows = ds.Columns = modality.size
        out.append(ds)
    return out


def _index_studies(archive: Archive, rng: random.Random, records: Sequence[Record]) -> None:
    """Every record gets a study, the rest go to random records (some have many); added
    in batches as the index writer adds them (``write.add_instances``)."""
    owners = list(range(len(records)))
    owners += [rng.randrange(len(records)) for _ in range(STUDIES - len(records))]
    rng.shuffle(owners)
    cache = write.IndexCache()
    batch: list[InstanceRecord] = []
    for number, owner in enumerate(owners, start=1):
        record = records[owner]
        for ds in _study_headers(rng, record, number):
            batch.append(
                InstanceRecord.from_header(
                    ds,
                    transfer_syntax=ExplicitVRLittleEndian,
                    size=0,
                    sha256="0" * 64,
                    storage_key=f"bench/{ds.SOPInstanceUID}",
                    calling_ae=f"{record.trust.code[:12]}_CT",
                    trust=record.trust,
                )
            )
        if len(batch) >= BATCH:
            _add(archive, batch, cache)
            batch = []
    _add(archive, batch, cache)


def _add(archive: Archive, batch: list[InstanceRecord], cache: write.IndexCache) -> None:
    with begin_write(archive.engine) as conn:
        write.add_instances(conn, batch, cache, write.Hooks(new_record=mpi.on_new_record))


def _person_pks(archive: Archive) -> dict[str, int]:
    with archive.engine.connect() as conn:
        rows = conn.execute(persons.select())
        return {r.nhs_number: r.id for r in rows if r.nhs_number}


def _relationships(
    archive: Archive, rng: random.Random, records: Sequence[Record], trusts: dict[str, Trust]
) -> list[Record]:
    """Encounters at every record's own trust; referrals of partners' patients to HOME
    (through ``rix.region.admin`` as an HL7 feed would, audited); a few lapsed ones.
    Returns the partners' records whose person was referred."""
    person_of = _person_pks(archive)
    now = time.time()
    at_home = {r.person.nhs_number for r in records if r.trust.code == HOME}
    candidates = [
        r
        for r in records
        if r.trust.code in PARTNERS and r.has_nhs_number and r.person.nhs_number not in at_home
    ]
    referred = rng.sample(candidates, int(len(candidates) * REFERRED))
    chosen = set(referred)
    lapsed = [r for r in candidates if r not in chosen][:EXPIRED]
    with begin_write(archive.engine) as conn:
        for record in records:
            if record.has_nhs_number:
                grounds.record_relationship(
                    conn,
                    SYSTEM,
                    trust=record.trust,
                    person_pk=person_of[record.person.nhs_number],
                    kind="encounter",
                    reference=record.patient_id,
                )
        for record in lapsed:
            grounds.record_relationship(
                conn,
                SYSTEM,
                trust=trusts[HOME],
                person_pk=person_of[record.person.nhs_number],
                kind="referral",
                reference=f"lapsed {record.patient_id}",
                expires_at=now - 86400,
            )
    for record in referred:
        admin.record_relationship(
            archive,
            SYSTEM,
            trust=HOME,
            nhs_number=record.person.nhs_number,
            kind="referral",
            reference=f"REF-{record.patient_id}",
        )
    return referred


def build(archive: Archive) -> Region:
    """The regional index on an empty archive, through rix's own functions."""
    rng = random.Random(SEED)
    trusts = {
        code: admin.add_trust(archive, SYSTEM, code, name, f"{code}-TRUST")
        for code, name, _ in TRUSTS
    }
    for one, other in AGREEMENTS:
        admin.add_agreement(archive, SYSTEM, one, other, "regional imaging sharing")
    user = admin.add_user(
        archive,
        SYSTEM,
        username=USERNAME,
        # also a radiologist: the widest scope, with the reporting worklist's two probes
        # (a claim, a report written) beside relationships and break-glass
        roles=frozenset({Role.CLINICIAN, Role.RADIOLOGIST}),
        trust=HOME,
        display_name="Bench Clinician",
    )
    pacs = aes.RemoteAE(title=AE_TITLE, host=LOOPBACK, port=104, description="Northgate PACS")
    admin.add_ae(archive, SYSTEM, pacs, HOME)
    token = admin.create_token(archive, SYSTEM, USERNAME, "access benchmark", days=1)
    records = _records(rng, list(trusts.values()))
    _index_studies(archive, rng, records)
    referred = _relationships(archive, rng, records, trusts)
    user_principal = Principal.of_user(user, "bench")
    seen = {r.person.nhs_number for r in referred} | {
        r.person.nhs_number for r in records if r.trust.code == HOME
    }
    glass = next(
        r
        for r in records
        if r.trust.code in PARTNERS and r.has_nhs_number and r.person.nhs_number not in seen
    )
    admin.break_glass(
        archive,
        user_principal,
        reason="unconscious patient in the emergency department",
        nhs_number=glass.person.nhs_number,
    )
    _claims(archive, user.pk, [trusts[code].pk for code in PARTNERS])
    probe = referred[0]
    with archive.engine.connect() as conn:
        study = next(
            queries.find(
                conn, Level.STUDY, [_match("PatientID", probe.patient_id)], scope=EVERYTHING
            )
        )
    return Region(
        archive=archive,
        probes=Probes(
            patient_id=probe.patient_id,
            accession=study["AccessionNumber"],
            study_uid=study["StudyInstanceUID"],
            break_glass_patient=glass.patient_id,
        ),
        ae=Principal.of_ae(AE_TITLE, trusts[HOME], "bench"),
        user=user_principal,
        token=token,
        counts=_counts(archive),
    )


def _claims(archive: Archive, user_pk: int, partner_pks: list[int]) -> None:
    """Thirty partner studies the user claimed on the reporting worklist: the rows the
    radiologist's claim probe reads (a claim opens the study to them)."""
    with begin_write(archive.engine) as conn:
        uids = conn.execute(
            select(studies.c.study_uid)
            .where(studies.c.trust_pk.in_(partner_pks))
            .order_by(studies.c.id)
            .limit(30)
        ).scalars()
        now = time.time()
        rows = [
            {"study_uid": u, "user_pk": user_pk, "claimed_at": now, "expires_at": now + 86400}
            for u in uids
        ]
        conn.execute(report_claims.insert(), rows)


def _counts(archive: Archive) -> dict[str, int]:
    tables = {
        "patients": patients,
        "studies": studies,
        "series": series,
        "instances": instances,
        "persons": persons,
        "relationships": relationships,
        "break_glass": break_glass,
    }
    with archive.engine.connect() as conn:
        return {
            name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for name, t in tables.items()
        }


# --- measuring ---------------------------------------------------------------------------


def _match(keyword: str, value: str) -> queries.Match:
    return queries.Match(attribute=BY_KEYWORD[keyword], value=value)


def _values(shape: Shape, probes: Probes) -> dict[str, str]:
    """The shape's keys by keyword, ``{name}`` filled from the probes."""
    values = dataclasses.asdict(probes)
    return {k: v.format(**values) for k, v in shape.keys.items()}


def _matches(shape: Shape, probes: Probes) -> list[queries.Match]:
    return [_match(k, v) for k, v in _values(shape, probes).items()]


def run_query(
    engine: Engine, shape: Shape, matches: Sequence[queries.Match], principal: Principal | None
) -> tuple[float, int]:
    """Seconds and rows of one query, as ``find.handle_find`` and ``qido.search`` run it:
    a pooled connection, the scope built for the request, every row read."""
    start = time.perf_counter()
    with engine.connect() as conn:
        scope = EVERYTHING if principal is None else access.scope(principal)
        rows = list(
            queries.find(
                conn, shape.level, matches, limit=shape.limit, offset=shape.offset, scope=scope
            )
        )
    return time.perf_counter() - start, len(rows)


Sample = Callable[[str], tuple[float, int]]  # one query as a variant: seconds, rows


@dataclass
class Measured:
    """One backend's samples (ms) and row counts, by shape key and variant, measured
    ``how`` ("in process" or "end to end"); a variant not measured has no entry."""

    backend: str
    how: str
    counts: dict[str, int]
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    plans: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def has(self, key: str, variant: str) -> bool:
        return variant in self.samples.get(key, {})

    def median(self, key: str, variant: str) -> float:
        return statistics.median(self.samples[key][variant])

    def ratio(self, key: str, variant: str) -> float:
        return self.median(key, variant) / self.median(key, "unscoped")

    def ratios(self, key: str) -> list[float]:
        return [self.ratio(key, v) for v in VARIANTS[1:] if self.has(key, v)]

    def geomean(self, variants: Sequence[str] = VARIANTS[1:]) -> float:
        return statistics.geometric_mean(
            [self.ratio(s.key, v) for s in SHAPES for v in variants if self.has(s.key, v)]
        )

    def record(
        self,
        shape: Shape,
        sample: Sample,
        variants: Sequence[str],
        budget: float = BUDGET,
        warmup: int = WARMUP,
        min_rounds: int = MIN_ROUNDS,
    ) -> None:
        """Warm-up rounds, then rounds of every variant in rotating order (no variant
        always first) until ``budget`` seconds of queries and ``min_rounds`` are done."""
        for _ in range(warmup):
            for variant in variants:
                sample(variant)
        samples: dict[str, list[float]] = {v: [] for v in variants}
        rows: dict[str, int] = {}
        spent, round_ = 0.0, 0
        while round_ < MAX_ROUNDS and (spent < budget or round_ < min_rounds):
            shift = round_ % len(variants)
            for variant in [*variants[shift:], *variants[:shift]]:
                seconds, found = sample(variant)
                samples[variant].append(seconds * 1000)
                rows[variant] = found
                spent += seconds
            round_ += 1
        self.samples[shape.key], self.rows[shape.key] = samples, rows


def measure(region: Region, backend: str, step: Callable[[str], None]) -> Measured:
    """In process: ``queries.find`` with the scope the front ends would build."""
    engine = region.archive.engine
    principals = {"unscoped": None, "trust AE": region.ae, "user": region.user}
    out = Measured(backend=backend, how="in process", counts=region.counts)
    for shape in SHAPES:
        step(f"{backend}: {shape.label}")
        matches = _matches(shape, region.probes)

        def sample(
            variant: str, shape: Shape = shape, matches: Sequence[queries.Match] = matches
        ) -> tuple[float, int]:
            return run_query(engine, shape, matches, principals[variant])

        out.record(shape, sample, VARIANTS)
        _check_rows(out, shape, out.rows[shape.key])
    _check_break_glass(out, region)
    for shape in SHAPES:
        if any(r > TARGET for r in out.ratios(shape.key)):
            out.plans[shape.key] = explain(engine, shape, _matches(shape, region.probes), region)
    return out


def measure_end_to_end(
    region: Region,
    front: access_e2e.FrontEnds,
    switch: access_e2e.ScopeSwitch,
    backend: str,
    step: Callable[[str], None],
) -> Measured:
    """Through rix's listeners: C-FIND shapes as the AE and as the user, QIDO-RS shapes
    as the user (HTTP has no AE principal); unscoped is the same request with the
    filter switched off (for C-FIND, on the AE's association)."""
    out = Measured(backend=backend, how="end to end", counts=region.counts)
    for shape in SHAPES:
        step(f"{backend}, end to end: {shape.label}")
        variants = ("unscoped", "user") if shape.over_http else VARIANTS
        with ExitStack() as stack:
            sample = _end_to_end_sample(stack, region, front, switch, shape)
            out.record(shape, sample, variants, E2E_BUDGET, E2E_WARMUP, E2E_MIN_ROUNDS)
    switch.unscoped = False
    return out


def _end_to_end_sample(
    stack: ExitStack,
    region: Region,
    front: access_e2e.FrontEnds,
    switch: access_e2e.ScopeSwitch,
    shape: Shape,
) -> Sample:
    """One association (or HTTP connection) per shape, open across its rounds."""
    values = _values(shape, region.probes)
    if shape.limit is not None:
        limit = shape.limit
        viewer = stack.enter_context(access_e2e.viewer(front, region.token))

        def qido(variant: str) -> tuple[float, int]:
            switch.unscoped = variant == "unscoped"
            return access_e2e.qido(viewer, shape.level, values, limit, shape.offset)

        return qido
    pacs = stack.enter_context(
        access_e2e.pacs(front, shape.level, calling=AE_TITLE, username=USERNAME, token=region.token)
    )

    def find(variant: str) -> tuple[float, int]:
        switch.unscoped = variant == "unscoped"
        return pacs.find(variant == "user", values)

    return find


def _check_answers(end_to_end: Measured, in_process: Measured) -> None:
    """The same shapes must match the same rows through the front ends as in process:
    the filter filters there too, and the user's association acts as the user."""
    for key, rows in end_to_end.rows.items():
        expected = {v: in_process.rows[key][v] for v in rows}
        if rows != expected:
            end_to_end.problems.append(
                f"{end_to_end.backend} {key} end to end: rows {rows}, in process {expected}"
            )


def _check_rows(out: Measured, shape: Shape, rows: Mapping[str, int]) -> None:
    """The filter must filter: never more than unscoped, and the user at least the AE."""
    if not rows["trust AE"] <= rows["user"] <= rows["unscoped"]:
        out.problems.append(f"{out.backend} {shape.key}: rows {dict(rows)}")
    if shape.key == "find_all" and rows["trust AE"] >= rows["unscoped"]:
        out.problems.append(f"{out.backend} find_all: the AE sees every study")


def _check_break_glass(out: Measured, region: Region) -> None:
    shape = Shape(key="glass", label="", level=Level.STUDY, keys={})
    matches = [_match("PatientID", region.probes.break_glass_patient)]
    engine = region.archive.engine
    ae = run_query(engine, shape, matches, region.ae)[1]
    user = run_query(engine, shape, matches, region.user)[1]
    if ae != 0 or user == 0:
        out.problems.append(
            f"{out.backend}: break-glass patient seen by the AE in {ae} studies, "
            f"by the user in {user}"
        )


@contextmanager
def _statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The SQL and parameters the driver is handed while the block runs."""
    seen: list[tuple[str, Any]] = []

    def before(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def explain(engine: Engine, shape: Shape, matches: Sequence[queries.Match], region: Region) -> str:
    """The plans of the query unscoped, as the AE and as the user, as the database runs
    them (PostgreSQL: EXPLAIN ANALYZE, so with actual rows and times)."""
    parts = []
    for name, principal in (("unscoped", None), ("trust AE", region.ae), ("user", region.user)):
        with _statements(engine) as seen:
            run_query(engine, shape, matches, principal)
        statement, params = next(s for s in reversed(seen) if "FROM patients" in s[0])
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
                lines = _sqlite_tree(plan)
            else:
                analysed = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
                lines = [row[0] for row in analysed]
        parts.append(f"-- {name}\n{statement}\n-- plan\n" + "\n".join(lines))
    return "\n\n".join(parts)


def _sqlite_tree(plan: Sequence[Any]) -> list[str]:
    depth = {0: -1}
    lines = []
    for node, parent, _, detail in plan:
        depth[node] = depth.get(parent, -1) + 1
        lines.append("  " * depth[node] + detail)
    return lines


# --- backends ----------------------------------------------------------------------------


def _settings(folder: Path, database_url: str) -> Settings:
    """rix's defaults, with its listeners on free loopback ports (the end-to-end part)."""
    return dataclasses.replace(
        Settings(),
        data=folder,
        database_url=database_url,
        dicom_host=LOOPBACK,
        dicom_port=free_port(),
        http=f"{LOOPBACK}:{free_port()}",
    )


@contextmanager
def sqlite_archive(folder: Path) -> Iterator[Archive]:
    settings = _settings(folder / "sqlite", "")
    archive = open_archive(settings)
    try:
        yield archive
    finally:
        archive.close()


@contextmanager
def postgres_archive(folder: Path) -> Iterator[Archive]:
    """A fresh database, dropped afterwards (as ``tests/peers/postgres.py`` does)."""
    name = f"rix_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    settings = _settings(folder / "pg", url)
    archive = open_archive(settings)
    try:
        yield archive
    finally:
        archive.close()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _postgres_version() -> str:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.OperationalError:
        return ""
    return str(row[0]).split()[0] if row else "?"


def run_backend(
    backend: str, archive: Archive, step: Callable[[str], None], console: Console
) -> list[Measured]:
    """Build the region, measure in process, then end to end through rix's listeners."""
    step(f"{backend}: building the regional index")
    start = time.monotonic()
    region = build(archive)
    if backend == "PostgreSQL":  # the statistics autovacuum would gather within a minute;
        # SQLite is measured as rix runs it, without sqlite_stat1 (rix never runs ANALYZE)
        with begin_write(archive.engine) as conn:
            conn.exec_driver_sql("ANALYZE")
    console.print(f"{backend}: index built in {time.monotonic() - start:.0f} s {region.counts}")
    in_process = measure(region, backend, step)
    step(f"{backend}: starting rix's listeners")
    with access_e2e.serving(archive) as front, access_e2e.switchable_scope() as switch:
        end_to_end = measure_end_to_end(region, front, switch, backend, step)
    _check_answers(end_to_end, in_process)
    return [in_process, end_to_end]


# --- the report --------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _row(m: Measured, shape: Shape) -> list[str]:
    """One shape's line; "-" where a variant was not measured (no AE over HTTP)."""
    key, rows = shape.key, m.rows[shape.key]
    cells = [shape.label, "/".join(str(rows.get(v, "-")) for v in VARIANTS)]
    cells.append(_ms(m.median(key, "unscoped")))
    for variant in VARIANTS[1:]:
        measured = m.has(key, variant)
        cells.append(_ms(m.median(key, variant)) if measured else "-")
        cells.append(f"{m.ratio(key, variant):.2f}" if measured else "-")
    cells.append("yes" if max(m.ratios(key)) <= TARGET else "NO")
    return cells


HEADERS = (
    "query", "rows all/AE/user", "unscoped ms", "AE ms", "AE/unscoped", "user ms",
    "user/unscoped", f"<= {TARGET:g}x",
)  # fmt: skip


def _summary(m: Measured) -> list[str]:
    ae, user, both = m.geomean(["trust AE"]), m.geomean(["user"]), m.geomean()
    return [
        "geometric mean",
        "",
        "",
        "",
        f"{ae:.2f}",
        "",
        f"{user:.2f}",
        "yes" if both <= TARGET else "NO",
    ]


def print_tables(console: Console, results: Sequence[Measured]) -> None:
    for m in results:
        title = f"Access filter cost, {m.backend}, {m.how} (medians; ratio = scoped/unscoped)"
        table = Table(title=title)
        for header in HEADERS:
            table.add_column(header, justify="left" if header == "query" else "right")
        for shape in SHAPES:
            table.add_row(*_row(m, shape), end_section=shape is SHAPES[-1])
        table.add_row(*_summary(m))
        console.print(table)
        for problem in m.problems:
            console.print(f"[red]problem:[/red] {problem}")


def markdown(
    results: Sequence[Measured],
    machine: facts.Facts,
    software: str,
    duration: float,
    notes: list[str],
) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## Access filter cost, {when}", ""]
    lines += [f"- {machine.lines()[0]}", f"- software: {software}"]
    lines += [f"- rix commit: {machine.rix_commit}"]
    lines += [
        f"- run: {duration / 60:.1f} min; unscoped / trust AE / user in rotating order; "
        f"in process {WARMUP} warm-up rounds then {MIN_ROUNDS} to {MAX_ROUNDS} rounds a query "
        f"({BUDGET:g} s budget), end to end {E2E_WARMUP} warm-up rounds then {E2E_MIN_ROUNDS} "
        f"to {MAX_ROUNDS} ({E2E_BUDGET:g} s)",
        "- in process: through `rix.index.queries.find`, as both front ends call it",
        "- end to end: rix's DIMSE listener and HTTP server (uvicorn) in the bench process on "
        "loopback; C-FIND through `scu.py`, as the AE and as the user (User Identity "
        "Negotiation, API token); QIDO-RS with the user's bearer token (HTTP has no AE "
        "principal); associations and the keep-alive HTTP connection open across a query's "
        "rounds; unscoped = the same request with `access.scope` switched off in the bench "
        "process",
        f"- region: {len(TRUSTS)} trusts, {len(AGREEMENTS)} sharing agreements; principals "
        f"{HOME}'s AE and a {HOME} clinician-radiologist (relationships, one break-glass, "
        "reporting claims); "
        f"target: scoped <= {TARGET:g}x unscoped, every query",
        "- statistics: PostgreSQL ANALYZEd after the load; SQLite without (as rix runs it)",
    ]
    backends: list[str] = []
    for m in results:
        if m.backend not in backends:
            backends.append(m.backend)
            counts = ", ".join(f"{n:,} {name}" for name, n in m.counts.items())
            lines += ["", f"### {m.backend}", "", f"Index: {counts}."]
        lines += ["", f"#### {m.how.capitalize()}", ""]
        lines += ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        lines += ["| " + " | ".join(_row(m, s)) + " |" for s in SHAPES]
        lines += ["| " + " | ".join(_summary(m)) + " |"]
        spread = [
            f"{s.key} n={len(m.samples[s.key]['unscoped'])}" for s in SHAPES if s.key in m.samples
        ]
        lines += ["", "Rounds: " + ", ".join(spread) + "."]
    lines += ["", "Notes:", ""] + ([f"- {n}" for n in notes] or ["- none"])
    problems = [p for m in results for p in m.problems]
    lines += ["", "Problems:", ""] + ([f"- {p}" for p in problems] or ["- none"])
    return "\n".join(lines) + "\n"


def write_plans(results: Sequence[Measured]) -> Path | None:
    text = [f"===== {m.backend}: {key}\n{plan}\n" for m in results for key, plan in m.plans.items()]
    if not text:
        return None
    path = dataset.WORK / "logs" / "access-plans.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(text))
    return path


def run(console: Console) -> int:
    """Measure on both backends, print the tables, append the entry to RESULTS.md."""
    started = time.monotonic()
    results: list[Measured] = []
    load_before = os.getloadavg()[0]
    notes: list[str] = []
    pg_version = _postgres_version()
    with (
        console.status("access filter") as status,
        tempfile.TemporaryDirectory(prefix="access-") as tmp,
    ):

        def step(text: str) -> None:
            status.update(text)

        with sqlite_archive(Path(tmp)) as archive:
            results += run_backend("SQLite", archive, step, console)
        if pg_version:
            with postgres_archive(Path(tmp)) as archive:
                results += run_backend("PostgreSQL", archive, step, console)
        else:
            notes.append(f"PostgreSQL not measured: nothing answers at {PG_ADMIN_URL}")
    notes.append(
        f"load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, "
        f"on {os.cpu_count()} cores: other work on the machine widens the spread"
    )
    print_tables(console, results)
    plans = write_plans(results)
    if plans is not None:
        where = plans.relative_to(facts.ROOT)
        notes.append(f"plans of the queries over target (unscoped, AE, user): {where}")
    machine = facts.gather(orthanc="-", dicomweb_plugin="-", isolated=False)
    software = (
        f"Python {machine.python}, SQLite {sqlite3.sqlite_version}, "
        f"PostgreSQL {pg_version or 'not measured'}, SQLAlchemy {sqlalchemy_version}, "
        f"pynetdicom {pynetdicom.__version__}, uvicorn {uvicorn.__version__}"
    )
    duration = time.monotonic() - started
    path = report.append(markdown(results, machine, software, duration, notes))
    console.print(f"appended to {path}; run took {duration / 60:.1f} min")
    problems = [p for m in results for p in m.problems]
    return 1 if problems else 0
