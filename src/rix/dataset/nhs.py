"""NHS numbers: the one identifier shared by every trust in England.

An NHS number is ten digits whose last is a modulus 11 check digit (NHS Data Dictionary,
"NHS Number"). rix finds it in PatientID when the issuer is the NHS, or in an item of
Other Patient IDs Sequence (0010,1002) issued by the NHS; HL7 ADT can supply it later.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

from rix.dataset import parsing

# What modalities and PACS put in Issuer of Patient ID for the NHS number; the OID is
# the NHS number's in HL7 (2.16.840.1.113883.2.1.4.1).
NHS_ISSUERS = frozenset({"NHS", "NHSN", "NHS NUMBER", "NHSNUMBER", "2.16.840.1.113883.2.1.4.1"})


def is_nhs_issuer(issuer: str) -> bool:
    return issuer.strip().upper() in NHS_ISSUERS


def normalise(value: str) -> str:
    """Digits only: people write NHS numbers as ``943 476 5919``."""
    return "".join(value.split()).replace("-", "")


def is_valid(value: str) -> bool:
    """Ten digits with a correct modulus 11 check digit; a remainder giving 10 is invalid."""
    number = normalise(value)
    if len(number) != 10 or not number.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(number[9])


@dataclass(frozen=True, slots=True, kw_only=True)
class Found:
    """An NHS number as found in a dataset, valid or not ('' when there is none)."""

    value: str
    valid: bool


def in_dataset(ds: Dataset) -> Found:
    """The NHS number a dataset carries, from PatientID or Other Patient IDs Sequence."""
    if is_nhs_issuer(_issuer(ds)):
        value = normalise(parsing.text(ds, "PatientID"))
        if value:
            return Found(value=value, valid=is_valid(value))
    for item in ds.get("OtherPatientIDsSequence", None) or []:
        if is_nhs_issuer(_issuer(item)):
            value = normalise(parsing.text(item, "PatientID"))
            if value:
                return Found(value=value, valid=is_valid(value))
    return Found(value="", valid=False)


def _issuer(ds: Dataset) -> str:
    issuer = parsing.text(ds, "IssuerOfPatientID")
    if issuer:
        return issuer
    for item in ds.get("IssuerOfPatientIDQualifiersSequence", None) or []:
        universal = parsing.text(item, "UniversalEntityID")
        if universal:
            return universal
    return ""
