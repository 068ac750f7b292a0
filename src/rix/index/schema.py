"""The index's tables: derived from the object store, rebuilt by ``rix reindex``.

Column names follow ``index.attributes``; PN columns have an upper-cased ``_ci`` twin so
case-insensitive name matching (what users expect, and what Orthanc does) can use an
index on both SQLite and PostgreSQL. Patients are keyed by (issuer, ID), never by the bare
PatientID: two trusts' hospital numbers collide.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
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


def short_text(name: str, length: int = 64) -> Column[str]:
    """A text column that is never NULL: DICOM leaves attributes empty, SQL matches ""."""
    return Column(name, String(length), nullable=False, server_default="")


patients = Table(
    "patients",
    metadata,
    Column("id", Integer, primary_key=True),
    short_text("patient_id"),
    short_text("issuer"),
    Column("patient_name", Text, nullable=False, server_default=""),
    Column("patient_name_ci", Text, nullable=False, server_default=""),
    short_text("birth_date", 16),
    short_text("birth_time", 16),
    short_text("sex", 16),
    Column("other_patient_ids", Text, nullable=False, server_default=""),
    Column("num_studies", Integer, nullable=False, server_default="0"),
    Column("num_series", Integer, nullable=False, server_default="0"),
    Column("num_instances", Integer, nullable=False, server_default="0"),
    # the region (rix.region): the issuer names the trust whose record this is
    short_text("nhs_number", 16),  # as found; valid or not (see mpi_reviews)
    Column("person_pk", Integer, ForeignKey("persons.id")),
    short_text("link_state", 16),  # '', auto, manual, unlinked (by hand: never re-linked), review
    UniqueConstraint("issuer", "patient_id", name="uq_patients_issuer_patient_id"),
)
Index("ix_patients_name_ci", patients.c.patient_name_ci)
Index("ix_patients_birth_date", patients.c.birth_date)
Index("ix_patients_patient_id", patients.c.patient_id)
Index("ix_patients_person_pk", patients.c.person_pk)
Index("ix_patients_nhs_number", patients.c.nhs_number)

studies = Table(
    "studies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("study_uid", String(64), nullable=False, unique=True),
    Column("patient_pk", Integer, ForeignKey("patients.id"), nullable=False),
    short_text("study_date", 16),
    short_text("study_time", 32),
    short_text("accession_number"),
    short_text("study_id"),
    Column("study_description", Text, nullable=False, server_default=""),
    Column("referring_physician_name", Text, nullable=False, server_default=""),
    Column("referring_physician_name_ci", Text, nullable=False, server_default=""),
    short_text("patient_age", 8),
    Column("modalities", Text, nullable=False, server_default=""),
    Column("sop_classes", Text, nullable=False, server_default=""),
    Column("num_series", Integer, nullable=False, server_default="0"),
    Column("num_instances", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # the trust that sent the study's first instance: what the access policy filters on
    Column("trust_pk", Integer, ForeignKey("trusts.id")),
    # the patient's person (rix.region.mpi keeps it in step), so the access filter reads
    # this table alone and a paged query can walk it in order and stop at its LIMIT
    Column("person_pk", Integer, ForeignKey("persons.id")),
)
Index("ix_studies_patient_pk", studies.c.patient_pk)
Index("ix_studies_trust_pk", studies.c.trust_pk)
Index("ix_studies_person_pk", studies.c.person_pk)
Index("ix_studies_study_date", studies.c.study_date)
Index("ix_studies_accession_number", studies.c.accession_number)
Index("ix_studies_updated_at", studies.c.updated_at)

series = Table(
    "series",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("series_uid", String(64), nullable=False, unique=True),
    Column("study_pk", Integer, ForeignKey("studies.id"), nullable=False),
    short_text("modality", 16),
    Column("series_number", Integer),
    Column("series_description", Text, nullable=False, server_default=""),
    short_text("series_date", 16),
    short_text("series_time", 32),
    short_text("body_part", 16),
    short_text("laterality", 16),
    Column("protocol_name", Text, nullable=False, server_default=""),
    short_text("station_name"),
    Column("institution_name", Text, nullable=False, server_default=""),
    short_text("pps_start_date", 16),
    short_text("pps_start_time", 32),
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
    short_text("content_date", 16),
    short_text("content_time", 32),
    short_text("acquisition_datetime", 32),
    Column("number_of_frames", Integer),
    Column("rows", Integer),
    Column("columns", Integer),
    Column("transfer_syntax", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("storage_key", Text, nullable=False),
    Column("received_at", Float, nullable=False),
    short_text("calling_ae", 16),
    # where the Pixel Data element starts in the stored file (None: no pixels, or deflated)
    Column("pixel_data_offset", BigInteger),
)
Index("ix_instances_series_pk", instances.c.series_pk)
Index("ix_instances_received_at", instances.c.received_at)  # the status page's ingest rate

instance_metadata = Table(
    "instance_metadata",
    metadata,
    Column(
        "instance_pk", Integer, ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True
    ),
    # DICOM JSON (PS3.18 F) with BulkDataURIs relative to /dicomweb; built after ingest
    Column("json", Text, nullable=False),
    # the HTTP validator: a hash of this document, so a rebuild (an identity correction)
    # changes it although the stored bytes do not
    Column("etag", String(64), nullable=False, server_default=""),
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
    short_text("calling_ae", 16),
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
    Column("trust_pk", Integer, ForeignKey("trusts.id")),  # what it sends belongs to this trust
    # pacs, workstation, modality or other: only those that store are offered for "Send"
    Column("kind", String(16), nullable=False, server_default="pacs"),
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
    short_text("study_uid"),
    Column("detail", Text, nullable=False, server_default=""),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    short_text("trust", 16),  # the actor's trust code
    Column("patient", Text, nullable=False, server_default=""),  # issuer/patient ID
    short_text("nhs_number", 16),
)
Index("ix_audit_events_at", audit_events.c.at)
Index("ix_audit_events_study_uid", audit_events.c.study_uid)
Index("ix_audit_events_nhs_number", audit_events.c.nhs_number)
Index("ix_audit_events_actor", audit_events.c.actor)

audit_export = Table(
    "audit_export",
    metadata,
    # how far each destination has acknowledged the chain: the table itself is the spool
    Column("destination", String(64), primary_key=True),
    Column("last_id", BigInteger, nullable=False),
)

# --- the region: trusts, their sites and users, sharing agreements (rix.region) ---

trusts = Table(
    "trusts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(16), nullable=False, unique=True),
    Column("name", Text, nullable=False, server_default=""),
    # Issuer of Patient ID of the trust's hospital numbers (PS3.3 C.7.1.1)
    Column("issuer", String(64), nullable=False, unique=True),
    # the AE title of the trust's PACS: where transfers and prefetched priors are sent
    short_text("pacs_ae", 16),
    # the trust allows a share link without a PIN (each such share is still audited)
    Column("shares_without_pin", Boolean, nullable=False, server_default="0"),
)

sites = Table(
    "sites",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("trust_pk", Integer, ForeignKey("trusts.id"), nullable=False),
    Column("code", String(16), nullable=False),
    Column("name", Text, nullable=False, server_default=""),
    UniqueConstraint("trust_pk", "code", name="uq_sites_trust_pk_code"),
)

agreements = Table(
    "agreements",
    metadata,
    Column("id", Integer, primary_key=True),
    # stored once per pair, lower trust id first: an agreement shares both ways
    Column("trust_a", Integer, ForeignKey("trusts.id"), nullable=False),
    Column("trust_b", Integer, ForeignKey("trusts.id"), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    # the shared worklist shows the partner's patient names before a claim
    Column("names_before_claim", Boolean, nullable=False, server_default="1"),
    UniqueConstraint("trust_a", "trust_b", name="uq_agreements_trust_a_trust_b"),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(128), nullable=False, unique=True),
    Column("display_name", Text, nullable=False, server_default=""),
    Column("email", Text, nullable=False, server_default=""),  # alerts: share lockouts, opinions
    Column("trust_pk", Integer, ForeignKey("trusts.id")),
    Column("roles", Text, nullable=False, server_default=""),  # comma-separated
    Column("password_hash", Text, nullable=False, server_default=""),  # argon2id; '' = none
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("created_at", Float, nullable=False),
)

credentials = Table(
    "credentials",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_pk", Integer, ForeignKey("users.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # api-token or session
    # SHA-256 of a 256-bit random secret: a fast look-up, and a leaked table reveals nothing
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("label", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float),
    Column("revoked_at", Float),
)
Index("ix_credentials_user_pk", credentials.c.user_pk)

# --- the master patient index (rix.region.mpi) ---

persons = Table(
    "persons",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("nhs_number", String(10), unique=True),  # None: linked by hand without one
    Column("created_at", Float, nullable=False),
)

mpi_reviews = Table(
    "mpi_reviews",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("patient_pk", Integer, ForeignKey("patients.id"), nullable=False),
    Column("person_pk", Integer, ForeignKey("persons.id")),  # the person it might be
    short_text("nhs_number", 16),
    Column("kind", String(32), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    Column("resolved_at", Float),
    Column("resolution", Text, nullable=False, server_default=""),
)
Index("ix_mpi_reviews_patient_pk", mpi_reviews.c.patient_pk)

# --- what the access policy reads (rix.access) ---

relationships = Table(
    "relationships",
    metadata,
    Column("id", Integer, primary_key=True),
    # an order, encounter or referral for the person at this trust
    Column("trust_pk", Integer, ForeignKey("trusts.id"), nullable=False),
    Column("person_pk", Integer, ForeignKey("persons.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("reference", Text, nullable=False, server_default=""),
    Column("recorded_by", String(128), nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float),
)
Index("ix_relationships_trust_pk_person_pk", relationships.c.trust_pk, relationships.c.person_pk)

break_glass = Table(
    "break_glass",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_pk", Integer, ForeignKey("users.id"), nullable=False),
    Column("person_pk", Integer, ForeignKey("persons.id"), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)
Index("ix_break_glass_user_pk_person_pk", break_glass.c.user_pk, break_glass.c.person_pk)


# --- side effects: the durable job table and what routing reads (rix.jobs, rix.routing) ---

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(32), nullable=False),  # a handler in rix.serve.job_handlers
    Column("state", String(16), nullable=False),  # rix.jobs.queue.State
    Column("priority", Integer, nullable=False, server_default="0"),  # higher runs first
    # a pending job with the same key is updated, not added (a study's stability, a
    # rule's delivery): unique among pending jobs only, so a running one is never merged
    Column("key", String(255)),
    Column("payload", Text, nullable=False, server_default="{}"),  # JSON
    Column("label", Text, nullable=False, server_default=""),  # for people; no patient data
    Column("parent_pk", Integer, ForeignKey("jobs.id")),  # a transfer's deliveries
    Column("trust_pk", Integer, ForeignKey("trusts.id")),  # whose work it is
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("run_at", Float, nullable=False),  # not before: back-off and stability delays
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("attempts", Integer, nullable=False, server_default="0"),
    short_text("worker", 128),  # host:pid/thread of the worker holding it
    Column("lease_until", Float),  # a running job whose lease lapsed is claimed again
    Column("done", Integer, nullable=False, server_default="0"),  # progress: items done
    Column("total", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=False, server_default=""),
)
Index("ix_jobs_state_priority_run_at", jobs.c.state, jobs.c.priority, jobs.c.run_at)
Index(
    "ix_jobs_pending_key",
    jobs.c.key,
    unique=True,
    sqlite_where=jobs.c.state == "pending",
    postgresql_where=jobs.c.state == "pending",
)
Index("ix_jobs_parent_pk", jobs.c.parent_pk)

deliveries = Table(
    "deliveries",
    metadata,
    # what a destination has acknowledged: a retried or repeated job skips these
    Column("destination", String(255), primary_key=True),  # ae:TITLE or stow:URL
    Column("sop_uid", String(64), primary_key=True),
    Column("job_pk", Integer, ForeignKey("jobs.id"), nullable=False),
    Column("delivered_at", Float, nullable=False),
)

routing_rules = Table(
    "routing_rules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("position", Integer, nullable=False),  # evaluation order, as written
    Column("name", String(128), nullable=False, unique=True),
    Column("definition", Text, nullable=False),  # JSON of one [[rule]] (rix.routing.rules)
    Column("updated_at", Float, nullable=False),
)


# --- outside media reconciled to a trust's own records (rix.reconcile) ---

reconciliations = Table(
    "reconciliations",
    metadata,
    Column("id", Integer, primary_key=True),
    # one outside patient of one browser upload (rix.uploads), and who chose the record
    Column("upload_id", String(64), nullable=False),
    Column("outside_key", String(32), nullable=False),  # write.OutsidePatient.key
    short_text("outside_patient_id"),
    short_text("outside_issuer"),  # as the media had it: often empty
    Column("outside_name", Text, nullable=False, server_default=""),
    short_text("outside_birth_date", 16),
    short_text("outside_sex", 16),
    # the local record the user chose: the instances are indexed under it
    Column("patient_pk", Integer, ForeignKey("patients.id"), nullable=False),
    Column("trust_pk", Integer, ForeignKey("trusts.id")),
    Column("actor", String(128), nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("upload_id", "outside_key", name="uq_reconciliations_upload_id"),
)
Index("ix_reconciliations_patient_pk", reconciliations.c.patient_pk)

reconciled_instances = Table(
    "reconciled_instances",
    metadata,
    # which stored instances carry an outside identity the index replaced (applied on the
    # way out: rix.region.identity.reconciled); rebuilt by `rix reindex` from the file meta
    Column(
        "instance_pk", Integer, ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("reconciliation_pk", Integer, ForeignKey("reconciliations.id"), nullable=False),
)
Index("ix_reconciled_instances_reconciliation_pk", reconciled_instances.c.reconciliation_pk)

# --- browser sign-ins in flight at the identity provider (rix.auth.oidc_login) ---

oidc_sign_ins = Table(
    "oidc_sign_ins",
    metadata,
    # SHA-256 of the state: the table alone cannot finish anyone's sign-in
    Column("state_hash", String(64), primary_key=True),
    Column("nonce", Text, nullable=False),
    Column("verifier", Text, nullable=False),  # the PKCE code verifier
    Column("target", Text, nullable=False),
    Column("started_at", Float, nullable=False),
)
Index("ix_oidc_sign_ins_started_at", oidc_sign_ins.c.started_at)
