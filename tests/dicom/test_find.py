"""C-FIND SCP (PS3.4 C.4.1), Patient Root and Study Root, on synthetic patients.

One test per matching type of PS3.4 C.2.2.2 and per derived attribute, asked with
pynetdicom for exact assertions and with DCMTK findscu at every level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset

from tests.dicom import synthetic
from tests.dicom.synthetic import (
    BUC,
    DOE_JANE,
    DOE_JOHN,
    GREEK,
    JAPANESE,
    S1,
    S2,
    S3,
    S4,
    S5,
    S6,
    S7,
    SMITH,
    Study,
)
from tests.peers import corpus, dcmtk, scu
from tests.peers.server import RixServer

pytestmark = pytest.mark.usefixtures("synthetic_studies")
ALL_SYNTHETIC = "SYN-*"  # PatientID wildcard that keeps other tests' data out


def find(
    server: RixServer, level: str, *, model: str = scu.STUDY_ROOT_FIND, **keys: Any
) -> list[Dataset]:
    result = scu.find(server.dicom_port, scu.query(level, **keys), model=model)
    assert result.status == 0x0000, f"{result.status:04X} {result.error_comment}"
    return result.matches


def values(matches: list[Dataset], keyword: str) -> list[str]:
    return sorted(str(m.get(keyword, "")) for m in matches)


def study_uids(*studies: Study) -> list[str]:
    return sorted(s.uid for s in studies)


# -- PATIENT level, Patient Root ---------------------------------------------------------


def patients(server: RixServer, **keys: Any) -> list[Dataset]:
    return find(server, "PATIENT", model=scu.PATIENT_ROOT_FIND, **keys)


def test_single_value_matching_on_patient_id(rix_server: RixServer) -> None:
    found = patients(rix_server, PatientID="SYN-002", PatientName="")
    assert [(str(m.PatientID), str(m.PatientName)) for m in found] == [("SYN-002", "Doe^Jane")]


def test_universal_matching_returns_every_record_with_the_key_filled(
    rix_server: RixServer,
) -> None:
    found = patients(rix_server, PatientID=ALL_SYNTHETIC, PatientBirthDate="", PatientSex="")
    assert values(found, "PatientID") == [p.id for p in synthetic.PATIENTS]
    assert values(found, "PatientBirthDate") == sorted(p.birth_date for p in synthetic.PATIENTS)
    assert values(found, "PatientSex") == sorted(p.sex for p in synthetic.PATIENTS)


def test_wildcard_star_matches_any_run_of_characters(rix_server: RixServer) -> None:
    found = patients(rix_server, PatientName="Doe^*", PatientID="")
    assert values(found, "PatientID") == [DOE_JOHN.id, DOE_JANE.id]


def test_wildcard_question_mark_matches_exactly_one_character(rix_server: RixServer) -> None:
    assert values(patients(rix_server, PatientID="SYN-00?"), "PatientID") == [
        p.id for p in synthetic.PATIENTS
    ]
    assert values(patients(rix_server, PatientID="SYN-0?1"), "PatientID") == [DOE_JOHN.id]
    assert patients(rix_server, PatientID="SYN-0?") == []


def test_person_names_match_case_insensitively(rix_server: RixServer) -> None:
    assert values(patients(rix_server, PatientName="doe^john"), "PatientID") == [DOE_JOHN.id]
    assert values(patients(rix_server, PatientName="sMITH^*"), "PatientID") == [SMITH.id]


def test_other_keys_match_case_sensitively(rix_server: RixServer) -> None:
    assert patients(rix_server, PatientID="syn-001") == []


def test_birth_date_range_includes_both_bounds(rix_server: RixServer) -> None:
    found = patients(rix_server, PatientID=ALL_SYNTHETIC, PatientBirthDate="19700101-19800515")
    assert values(found, "PatientID") == [DOE_JOHN.id, DOE_JANE.id, GREEK.id]


def test_sequence_matching_on_other_patient_ids_sequence(rix_server: RixServer) -> None:
    item = Dataset()
    item.PatientID = "OTHER-B"
    (found,) = patients(rix_server, OtherPatientIDsSequence=[item], PatientID="")
    assert str(found.PatientID) == DOE_JOHN.id
    assert sorted(str(i.PatientID) for i in found.OtherPatientIDsSequence) == list(
        DOE_JOHN.other_ids
    )


def test_sequence_matching_applies_wildcards_inside_the_item(rix_server: RixServer) -> None:
    """PS3.4 C.2.2.2.6: each key of the item is matched by its own matching type."""
    item = Dataset()
    item.PatientID = "OTHER-?"
    found = patients(rix_server, OtherPatientIDsSequence=[item], PatientID="")
    assert values(found, "PatientID") == [DOE_JOHN.id, SMITH.id]


def test_empty_sequence_item_is_universal_and_returns_the_items(rix_server: RixServer) -> None:
    item = Dataset()
    item.PatientID = ""
    item.IssuerOfPatientID = ""
    (found,) = patients(rix_server, PatientID=SMITH.id, OtherPatientIDsSequence=[item])
    (returned,) = found.OtherPatientIDsSequence
    assert returned.PatientID == "OTHER-C"
    assert "IssuerOfPatientID" in returned  # asked for, so returned (PS3.4 C.2.2.1.2)


def test_unique_key_of_the_level_is_returned_unasked(rix_server: RixServer) -> None:
    (found,) = find(rix_server, "SERIES", StudyInstanceUID=S4.uid, Modality="US")
    assert str(found.SeriesInstanceUID) == S4.series_uid(0)


def test_patient_related_counts(rix_server: RixServer) -> None:
    (found,) = patients(
        rix_server,
        PatientID=DOE_JOHN.id,
        NumberOfPatientRelatedStudies="",
        NumberOfPatientRelatedSeries="",
        NumberOfPatientRelatedInstances="",
    )
    assert (
        int(found.NumberOfPatientRelatedStudies),
        int(found.NumberOfPatientRelatedSeries),
        int(found.NumberOfPatientRelatedInstances),
    ) == (2, 3, 6)


def test_unsupported_key_is_returned_empty(rix_server: RixServer) -> None:
    """PS3.4 C.2.2.1.2: a key the SCP does not support comes back zero-length."""
    (found,) = patients(rix_server, PatientID=SMITH.id, PatientComments="anything")
    assert "PatientComments" in found
    assert found.PatientComments in ("", None)


# -- STUDY level -------------------------------------------------------------------------


def studies(server: RixServer, **keys: Any) -> list[str]:
    """Study Instance UIDs of the matches, the synthetic patients only."""
    keys.setdefault("PatientID", ALL_SYNTHETIC)
    return values(find(server, "STUDY", **keys), "StudyInstanceUID")


def test_study_date_range_between_two_dates(rix_server: RixServer) -> None:
    assert studies(rix_server, StudyDate="20240101-20240131") == study_uids(S1, S5)


def test_study_date_range_up_to_a_date(rix_server: RixServer) -> None:
    assert studies(rix_server, StudyDate="-20231231") == study_uids(S3)


def test_study_date_range_from_a_date(rix_server: RixServer) -> None:
    assert studies(rix_server, StudyDate="20240301-") == study_uids(S4, S6, S7)


def test_study_date_single_value(rix_server: RixServer) -> None:
    assert studies(rix_server, StudyDate="20240110") == study_uids(S1, S5)


def test_study_time_range(rix_server: RixServer) -> None:
    assert studies(rix_server, StudyTime="080000-092000") == study_uids(S1, S6, S7)


def test_study_time_open_ranges(rix_server: RixServer) -> None:
    assert studies(rix_server, StudyTime="-083000") == study_uids(S1)
    assert studies(rix_server, StudyTime="141500-") == study_uids(S2, S3)


def test_date_and_time_ranges_combine(rix_server: RixServer) -> None:
    found = studies(rix_server, StudyDate="20240101-20240131", StudyTime="100000-")
    assert found == study_uids(S5)


def test_list_of_uid_matching(rix_server: RixServer) -> None:
    assert studies(rix_server, StudyInstanceUID=[S1.uid, S3.uid, "1.2.3.4"]) == study_uids(S1, S3)


def test_modalities_in_study_matches_any_series_modality(rix_server: RixServer) -> None:
    (found,) = find(rix_server, "STUDY", PatientID=ALL_SYNTHETIC, ModalitiesInStudy="SR")
    assert str(found.StudyInstanceUID) == S1.uid
    assert sorted(found.ModalitiesInStudy) == ["CT", "SR"]


def test_modalities_in_study_list_matches_either(rix_server: RixServer) -> None:
    assert studies(rix_server, ModalitiesInStudy=["US", "CR"]) == study_uids(S4, S7)


def test_study_related_counts(rix_server: RixServer) -> None:
    (found,) = find(
        rix_server,
        "STUDY",
        StudyInstanceUID=S1.uid,
        NumberOfStudyRelatedSeries="",
        NumberOfStudyRelatedInstances="",
    )
    assert (int(found.NumberOfStudyRelatedSeries), int(found.NumberOfStudyRelatedInstances)) == (
        2,
        4,
    )


def test_study_attributes_are_returned(rix_server: RixServer) -> None:
    (found,) = find(
        rix_server,
        "STUDY",
        AccessionNumber=S2.accession,
        StudyDate="",
        StudyTime="",
        StudyDescription="",
        PatientName="",
        StudyID="",
        ReferringPhysicianName="",
    )
    assert (
        found.StudyDate,
        found.StudyTime,
        found.StudyDescription,
        str(found.PatientName),
        found.StudyID,
        str(found.ReferringPhysicianName),
        found.QueryRetrieveLevel,
    ) == (S2.date, S2.time, S2.description, DOE_JOHN.name, "S2", "Ref^Doctor", "STUDY")


def test_wildcard_on_study_description(rix_server: RixServer) -> None:
    assert studies(rix_server, StudyDescription="CT*") == study_uids(S1, S3, S5)


def test_patient_root_study_level_lists_a_patients_studies(rix_server: RixServer) -> None:
    found = find(
        rix_server, "STUDY", model=scu.PATIENT_ROOT_FIND, PatientID=DOE_JOHN.id, StudyInstanceUID=""
    )
    assert values(found, "StudyInstanceUID") == study_uids(S1, S2)


# -- SERIES and IMAGE levels -------------------------------------------------------------


def test_series_level_lists_the_series_of_a_study_with_counts(rix_server: RixServer) -> None:
    found = find(
        rix_server,
        "SERIES",
        StudyInstanceUID=S1.uid,
        SeriesInstanceUID="",
        Modality="",
        SeriesNumber="",
        NumberOfSeriesRelatedInstances="",
    )
    assert sorted(
        (
            str(m.SeriesInstanceUID),
            m.Modality,
            int(m.SeriesNumber),
            int(m.NumberOfSeriesRelatedInstances),
        )
        for m in found
    ) == sorted([(S1.series_uid(0), "CT", 1, 3), (S1.series_uid(1), "SR", 2, 1)])


def test_series_level_single_value_on_modality(rix_server: RixServer) -> None:
    found = find(
        rix_server, "SERIES", StudyInstanceUID=[s.uid for s in synthetic.STUDIES], Modality="MR"
    )
    assert values(found, "SeriesInstanceUID") == sorted([S2.series_uid(0), S6.series_uid(0)])


def test_image_level_lists_the_instances_of_a_series(rix_server: RixServer) -> None:
    found = find(
        rix_server,
        "IMAGE",
        StudyInstanceUID=S1.uid,
        SeriesInstanceUID=S1.series_uid(0),
        SOPInstanceUID="",
        SOPClassUID="",
        InstanceNumber="",
    )
    assert sorted(
        (int(m.InstanceNumber), str(m.SOPInstanceUID), str(m.SOPClassUID)) for m in found
    ) == [(n, S1.instance_uid(0, n), synthetic.SOP_CLASS["CT"]) for n in (1, 2, 3)]


def test_patient_root_image_level(rix_server: RixServer) -> None:
    found = find(
        rix_server,
        "IMAGE",
        model=scu.PATIENT_ROOT_FIND,
        PatientID=DOE_JANE.id,
        StudyInstanceUID=S3.uid,
        SeriesInstanceUID=S3.series_uid(0),
        SOPInstanceUID="",
    )
    assert values(found, "SOPInstanceUID") == sorted(S3.instance_uid(0, n) for n in (1, 2))


@pytest.mark.parametrize(
    "transfer_syntax",
    ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"],
    ids=["implicit", "explicit-little", "explicit-big"],
)
def test_responses_are_encoded_in_the_negotiated_syntax(
    rix_server: RixServer, transfer_syntax: str
) -> None:
    """Text in ISO_IR 100, numbers (IS) and binary values (US) read back the same in every
    uncompressed syntax the requester may propose alone."""
    query = scu.query(
        "IMAGE",
        "ISO_IR 100",
        PatientID=BUC.id,
        PatientName="",
        SOPInstanceUID="",
        InstanceNumber="",
        Rows=None,
        Columns=None,
        StudyDate="",
    )
    result = scu.find(rix_server.dicom_port, query, transfer_syntax=transfer_syntax)
    assert result.status == 0x0000
    (found,) = result.matches
    assert (
        str(found.PatientName),
        str(found.SOPInstanceUID),
        int(found.InstanceNumber),
        found.Rows,
        found.Columns,
        found.StudyDate,
        found.SpecificCharacterSet,
    ) == (BUC.name, S5.instance_uid(0, 1), 1, 512, 257, S5.date, "ISO_IR 100")


def test_query_without_a_valid_level_fails(rix_server: RixServer) -> None:
    result = scu.find(rix_server.dicom_port, scu.query("WARD", PatientID=DOE_JOHN.id))
    assert result.matches == []
    assert result.status == 0xA900
    assert "QueryRetrieveLevel" in result.error_comment


def test_study_root_has_no_patient_level(rix_server: RixServer) -> None:
    """PS3.4 C.6.2.1: Study Root levels are STUDY, SERIES and IMAGE."""
    result = scu.find(rix_server.dicom_port, scu.query("PATIENT", PatientID=DOE_JOHN.id))
    assert (result.status, result.matches) == (0xA900, [])
    assert "PATIENT" in result.error_comment


# -- DCMTK findscu at every level --------------------------------------------------------


@pytest.mark.parametrize(
    ("study_root", "keys", "returned", "expected"),
    [
        (
            False,
            {"QueryRetrieveLevel": "PATIENT", "PatientID": "SYN-00?", "PatientName": "doe*"},
            "PatientID",
            [DOE_JOHN.id, DOE_JANE.id],
        ),
        (
            False,
            {"QueryRetrieveLevel": "STUDY", "PatientID": SMITH.id, "StudyInstanceUID": ""},
            "StudyInstanceUID",
            [S4.uid],
        ),
        (
            True,
            {
                "QueryRetrieveLevel": "STUDY",
                "PatientID": ALL_SYNTHETIC,
                "StudyDate": "20240101-20240131",
                "StudyInstanceUID": "",
            },
            "StudyInstanceUID",
            study_uids(S1, S5),
        ),
        (
            True,
            {
                "QueryRetrieveLevel": "SERIES",
                "StudyInstanceUID": S1.uid,
                "Modality": "",
                "SeriesInstanceUID": "",
            },
            "Modality",
            ["CT", "SR"],
        ),
        (
            True,
            {
                "QueryRetrieveLevel": "IMAGE",
                "StudyInstanceUID": S2.uid,
                "SeriesInstanceUID": S2.series_uid(0),
                "SOPInstanceUID": "",
            },
            "SOPInstanceUID",
            sorted(S2.instance_uid(0, n) for n in (1, 2)),
        ),
    ],
    ids=[
        "patient-root-patient",
        "patient-root-study",
        "study-root-study",
        "study-root-series",
        "study-root-image",
    ],
)
def test_findscu_finds_at_every_level(
    rix_server: RixServer,
    tmp_path: Path,
    study_root: bool,
    keys: dict[str, str],
    returned: str,
    expected: list[str],
) -> None:
    found = dcmtk.findscu(rix_server.dicom_port, dict(keys), tmp_path, study_root=study_root)
    assert values(found, returned) == expected
    assert {m.QueryRetrieveLevel for m in found} == {keys["QueryRetrieveLevel"]}


def test_findscu_sees_study_related_counts(rix_server: RixServer, tmp_path: Path) -> None:
    keys = {
        "QueryRetrieveLevel": "STUDY",
        "StudyInstanceUID": S1.uid,
        "NumberOfStudyRelatedInstances": "",
        "ModalitiesInStudy": "",
    }
    (found,) = dcmtk.findscu(rix_server.dicom_port, dict(keys), tmp_path)
    assert (int(found.NumberOfStudyRelatedInstances), list(found.ModalitiesInStudy)) == (
        4,
        ["CT", "SR"],
    )


# -- Character sets ----------------------------------------------------------------------

SYNTHETIC_NAMES = [
    (BUC, "ISO_IR 100"),
    (BUC, "ISO_IR 192"),
    (GREEK, "ISO_IR 192"),
    (JAPANESE, "ISO_IR 192"),
]
CODECS = {"ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}


@pytest.mark.parametrize(
    ("patient", "charset"), SYNTHETIC_NAMES, ids=["latin1-100", "latin1-192", "greek", "japanese"]
)
def test_findscu_finds_a_name_sent_in_the_query_charset(
    rix_server: RixServer, tmp_path: Path, patient: synthetic.Patient, charset: str
) -> None:
    keys: dict[str, dcmtk.Arg] = {
        "QueryRetrieveLevel": "PATIENT",
        "SpecificCharacterSet": charset,
        "PatientName": patient.name.encode(CODECS[charset]),
        "PatientID": "",
    }
    (found,) = dcmtk.findscu(rix_server.dicom_port, keys, tmp_path, study_root=False)
    assert (str(found.PatientID), str(found.PatientName)) == (patient.id, patient.name)


@pytest.mark.parametrize(
    ("patient", "charset"), SYNTHETIC_NAMES, ids=["latin1-100", "latin1-192", "greek", "japanese"]
)
def test_name_wildcard_matches_case_insensitively_beyond_ascii(
    rix_server: RixServer, patient: synthetic.Patient, charset: str
) -> None:
    family = patient.name.split("^")[0]
    pattern = family.lower()[:-1] + "*"  # "buc*", "διονυσιο*", ...
    found = patients(rix_server, PatientName=pattern, SpecificCharacterSet=charset, PatientID="")
    assert [(str(m.PatientID), str(m.PatientName)) for m in found] == [(patient.id, patient.name)]


def test_answer_is_in_the_query_charset_when_it_can_carry_the_name(
    rix_server: RixServer,
) -> None:
    (found,) = patients(
        rix_server, PatientID=BUC.id, PatientName="", SpecificCharacterSet="ISO_IR 100"
    )
    assert (found.SpecificCharacterSet, str(found.PatientName)) == ("ISO_IR 100", BUC.name)


def test_answer_falls_back_to_utf8_for_names_latin1_cannot_carry(rix_server: RixServer) -> None:
    (found,) = patients(
        rix_server, PatientID=GREEK.id, PatientName="", SpecificCharacterSet="ISO_IR 100"
    )
    assert (found.SpecificCharacterSet, str(found.PatientName)) == ("ISO_IR 192", GREEK.name)


def charset_files() -> list[tuple[str, str, list[str], bytes, str]]:
    """(file, Patient ID, Specific Character Set, raw encoded Patient Name, decoded name)."""
    out = []
    for f in corpus.readable():
        if not f.name.startswith("charset_files/"):
            continue
        ds = pydicom.dcmread(f.path, stop_before_pixels=True)
        if "PatientName" not in ds or "PatientID" not in ds:
            continue
        charset = ds.get("SpecificCharacterSet", "")
        charsets = [charset] if isinstance(charset, str) else list(charset)
        raw = ds.get_item("PatientName").value
        out.append((f.name, str(ds.PatientID), charsets, raw, str(ds.PatientName)))
    return out


CHARSET_FILES = charset_files()


def test_pydicom_charset_files_cover_many_charsets() -> None:
    charsets = {c for _n, _id, cs, _raw, _name in CHARSET_FILES for c in cs}
    assert len(CHARSET_FILES) >= 14
    assert {"ISO_IR 100", "ISO_IR 126", "ISO 2022 IR 87", "ISO_IR 192", "GB18030"} <= charsets


@pytest.mark.usefixtures("corpus_store")
@pytest.mark.parametrize(
    ("name", "patient_id", "charsets", "raw", "decoded"),
    CHARSET_FILES,
    ids=[c[0].split("/")[-1] for c in CHARSET_FILES],
)
def test_findscu_finds_names_of_pydicom_charset_files_in_their_own_charset(
    rix_server: RixServer,
    tmp_path: Path,
    name: str,
    patient_id: str,
    charsets: list[str],
    raw: bytes,
    decoded: str,
) -> None:
    keys: dict[str, dcmtk.Arg] = {
        "QueryRetrieveLevel": "PATIENT",
        "SpecificCharacterSet": "\\".join(charsets),
        "PatientName": raw.rstrip(b" "),
        "PatientID": "",
    }
    found = dcmtk.findscu(rix_server.dicom_port, keys, tmp_path, study_root=False)
    assert (patient_id, decoded) in {(str(m.PatientID), str(m.PatientName)) for m in found}


@pytest.mark.usefixtures("corpus_store")
@pytest.mark.parametrize(
    ("name", "patient_id", "charsets", "raw", "decoded"),
    CHARSET_FILES,
    ids=[c[0].split("/")[-1] for c in CHARSET_FILES],
)
def test_names_of_pydicom_charset_files_are_found_in_utf8(
    rix_server: RixServer,
    name: str,
    patient_id: str,
    charsets: list[str],
    raw: bytes,
    decoded: str,
) -> None:
    found = patients(
        rix_server, PatientName=decoded, PatientID="", SpecificCharacterSet="ISO_IR 192"
    )
    assert (patient_id, decoded) in {(str(m.PatientID), str(m.PatientName)) for m in found}
