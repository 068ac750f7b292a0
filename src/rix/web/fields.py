"""Typed inputs shared by the API's bodies and the portal's forms, checked by pydantic
before a route runs: a malformed value is a 422 with its reason, never a database error;
and ``Answer``, the base of the API's answers.

No control characters in any text: they are never meaningful here, and PostgreSQL refuses
NUL outright (a 400 with a reason, not a 500).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path as FastApiPath
from pydantic import BaseModel, ConfigDict, StringConstraints

from rix.errors import Conflict

PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
Code = Annotated[str, StringConstraints(pattern=PRINTABLE, min_length=1, max_length=16)]
Name = Annotated[str, StringConstraints(pattern=PRINTABLE, max_length=128)]
Text = Annotated[str, StringConstraints(pattern=PRINTABLE, max_length=1024)]
NhsNumber = Annotated[str, StringConstraints(pattern=r"^[0-9 -]{0,16}$")]
PatientRef = Annotated[str, StringConstraints(pattern=PRINTABLE, max_length=130)]
# a row id: PostgreSQL's integer, so an out-of-range id is a 422, not a database error
RowId = Annotated[int, FastApiPath(ge=1, le=2**31 - 1)]


class PatientNamed(BaseModel):
    """A patient by NHS number, or one record as ``issuer/patient ID``."""

    nhs_number: NhsNumber = ""
    patient: PatientRef = ""

    def check(self) -> None:
        if not (self.nhs_number or self.patient):
            raise Conflict("name the patient by nhs_number or patient (issuer/ID)")


class Answer(BaseModel):
    """An ``/api`` answer as ``/openapi.json`` declares it: exactly these fields. A field a
    route adds without declaring it is a 500 in the tests, never a silent change of the
    contract (``tests/web/test_openapi.py`` checks every route against its schema)."""

    model_config = ConfigDict(extra="forbid")
