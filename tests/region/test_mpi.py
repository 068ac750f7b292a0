"""The master patient index: one person, many trusts' records, linked by NHS number.

An NHS number is ten digits, the last a modulus 11 check digit (NHS Data Dictionary,
"NHS Number"); rix reads it from PatientID when the Issuer of Patient ID is the NHS, or
from an NHS-issued item of Other Patient IDs Sequence (0010,1002). Records of two trusts
with the same valid number and agreeing demographics are linked at ingest; anything less
certain goes to the review list. Links made or broken by hand are final.

Records arrive the ways a region's images do: STOW-RS by a clinician of NORTH, and
C-STORE from SOUTH's PACS, an AE registered to SOUTH.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import build_context
from typer.testing import CliRunner

from rix.cli.main import app
from rix.dataset import nhs
from tests.conftest import new_server
from tests.peers import dicomweb, postgres, scu
from tests.peers.server import RixServer
from tests.peers.synthetic import CT_IMAGE_STORAGE, ct_slice

# --- the check digit, as the NHS Data Dictionary defines it ---

WEIGHTS = range(10, 1, -1)  # the first nine digits are weighted 10 down to 2


def check_digit(first_nine: str) -> int | None:
    """11 minus the weighted sum modulo 11; 11 becomes 0, and 10 means no valid number."""
    check = 11 - sum(int(d) * w for d, w in zip(first_nine, WEIGHTS, strict=True)) % 11
    return {11: 0, 10: None}.get(check, check)


def with_check_digit(first_nine: str) -> str | None:
    check = check_digit(first_nine)
    return None if check is None else f"{first_nine}{check}"


# Published examples of valid NHS numbers (NHS Digital's test data and guidance).
KNOWN_VALID = ["9434765919", "9434765870", "4010232137", "9990548609"]
NINE_DIGITS = st.text(alphabet="0123456789", min_size=9, max_size=9)


@pytest.mark.parametrize("number", KNOWN_VALID)
def test_published_nhs_numbers_are_valid(number: str) -> None:
    assert nhs.is_valid(number)


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("9434765918", "wrong check digit"),
        ("9434765910", "wrong check digit"),
        ("943476591", "nine digits"),
        ("94347659190", "eleven digits"),
        ("94347A5919", "a letter"),
        ("943476591X", "a letter as check digit"),
        ("", "empty"),
    ],
)
def test_malformed_nhs_numbers_are_invalid(number: str, why: str) -> None:
    assert not nhs.is_valid(number), why


def test_nhs_number_is_read_through_spaces_and_hyphens() -> None:
    assert nhs.is_valid("943 476 5919")
    assert nhs.is_valid("943-476-5919")


def test_remainder_giving_check_digit_10_makes_every_completion_invalid() -> None:
    # 1x10 + 2x9 + ... + 9x2 = 210 = 11x19 + 1: the check digit would be 11 - 1 = 10
    assert check_digit("123456789") is None
    assert not any(nhs.is_valid(f"123456789{last}") for last in range(10))


def test_check_digit_11_is_written_as_0() -> None:
    # 1x10 + 1x9 + 1x3 = 22, a multiple of 11: the check digit is 11 - 0 = 11, written 0
    first_nine = "110000010"
    assert sum(int(d) * w for d, w in zip(first_nine, WEIGHTS, strict=True)) % 11 == 0
    assert nhs.is_valid(first_nine + "0")
    assert not nhs.is_valid(first_nine + "1")


@given(NINE_DIGITS)
def test_exactly_the_data_dictionary_check_digit_is_valid(first_nine: str) -> None:
    valid = [last for last in "0123456789" if nhs.is_valid(first_nine + last)]
    expected = check_digit(first_nine)
    assert valid == ([] if expected is None else [str(expected)])


@given(NINE_DIGITS, st.integers(0, 9), st.integers(1, 9))
def test_one_mistyped_digit_makes_a_valid_number_invalid(
    first_nine: str, position: int, change: int
) -> None:
    number = with_check_digit(first_nine)
    if number is None:
        return
    mistyped = (
        number[:position] + str((int(number[position]) + change) % 10) + number[position + 1 :]
    )
    assert not nhs.is_valid(mistyped)


@given(NINE_DIGITS, st.integers(0, 8))
def test_two_swapped_neighbouring_digits_make_a_valid_number_invalid(
    first_nine: str, position: int
) -> None:
    number = with_check_digit(first_nine)
    if number is None or number[position] == number[position + 1]:
        return
    swapped = number[:position] + number[position + 1] + number[position] + number[position + 2 :]
    assert not nhs.is_valid(swapped)


def _ids(**values: str) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def test_nhs_number_is_found_in_patient_id_issued_by_the_nhs() -> None:
    found = nhs.in_dataset(_ids(PatientID="9434765919", IssuerOfPatientID="NHS"))
    assert (found.value, found.valid) == ("9434765919", True)


def test_nhs_number_is_found_in_other_patient_ids_sequence() -> None:
    ds = _ids(PatientID="H123", IssuerOfPatientID="NORTH")
    ds.OtherPatientIDsSequence = Sequence(
        [
            _ids(PatientID="X1", IssuerOfPatientID="LAB"),
            _ids(PatientID="943 476 5870", IssuerOfPatientID="NHS"),
        ]
    )
    found = nhs.in_dataset(ds)
    assert (found.value, found.valid) == ("9434765870", True)


def test_nhs_number_is_found_by_the_hl7_oid_of_its_issuer() -> None:
    qualifier = _ids(UniversalEntityID="2.16.840.1.113883.2.1.4.1", UniversalEntityIDType="ISO")
    ds = _ids(PatientID="9434765919")
    ds.IssuerOfPatientIDQualifiersSequence = Sequence([qualifier])
    assert nhs.in_dataset(ds).value == "9434765919"


def test_hospital_number_is_not_an_nhs_number() -> None:
    found = nhs.in_dataset(_ids(PatientID="9434765919", IssuerOfPatientID="NORTH"))
    assert (found.value, found.valid) == ("", False)


# --- linking at ingest, through a live server ---

_valid_numbers = (
    number for first in itertools.count(600_000_001) if (number := with_check_digit(str(first)))
)
_hospital_numbers = itertools.count(1)
SOUTH_PACS = "SOUTHPACS"


def fresh_nhs_number() -> str:
    return next(_valid_numbers)


def hospital_number() -> str:
    return f"H{next(_hospital_numbers):05d}"


def image(
    patient_id: str,
    *,
    nhs_number: str = "",
    issuer: str = "",
    birth_date: str = "19700101",
    sex: str = "F",
) -> Dataset:
    """One CT slice of a new study; the NHS number, if any, in Other Patient IDs."""
    ds = ct_slice(
        patient_id=patient_id,
        patient_name="Synthetic^Patient",
        study_uid=generate_uid(),
        series_uid=generate_uid(),
        number=1,
        size=8,
    )
    ds.PatientBirthDate, ds.PatientSex = birth_date, sex
    if issuer:
        ds.IssuerOfPatientID = issuer
    if nhs_number:
        other = _ids(PatientID=nhs_number, IssuerOfPatientID="NHS", TypeOfPatientID="TEXT")
        ds.OtherPatientIDsSequence = Sequence([other])
    return ds


@dataclass(frozen=True, slots=True, kw_only=True)
class Region:
    """Trusts NORTH and SOUTH (sharing), a region administrator and a NORTH clinician."""

    server: RixServer
    admin: httpx.Client  # region-admin, at the site root
    clinician: httpx.Client  # clinician of NORTH, at the site root
    dicomweb: httpx.Client  # the same clinician, at /dicomweb

    def stow_north(self, *datasets: Dataset) -> None:
        answer = dicomweb.stow(self.dicomweb, [dicomweb.part10(ds) for ds in datasets])
        assert answer.status_code == 200, answer.text

    def store_south(self, *datasets: Dataset) -> None:
        contexts = [build_context(CT_IMAGE_STORAGE, [ExplicitVRLittleEndian])]
        with scu.association(self.server.dicom_port, contexts, calling=SOUTH_PACS) as assoc:
            for ds in datasets:
                status = scu.store_bytes(
                    assoc,
                    sop_class=str(ds.SOPClassUID),
                    sop_instance=str(ds.SOPInstanceUID),
                    transfer_syntax=ExplicitVRLittleEndian,
                    dataset=scu.encode(ds),
                )
                assert status.Status == 0x0000

    def rix(self, *args: str) -> Any:
        """``rix ARGS --json`` in this process, on the server's data folder and database:
        the one JSON document it prints."""
        where = ["--json", "--data", str(self.server.data)]
        if self.server.database_url:
            where += ["--database-url", self.server.database_url]
        result = CliRunner().invoke(app, [*args, *where])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def show(self, record: str) -> dict[str, dict[str, Any]]:
        """``rix mpi show``: the record and every record linked to it, by reference."""
        return {row["record"]: row for row in self.rix("mpi", "show", record)}

    def review(self) -> list[dict[str, Any]]:
        return list(self.rix("mpi", "review"))


def _token(admin: httpx.Client, username: str, roles: list[str], trust: str = "") -> str:
    """A user made through the API, and an API token of theirs."""
    body = {"username": username, "roles": roles, "trust": trust}
    assert admin.post("/api/users", json=body).status_code == 201
    answer = admin.post(f"/api/users/{username}/tokens", json={})
    assert answer.status_code == 201
    return str(answer.json()["token"])


def _client(base_url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Region]:
    url = postgres.create_database(migrated=True) if backend == "postgresql" else ""
    server = new_server(
        tmp_path_factory.mktemp("mpi"),
        database_url=url,
        # rix's tables (rich) are as wide as COLUMNS: wide enough, each row is one line
        extra_env={"COLUMNS": "200", "PYTHONIOENCODING": "utf-8"},
    )
    origin = f"http://127.0.0.1:{server.http_port}"
    try:
        server.start()
        server.add_user("registrar", "region-admin")
        with ExitStack() as clients:
            admin = clients.enter_context(_client(origin, server.create_token("registrar")))
            for code in ("NORTH", "SOUTH"):
                assert admin.post("/api/trusts", json={"code": code, "name": code}).is_success
            sharing = {"trust": "NORTH", "other": "SOUTH", "description": "DSA-1"}
            assert admin.post("/api/agreements", json=sharing).is_success
            pacs = {"title": SOUTH_PACS, "host": "127.0.0.1", "port": 104, "trust": "SOUTH"}
            assert admin.post("/api/aes", json=pacs).is_success
            token = _token(admin, "dr.north", ["clinician"], "NORTH")
            yield Region(
                server=server,
                admin=admin,
                clinician=clients.enter_context(_client(origin, token)),
                dicomweb=clients.enter_context(_client(origin + "/dicomweb", token)),
            )
    finally:
        server.stop(wait=False)
        if url:
            postgres.drop_database(url)


def test_valid_nhs_number_links_records_of_two_trusts_into_one_person(region: Region) -> None:
    number, north_id, south_id = fresh_nhs_number(), hospital_number(), hospital_number()
    region.stow_north(image(north_id, nhs_number=number))
    region.store_south(image(south_id, nhs_number=number))
    person = region.show(f"NORTH/{north_id}")
    assert set(person) == {f"NORTH/{north_id}", f"SOUTH/{south_id}"}
    assert {row["trust"] for row in person.values()} == {"NORTH", "SOUTH"}
    assert {row["nhs_number"] for row in person.values()} == {number}
    assert {row["link"] for row in person.values()} == {"auto"}


def test_nhs_number_in_patient_id_and_in_other_patient_ids_link_alike(region: Region) -> None:
    number, south_id = fresh_nhs_number(), hospital_number()
    region.stow_north(image(number, issuer="NHS"))  # PatientID is the NHS number
    region.store_south(image(south_id, nhs_number=number))  # Other Patient IDs Sequence
    person = region.show(f"NHS/{number}")
    assert set(person) == {f"NHS/{number}", f"SOUTH/{south_id}"}
    assert {row["nhs_number"] for row in person.values()} == {number}


INVALID = {"bad-check-digit": "9434765918", "wrong-length": "943476591", "non-digits": "94347A5919"}


@pytest.fixture(scope="module")
def invalid_stored(region: Region) -> dict[str, tuple[str, str]]:
    """For each invalid NHS number, a record of NORTH and one of SOUTH carrying it."""
    records = {}
    for case, number in INVALID.items():
        north_id, south_id = hospital_number(), hospital_number()
        region.stow_north(image(north_id, nhs_number=number))
        region.store_south(image(south_id, nhs_number=number))
        records[case] = (f"NORTH/{north_id}", f"SOUTH/{south_id}")
    return records


@pytest.fixture(scope="module")
def review_after_invalid(region: Region, invalid_stored: dict[str, Any]) -> list[dict[str, str]]:
    """``rix mpi review`` once the records of ``invalid_stored`` are in."""
    return region.review()


@pytest.mark.parametrize("case", INVALID)
def test_invalid_nhs_number_is_reviewed(
    invalid_stored: dict[str, tuple[str, str]],
    review_after_invalid: list[dict[str, str]],
    case: str,
) -> None:
    reviewed = {row["patient"]: row for row in review_after_invalid}
    for record in invalid_stored[case]:
        assert reviewed[record]["kind"] == "invalid-nhs-number"
        assert reviewed[record]["nhs_number"] == INVALID[case]


@pytest.mark.parametrize("case", INVALID)
def test_invalid_nhs_number_links_nothing(
    region: Region, invalid_stored: dict[str, tuple[str, str]], case: str
) -> None:
    north, _south = invalid_stored[case]
    assert set(region.show(north)) == {north}


@pytest.mark.parametrize(
    ("first", "second", "difference"),
    [
        pytest.param({"birth_date": "19700101"}, {"birth_date": "19710202"}, "birth_date"),
        pytest.param({"sex": "F"}, {"sex": "M"}, "sex"),
    ],
)
def test_same_nhs_number_with_other_demographics_is_reviewed_not_linked(
    region: Region, first: dict[str, str], second: dict[str, str], difference: str
) -> None:
    number, north_id, south_id = fresh_nhs_number(), hospital_number(), hospital_number()
    north_image = image(north_id, nhs_number=number, **first)
    region.stow_north(north_image)
    region.store_south(image(south_id, nhs_number=number, **second))
    [reviewed] = [r for r in _reviews(region.admin) if r["patient"] == f"SOUTH/{south_id}"]
    assert reviewed["kind"] == "conflicting-demographics"
    assert reviewed["nhs_number"] == number
    assert reviewed["detail"] == {difference: [first[difference], second[difference]]}
    # the person of the number holds the NORTH record alone: no study hidden at SOUTH
    assert _timeline(region.clinician, nhs_number=number) == {
        "studies": [_entry(north_image, "NORTH")],
        "hidden_at": [],
    }


def test_records_linked_by_hand_are_one_person(region: Region) -> None:
    north_id, south_id = hospital_number(), hospital_number()
    region.stow_north(image(north_id))
    region.store_south(image(south_id))
    region.server.rix("mpi", "link", f"NORTH/{north_id}", "--to", f"SOUTH/{south_id}")
    person = region.show(f"SOUTH/{south_id}")
    assert set(person) == {f"NORTH/{north_id}", f"SOUTH/{south_id}"}
    assert person[f"NORTH/{north_id}"]["link"] == "manual"


def test_record_unlinked_by_hand_stays_out_when_another_record_of_its_number_arrives(
    region: Region,
) -> None:
    number = fresh_nhs_number()
    first, unlinked, later = hospital_number(), hospital_number(), hospital_number()
    region.stow_north(image(first, nhs_number=number))
    region.store_south(image(unlinked, nhs_number=number))
    region.server.rix("mpi", "unlink", f"SOUTH/{unlinked}")
    region.stow_north(image(later, nhs_number=number))
    assert set(region.show(f"NORTH/{first}")) == {f"NORTH/{first}", f"NORTH/{later}"}


def test_record_unlinked_by_hand_stays_out_when_given_its_nhs_number(region: Region) -> None:
    number, north_id, south_id = fresh_nhs_number(), hospital_number(), hospital_number()
    region.stow_north(image(north_id, nhs_number=number))
    region.store_south(image(south_id, nhs_number=number))
    region.server.rix("mpi", "unlink", f"SOUTH/{south_id}")
    given_number = region.server.rix("mpi", "nhs-number", f"SOUTH/{south_id}", number)
    assert f"SOUTH/{south_id}: NHS number {number}, link unlinked" in given_number.stdout


def test_nhs_number_given_to_a_record_without_one_links_it(region: Region) -> None:
    number, north_id, south_id = fresh_nhs_number(), hospital_number(), hospital_number()
    region.stow_north(image(north_id, nhs_number=number))
    region.store_south(image(south_id))
    given_number = region.server.rix("mpi", "nhs-number", f"SOUTH/{south_id}", number)
    assert f"SOUTH/{south_id}: NHS number {number}, link auto" in given_number.stdout
    # the person of the number now holds a SOUTH record too
    assert _timeline(region.clinician, nhs_number=number)["hidden_at"] == ["SOUTH"]


# --- the same through the HTTP API ---


def _reviews(client: httpx.Client) -> list[dict[str, Any]]:
    answer = client.get("/api/mpi/reviews")
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def _timeline(client: httpx.Client, **params: str) -> dict[str, Any]:
    answer = client.get("/api/timeline", params=params)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return {"studies": [_entry_of(s) for s in found["studies"]], "hidden_at": found["hidden_at"]}


def _entry_of(study: dict[str, Any]) -> tuple[str, str, str]:
    return (study["study_uid"], study["trust"], study["patient"])


def _entry(ds: Dataset, trust: str) -> tuple[str, str, str]:
    """A study of the timeline as its image was stored: UID, trust, issuer/patient ID."""
    return (ds.StudyInstanceUID, trust, f"{trust}/{ds.PatientID}")


def test_region_admin_links_and_unlinks_through_the_api(region: Region) -> None:
    """Seen in the timeline of the SOUTH record: NORTH's study is in it while linked."""
    north_id, south_id = hospital_number(), hospital_number()
    north_image = image(north_id)
    region.stow_north(north_image)
    region.store_south(image(south_id))
    body = {"patient": f"NORTH/{north_id}", "to": f"SOUTH/{south_id}"}
    linked = region.admin.post("/api/mpi/link", json=body)
    assert linked.status_code == 200, linked.text
    assert isinstance(linked.json()["person"], int)
    assert _timeline(region.clinician, patient=f"SOUTH/{south_id}") == {
        "studies": [_entry(north_image, "NORTH")],
        "hidden_at": ["SOUTH"],
    }
    unlinked = region.admin.post("/api/mpi/unlink", json={"patient": f"NORTH/{north_id}"})
    assert unlinked.status_code == 200, unlinked.text
    assert _timeline(region.clinician, patient=f"SOUTH/{south_id}") == {
        "studies": [],
        "hidden_at": ["SOUTH"],
    }


def test_region_admin_reads_the_review_list_through_the_api(region: Region) -> None:
    number, north_id, south_id = fresh_nhs_number(), hospital_number(), hospital_number()
    region.stow_north(image(north_id, nhs_number=number, birth_date="19800101"))
    region.store_south(image(south_id, nhs_number=number, birth_date="19800202"))
    [reviewed] = [r for r in _reviews(region.admin) if r["patient"] == f"SOUTH/{south_id}"]
    assert reviewed["kind"] == "conflicting-demographics"
    assert reviewed["nhs_number"] == number
    assert reviewed["detail"] == {"birth_date": ["19800101", "19800202"]}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/mpi/reviews", None),
        ("POST", "/api/mpi/link", {"to": "SOUTH/H99999"}),
        ("POST", "/api/mpi/unlink", {}),
    ],
)
def test_clinician_may_not_change_or_review_the_mpi(
    region: Region, method: str, path: str, body: dict[str, Any] | None
) -> None:
    north_id = hospital_number()
    region.stow_north(image(north_id))
    if body is not None:
        body = {"patient": f"NORTH/{north_id}", **body}
    answer = region.clinician.request(method, path, json=body)
    assert answer.status_code == 403, answer.text


def test_timeline_shows_both_trusts_studies_to_a_user_who_may_see_both(region: Region) -> None:
    number, north_id, south_id = fresh_nhs_number(), hospital_number(), hospital_number()
    north_image = image(north_id, nhs_number=number)
    south_image = image(south_id, nhs_number=number)
    region.stow_north(north_image)
    region.store_south(south_image)
    encounter = {"trust": "NORTH", "kind": "encounter", "nhs_number": number, "reference": "E1"}
    assert region.clinician.post("/api/relationships", json=encounter).status_code == 201
    timeline = _timeline(region.clinician, nhs_number=number)
    assert sorted(timeline["studies"]) == sorted(
        [_entry(north_image, "NORTH"), _entry(south_image, "SOUTH")]
    )
    assert timeline["hidden_at"] == []


def test_timeline_names_the_partner_trust_whose_studies_need_a_relationship(
    region: Region,
) -> None:
    number, north_id, south_id = fresh_nhs_number(), hospital_number(), hospital_number()
    north_image = image(north_id, nhs_number=number)
    region.stow_north(north_image)
    region.store_south(image(south_id, nhs_number=number))
    assert _timeline(region.clinician, nhs_number=number) == {
        "studies": [_entry(north_image, "NORTH")],
        "hidden_at": ["SOUTH"],
    }


def test_timeline_of_a_record_linked_to_nobody_shows_its_own_studies(region: Region) -> None:
    """``/api/timeline``: "a record linked to nobody is a person of its own"."""
    north_image = image(hospital_number())
    region.stow_north(north_image)
    timeline = _timeline(region.clinician, patient=f"NORTH/{north_image.PatientID}")
    assert timeline["studies"] == [_entry(north_image, "NORTH")]
