"""The index's tables: derived from the object store, rebuilt by ``rix reindex``.

Column names follow ``index.attributes``; PN columns have an upper-cased ``_ci`` twin so
case-insensitive name matching (what users expect, and what Orthanc does) can use an
index on both SQLite and PostgreSQL. Patients are keyed by (issuer, ID), never by the bare
PatientID: two trusts' hospital numbers collide.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _s(name: str, length: int = 64) -> Column[str]:
    return Column(name, String(length), nullable=False, server_default="")


patients = Table(
    "patients",
    metadata,
    Column("id", Integer, primary_key=True),
    _s("patient_id"),
    _s("issuer"),
    Column("patient_name", Text, nullable=False, server_default=""),
    Column("patient_name_ci", Text, nullable=False, server_default=""),
    _s("birth_date", 16),
    _s("birth_time", 16),
    _s("sex", 16),
    Column("other_patient_ids", Text, nullable=False, server_default=""),
    Column("num_studies", Integer, nullable=False, server_default="0"),
    Column("num_series", Integer, nullable=False, server_default="0"),
    Column("num_instances", Integer, nullable=False, server_default="0"),
    UniqueConstraint("issuer", "patient_id", name="uq_patients_issuer_patient_id"),
)
Index("ix_patients_name_ci", patients.c.patient_name_ci)
Index("ix_patients_birth_date", patients.c.birth_date)
Index("ix_patients_patient_id", patients.c.patient_id)

studies = Table(
    "studies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("study_uid", String(64), nullable=False, unique=True),
    Column("patient_pk", Integer, ForeignKey("patients.id"), nullable=False),
    _s("study_date", 16),
    _s("study_time", 32),
    _s("accession_number"),
    _s("study_id"),
    Column("study_description", Text, nullable=False, server_default=""),
    Column("referring_physician_name", Text, nullable=False, server_default=""),
    Column("referring_physician_name_ci", Text, nullable=False, server_default=""),
    _s("patient_age", 8),
    Column("modalities", Text, nullable=False, server_default=""),
    Column("sop_classes", Text, nullable=False, server_default=""),
    Column("num_series", Integer, nullable=False, server_default="0"),
    Column("num_instances", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_studies_patient_pk", studies.c.patient_pk)
Index("ix_studies_study_date", studies.c.study_date)
Index("ix_studies_accession_number", studies.c.accession_number)
Index("ix_studies_updated_at", studies.c.updated_at)

series = Table(
    "series",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("series_uid", String(64), nullable=False, unique=True),
    Column("study_pk", Integer, ForeignKey("studies.id"), nullable=False),
    _s("modality", 16),
    Column("series_number", Integer),
    Column("series_description", Text, nullable=False, server_default=""),
    _s("series_date", 16),
    _s("series_time", 32),
    _s("body_part", 16),
    _s("laterality", 16),
    Column("protocol_name", Text, nullable=False, server_default=""),
    _s("station_name"),
    Column("institution_name", Text, nullable=False, server_default=""),
    _s("pps_start_date", 16),
    _s("pps_start_time", 32),
    Column("num_instances", Integer, nullable=False, server_default="0"),
    Column("updated_at", Float, nullable=False),
)
Index("ix_series_study_pk", series.c.study_pk)
Index("ix_series_modality", series.c.modality)

instances = Table(
    "instances",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sop_uid", String(64), nullable=False, unique=True),
    Column("series_pk", Integer, ForeignKey("series.id"), nullable=False),
    Column("sop_class_uid", String(64), nullable=False),
    Column("instance_number", Integer),
    _s("content_date", 16),
    _s("content_time", 32),
    _s("acquisition_datetime", 32),
    Column("number_of_frames", Integer),
    Column("rows", Integer),
    Column("columns", Integer),
    Column("transfer_syntax", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("storage_key", Text, nullable=False),
    Column("received_at", Float, nullable=False),
    _s("calling_ae", 16),
    # where the Pixel Data element starts in the stored file (None: no pixels, or deflated)
    Column("pixel_data_offset", BigInteger),
)
Index("ix_instances_series_pk", instances.c.series_pk)

instance_metadata = Table(
    "instance_metadata",
    metadata,
    Column(
        "instance_pk", Integer, ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True
    ),
    # DICOM JSON (PS3.18 F) with BulkDataURIs relative to /dicomweb; built after ingest
    Column("json", Text, nullable=False),
)

instance_conflicts = Table(
    "instance_conflicts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sop_uid", String(64), nullable=False),
    Column("storage_key", Text, nullable=False, unique=True),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("received_at", Float, nullable=False),
    _s("calling_ae", 16),
    Column("policy", String(16), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
)
Index("ix_instance_conflicts_sop_uid", instance_conflicts.c.sop_uid)

application_entities = Table(
    "application_entities",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("title", String(16), nullable=False, unique=True),
    Column("host", String(255), nullable=False),
    Column("port", Integer, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", Float, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("actor", String(128), nullable=False, server_default=""),
    Column("source", String(128), nullable=False, server_default=""),
    _s("study_uid"),
    Column("detail", Text, nullable=False, server_default=""),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
Index("ix_audit_events_at", audit_events.c.at)
