"""Query matching (PS3.4 C.2.2.2) as SQL over the index, shared by C-FIND, C-MOVE/C-GET.

A ``Match`` is one key of an identifier with its matching type worked out: universal
(empty value, returned but not filtered), single value, list of UIDs, wildcard (``*`` and
``?``), range (DA, TM, DT) or sequence (Other Patient IDs Sequence). Person names match
case-insensitively, everything else case-sensitively, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    exists,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.sql.expression import ColumnClause

from rix.errors import InvalidQuery
from rix.index.attributes import BY_KEYWORD, LEVEL_ORDER, Attribute, Level
from rix.index.records import normalise_time
from rix.index.schema import instances, patients, series, studies, trusts

TABLES = {
    Level.PATIENT: patients,
    Level.STUDY: studies,
    Level.SERIES: series,
    Level.IMAGE: instances,
}
MAX_VALUES = 100  # each non-UID value is an OR term; SQLite caps expression depth
MAX_VALUE = 1024  # a longer single value cannot match anything indexed; refuse it early


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    attribute: Attribute
    value: str  # as sent; '' means universal matching
    fuzzy: bool = False  # QIDO fuzzymatching: person names match any name component

    @property
    def is_universal(self) -> bool:
        return self.value in ("", "*")


def levels_down_to(level: Level) -> tuple[Level, ...]:
    return LEVEL_ORDER[: LEVEL_ORDER.index(level) + 1]


def column(attr: Attribute) -> ColumnClause[Any]:
    table = TABLES[attr.level]
    name = attr.column + "_ci" if attr.vr == "PN" else attr.column
    return table.c[name]  # type: ignore[no-any-return]


def base_select(level: Level, columns: Sequence[Any]) -> Select[Any]:
    """Rows of ``level`` joined to every level above it."""
    query = select(*columns).select_from(patients)
    if level in (Level.STUDY, Level.SERIES, Level.IMAGE):
        query = query.join(studies, studies.c.patient_pk == patients.c.id)
    if level in (Level.SERIES, Level.IMAGE):
        query = query.join(series, series.c.study_pk == studies.c.id)
    if level is Level.IMAGE:
        query = query.join(instances, instances.c.series_pk == series.c.id)
    return query.order_by(TABLES[level].c.id)


def condition(match: Match) -> ColumnElement[bool]:
    """The SQL for one key; PS3.4 C.2.2.2.1 to C.2.2.2.6."""
    attr, value = match.attribute, match.value
    # per value: a List of UID (C.2.2.2.2) may hold any number of UIDs
    values_sent = value.split("\\")
    if any(len(v) > MAX_VALUE for v in values_sent):
        raise InvalidQuery(f"{attr.keyword}: value longer than {MAX_VALUE} characters")
    if attr.vr != "UI" and len(values_sent) > MAX_VALUES:
        raise InvalidQuery(f"{attr.keyword}: at most {MAX_VALUES} values, got {len(values_sent)}")
    col = column(attr)
    if attr.multi:
        return or_(*(_in_list(col, v) for v in value.split("\\") if v))
    if attr.vr == "UI":
        return col.in_([v.strip("\x00 ") for v in value.split("\\")])
    if attr.vr in ("DA", "TM", "DT"):
        return or_(*(_date_like(attr, col, v.strip()) for v in value.split("\\")))
    if attr.vr in ("IS", "US"):
        return col.in_([_integer(attr, v) for v in value.split("\\")])
    values = value.split("\\") if attr.vr == "CS" else [value]
    if attr.vr == "PN":
        values = [v.upper() for v in values]
        if match.fuzzy:
            return or_(*(_fuzzy_name(col, v) for v in values))
    return or_(*(_text(col, v) for v in values))


def _integer(attr: Attribute, value: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise InvalidQuery(f"{attr.keyword}: {value[:40]!r} is not an integer") from None
    if not -(2**31) <= number < 2**32:  # IS and US both fit; SQL integers overflow past 2**63
        raise InvalidQuery(f"{attr.keyword}: {number} is out of range")
    return number


def _text(col: ColumnClause[Any], value: str) -> ColumnElement[bool]:
    value = value.rstrip(" ")
    if "*" not in value and "?" not in value:
        return col == value
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = escaped.replace("*", "%").replace("?", "_")
    return col.like(pattern, escape="\\")


def text_matches(col: ColumnClause[Any], value: str) -> ColumnElement[bool]:
    """Single value or wildcard matching (PS3.4 C.2.2.2.1, C.2.2.2.4) on any column: for
    query models over other tables (the Modality Worklist over orders)."""
    return _text(col, value)


def _fuzzy_name(col: ColumnClause[Any], value: str) -> ColumnElement[bool]:
    """A name component starting with the value, in any position (PS3.18 8.3.4.6 leaves
    the algorithm to the server; this is what people typing part of a name expect)."""
    stem = value.rstrip("*").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    stem = stem.replace("*", "%").replace("?", "_")
    return or_(*(col.like(prefix + stem + "%", escape="\\") for prefix in ("", "%^", "% ", "%=")))


def _in_list(col: ColumnClause[Any], value: str) -> ColumnElement[bool]:
    """Match one value, wildcards allowed, against any item of a backslash-joined list.

    A wildcard can also span the separator of two items (``A*D`` matches ``AB\\CD``):
    LIKE has no "any character but one"; such false matches need a ``*`` or ``?`` query.
    """
    esc = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    esc = esc.replace("*", "%").replace("?", "_")
    whole = col.like(esc, escape="\\") if esc != value else col == value
    return or_(
        whole,
        col.like(esc + "\\\\%", escape="\\"),
        col.like("%\\\\" + esc, escape="\\"),
        col.like("%\\\\" + esc + "\\\\%", escape="\\"),
    )


def _bound(attr: Attribute, value: str, *, upper: bool) -> str:
    if attr.vr == "TM":
        value = normalise_time(value) if not upper else _upper_time(value)
    elif attr.vr == "DA":
        value = value.replace(".", "")  # ACR-NEMA dates
        if upper:
            value = value + "\uffff"  # a date bound includes the whole day
    elif upper:
        value = value + "\uffff"
    return value


def _upper_time(value: str) -> str:
    value = value.replace(":", "")
    whole, _, frac = value.partition(".")
    whole = whole + "235959"[len(whole) :] if len(whole) < 6 else whole[:6]
    return f"{whole}.{frac}\uffff" if frac else whole + ".\uffff"


def _date_like(attr: Attribute, col: ColumnClause[Any], value: str) -> ColumnElement[bool]:
    if "-" not in value:
        if attr.vr == "TM":
            return col == normalise_time(value)
        return col == value.replace(".", "")
    low, _, high = value.partition("-")
    if not low and not high:
        raise InvalidQuery(f"{attr.keyword}: a range needs at least one bound")
    parts: list[ColumnElement[bool]] = [col != ""]
    if low:
        parts.append(col >= _bound(attr, low, upper=False))
    if high:
        parts.append(col <= _bound(attr, high, upper=True))
    return and_(*parts)


def _filtered(
    level: Level,
    columns: Sequence[Any],
    matches: Sequence[Match],
    scope: ColumnElement[bool],
) -> Select[Any]:
    allowed = set(levels_down_to(level))
    query = base_select(level, columns)
    for match in matches:
        if match.attribute.level not in allowed:
            raise InvalidQuery(
                f"{match.attribute.keyword} is a {match.attribute.level.value}-level key; "
                f"the query is at {level.value} level"
            )
        if not match.is_universal:
            query = query.where(condition(match))
    if level is Level.PATIENT:
        scope = _with_a_visible_study(scope)
    return query.where(scope)


def _with_a_visible_study(scope: ColumnElement[bool]) -> ColumnElement[bool]:
    """At patient level there are no studies in the FROM: a patient passes when one of its
    studies does. The scope reads ``studies`` alone (rix.access), so its own EXISTS terms
    bind to this subquery's studies row, and the probe uses ix_studies_patient_pk. A scope
    of everything (``true()``, a singleton) stays everything: patient records without a
    study yet (an HL7 feed's) included."""
    if scope is true():
        return scope
    return exists(select(studies.c.id).where(studies.c.patient_pk == patients.c.id, scope))


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredInstance:
    sop_uid: str
    sop_class_uid: str
    transfer_syntax: str
    storage_key: str
    sha256: str
    study_uid: str
    patient_pk: int  # for the audit trail and identity on the way out (rix.region)
    size: int  # of the stored file: a download's length is known before it starts


def stored_instances(
    conn: Connection, matches: Sequence[Match], *, scope: ColumnElement[bool]
) -> list[StoredInstance]:
    """Instances to retrieve (C-MOVE, C-GET, WADO), in series then instance order."""
    columns = [
        instances.c.sop_uid,
        instances.c.sop_class_uid,
        instances.c.transfer_syntax,
        instances.c.storage_key,
        instances.c.sha256,
        studies.c.study_uid,
        patients.c.id.label("patient_pk"),
        instances.c.size,
    ]
    query = _filtered(Level.IMAGE, columns, matches, scope).order_by(None)
    query = query.order_by(
        series.c.series_number, series.c.id, instances.c.instance_number, instances.c.id
    )
    return [StoredInstance(**row._mapping) for row in conn.execute(query)]


def find(
    conn: Connection,
    level: Level,
    matches: Sequence[Match],
    *,
    limit: int | None = None,
    offset: int = 0,
    scope: ColumnElement[bool],
    patient_pks: Sequence[int] | None = None,
) -> Iterator[dict[str, Any]]:
    """Rows of ``level`` matching every key; each row maps keyword → stored value.

    ``scope`` is the caller's access filter (``rix.access.scope``); every read takes one
    so no front end can forget it. ``patient_pks`` limits the rows to these patient
    records (a person's, for the viewer's regional QIDO).
    """
    allowed = set(levels_down_to(level))
    columns: list[Any] = []
    for attr in BY_KEYWORD.values():
        if attr.level in allowed:
            columns.append(TABLES[attr.level].c[attr.column].label(attr.keyword))
    query = _filtered(level, columns, matches, scope)
    if patient_pks is not None:
        query = query.where(patients.c.id.in_(list(patient_pks)))
    if limit is not None:
        query = query.limit(limit).offset(offset)
    for row in conn.execute(query):
        yield dict(row._mapping)


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientRef:
    pk: int
    issuer: str
    patient_id: str
    nhs_number: str
    person_pk: int | None

    @property
    def ref(self) -> str:
        return f"{self.issuer}/{self.patient_id}"


_PATIENT_REF = (
    patients.c.id,
    patients.c.issuer,
    patients.c.patient_id,
    patients.c.nhs_number,
    patients.c.person_pk,
)


def patients_by_pk(conn: Connection, pks: Iterable[int]) -> dict[int, PatientRef]:
    """Who the given patient records are (the audit trail, identity on the way out)."""
    wanted = sorted(set(pks))
    if not wanted:
        return {}
    rows = conn.execute(select(*_PATIENT_REF).where(patients.c.id.in_(wanted)))
    return {r.id: _patient_ref(r) for r in rows}


def patients_by_ref(
    conn: Connection, refs: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], PatientRef]:
    """The records that query answers name by (issuer, patient ID): who a query or a
    refused retrieve touched, for the audit trail. A few hundred pairs per statement."""
    wanted = sorted(set(refs))
    out: dict[tuple[str, str], PatientRef] = {}
    for start in range(0, len(wanted), 400):
        pairs = tuple_(patients.c.issuer, patients.c.patient_id).in_(wanted[start : start + 400])
        for row in conn.execute(select(*_PATIENT_REF).where(pairs)):
            out[(row.issuer, row.patient_id)] = _patient_ref(row)
    return out


def records_of_person(conn: Connection, person_pk: int) -> list[PatientRef]:
    """A person's records, in the order they were first seen."""
    rows = conn.execute(
        select(*_PATIENT_REF).where(patients.c.person_pk == person_pk).order_by(patients.c.id)
    )
    return [_patient_ref(r) for r in rows]


def _patient_ref(row: Any) -> PatientRef:
    return PatientRef(
        pk=row.id,
        issuer=row.issuer,
        patient_id=row.patient_id,
        nhs_number=row.nhs_number,
        person_pk=row.person_pk,
    )


def patient_of_study(
    conn: Connection, study_uid: str, *, scope: ColumnElement[bool]
) -> PatientRef | None:
    """The patient of a study the scope lets through (None: no such study, or hidden)."""
    query = (
        select(*_PATIENT_REF)
        .select_from(patients)
        .join(studies, studies.c.patient_pk == patients.c.id)
        .where(studies.c.study_uid == study_uid, scope)
    )
    row = conn.execute(query).first()
    return None if row is None else _patient_ref(row)


def studies_of_records(
    conn: Connection, patient_pks: Sequence[int], *, scope: ColumnElement[bool]
) -> list[dict[str, Any]]:
    """The regional timeline: every study of a person's linked records, newest first."""
    query = (
        select(
            studies.c.study_uid,
            studies.c.study_date,
            studies.c.study_time,
            studies.c.study_description,
            studies.c.accession_number,
            studies.c.modalities,
            studies.c.num_series,
            studies.c.num_instances,
            studies.c.trust_pk,
            patients.c.issuer,
            patients.c.patient_id,
        )
        .select_from(patients)
        .join(studies, studies.c.patient_pk == patients.c.id)
        .where(patients.c.id.in_(list(patient_pks)), scope)
        .order_by(studies.c.study_date.desc(), studies.c.study_time.desc(), studies.c.id)
    )
    return [dict(r._mapping) for r in conn.execute(query)]


def studies_beside(
    conn: Connection, study_uid: str, *, scope: ColumnElement[bool], limit: int = 100
) -> list[dict[str, Any]]:
    """The studies of the patient of ``study_uid`` (its person's, every linked record;
    its record's when it has no person) that the scope lets through, newest first, with
    the code of the trust holding each: what a second opinion may share beside it."""
    first = conn.execute(
        select(studies.c.person_pk, studies.c.patient_pk).where(studies.c.study_uid == study_uid)
    ).first()
    if first is None:
        return []
    same = (
        studies.c.person_pk == first.person_pk
        if first.person_pk is not None
        else studies.c.patient_pk == first.patient_pk
    )
    query = (
        select(
            studies.c.study_uid,
            studies.c.study_date,
            studies.c.study_description,
            studies.c.modalities,
            trusts.c.code.label("trust"),
        )
        .outerjoin(trusts, trusts.c.id == studies.c.trust_pk)
        .where(same, scope)
        .order_by(studies.c.study_date.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in conn.execute(query)]


def trust_of_study(conn: Connection, study_uid: str) -> int | None:
    """The trust that holds a study (the owner the access policy filters on)."""
    found: int | None = conn.execute(
        select(studies.c.trust_pk).where(studies.c.study_uid == study_uid)
    ).scalar()
    return found
