"""The index's tables for what the region does with images: orders, MPPS, reports,
reporting claims and rota, turnaround alerts, and second-opinion shares.

Unlike ``schema``'s, these rows are not derived from the object store: ``rix reindex``
keeps them. They share ``schema.metadata``, so migrations see every table.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from rix.index.schema import metadata, short_text

# --- radiology workflow: orders, worklist, MPPS, reports (rix.workflow) ---

orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True),
    # an imaging order at a trust (HL7 ORM^O01/OMI^O23 or the REST API), for a local record
    Column("trust_pk", Integer, ForeignKey("trusts.id"), nullable=False),
    Column("patient_pk", Integer, ForeignKey("patients.id"), nullable=False),
    short_text("placer_number"),  # ORC-2: the ordering system's number
    short_text("filler_number"),  # ORC-3: the radiology system's number
    short_text("accession_number"),  # what the modality writes in the images (worklist match)
    short_text("requested_procedure_id", 16),
    short_text("status", 16),  # scheduled, in-progress, completed, cancelled, discontinued
    short_text("priority", 16),  # emergency, inpatient, outpatient: what turnaround targets key on
    short_text("modality", 16),
    short_text("body_part", 64),
    short_text("procedure_code"),
    Column("procedure_text", Text, nullable=False, server_default=""),
    short_text("subspecialty", 32),  # neuro, msk, chest, ...: the reporting worklist's filter
    short_text("site_code", 16),  # the performing site
    short_text("station_ae", 16),  # scheduled station AE title (worklist C-FIND key)
    Column("ordering_provider", Text, nullable=False, server_default=""),
    Column("reason", Text, nullable=False, server_default=""),
    Column("ordered_at", Float),
    Column("scheduled_at", Float),
    Column("study_uid", String(64)),  # the study matched to the order, once it arrives
    # the Study Instance UID the worklist gives the modality, made with the order
    short_text("requested_study_uid"),
    short_text("source", 8),  # hl7 or api
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_orders_trust_pk_accession", orders.c.trust_pk, orders.c.accession_number)
Index("ix_orders_trust_pk_placer", orders.c.trust_pk, orders.c.placer_number)
Index("ix_orders_patient_pk", orders.c.patient_pk)
Index("ix_orders_study_uid", orders.c.study_uid)
Index("ix_orders_requested_study_uid", orders.c.requested_study_uid)
Index("ix_orders_status_scheduled_at", orders.c.status, orders.c.scheduled_at)

performed_steps = Table(
    "performed_steps",
    metadata,
    # Modality Performed Procedure Steps (N-CREATE, then N-SET until completed)
    Column("id", Integer, primary_key=True),
    Column("sop_instance_uid", String(64), nullable=False, unique=True),
    Column("order_pk", Integer, ForeignKey("orders.id")),
    Column("trust_pk", Integer, ForeignKey("trusts.id")),
    short_text("status", 16),  # IN PROGRESS, COMPLETED, DISCONTINUED
    short_text("calling_ae", 16),
    short_text("study_uid"),
    short_text("accession_number"),
    short_text("modality", 16),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("attributes", Text, nullable=False, server_default="{}"),  # DICOM JSON
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_performed_steps_order_pk", performed_steps.c.order_pk)

reports = Table(
    "reports",
    metadata,
    # one version of a study's report: an addendum or correction is a new row naming its
    # parent, so nothing signed is ever edited
    Column("id", Integer, primary_key=True),
    Column("study_uid", String(64), nullable=False),
    Column("order_pk", Integer, ForeignKey("orders.id")),
    Column("trust_pk", Integer, ForeignKey("trusts.id")),  # the study's trust
    short_text("status", 16),  # draft, preliminary, final, addendum, corrected
    Column("author_pk", Integer, ForeignKey("users.id")),
    short_text("template"),
    Column("text", Text, nullable=False, server_default=""),
    Column("parent_pk", Integer, ForeignKey("reports.id")),
    Column("sr_instance_uid", String(64)),  # the stored DICOM SR / encapsulated PDF
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("signed_at", Float),  # preliminary or final: when it became visible
)
Index("ix_reports_study_uid", reports.c.study_uid)

report_claims = Table(
    "report_claims",
    metadata,
    # a radiologist's lock on a study to report: the primary key makes claiming atomic
    Column("study_uid", String(64), primary_key=True),
    Column("user_pk", Integer, ForeignKey("users.id"), nullable=False),
    Column("claimed_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

report_templates = Table(
    "report_templates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    short_text("modality", 16),
    short_text("body_part", 64),
    Column("text", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

rota_shifts = Table(
    "rota_shifts",
    metadata,
    # who reports what when: the on-call rota view
    Column("id", Integer, primary_key=True),
    Column("user_pk", Integer, ForeignKey("users.id"), nullable=False),
    Column("trust_pk", Integer, ForeignKey("trusts.id")),  # None: reports for the region
    short_text("subspecialty", 32),
    Column("starts_at", Float, nullable=False),
    Column("ends_at", Float, nullable=False),
)
Index("ix_rota_shifts_starts_at", rota_shifts.c.starts_at)

turnaround_alerts = Table(
    "turnaround_alerts",
    metadata,
    # an alert raised once: the unique key ("breach:<study>", "backlog:<trust>:<day>") is
    # what makes a breach alert fire exactly once, whichever node sees it first
    Column("id", Integer, primary_key=True),
    Column("key", String(255), nullable=False, unique=True),
    short_text("kind", 16),  # breach or backlog
    Column("trust_pk", Integer, ForeignKey("trusts.id")),
    Column("study_uid", String(64)),
    Column("detail", Text, nullable=False, server_default="{}"),  # JSON, no patient data
    Column("raised_at", Float, nullable=False),
)

# --- second opinions: share links for a consultant outside the region (rix.sharing) ---

shares = Table(
    "shares",
    metadata,
    Column("id", Integer, primary_key=True),
    # SHA-256 of the link's 256-bit token: the table alone opens nothing
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("owner_pk", Integer, ForeignKey("users.id"), nullable=False),
    Column("trust_pk", Integer, ForeignKey("trusts.id"), nullable=False),
    Column("person_pk", Integer, ForeignKey("persons.id")),
    Column("recipient_name", Text, nullable=False),
    Column("recipient_email", Text, nullable=False),
    Column("purpose", Text, nullable=False, server_default=""),
    Column("may_download", Boolean, nullable=False, server_default="0"),
    Column("pin_hash", Text, nullable=False, server_default=""),  # argon2id; '' = no PIN
    Column("pin_failures", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("locked_at", Float),  # too many wrong PINs
    Column("revoked_at", Float),
    short_text("revoked_by", 128),
)
Index("ix_shares_owner_pk", shares.c.owner_pk)

share_studies = Table(
    "share_studies",
    metadata,
    Column("share_pk", Integer, ForeignKey("shares.id"), primary_key=True),
    Column("study_uid", String(64), primary_key=True),
)

share_sessions = Table(
    "share_sessions",
    metadata,
    # a browser that opened a link: SHA-256 of its cookie's secret; verified once the PIN
    # (when the share has one) was given
    Column("secret_hash", String(64), primary_key=True),
    Column("share_pk", Integer, ForeignKey("shares.id"), nullable=False),
    Column("verified", Boolean, nullable=False, server_default="0"),
    short_text("source", 64),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)
Index("ix_share_sessions_share_pk", share_sessions.c.share_pk)

share_opinions = Table(
    "share_opinions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("share_pk", Integer, ForeignKey("shares.id"), nullable=False),
    Column("study_uid", String(64), nullable=False),
    Column("text", Text, nullable=False),
    Column("key_images", Text, nullable=False, server_default="[]"),  # JSON SOP UIDs
    Column("sr_instance_uid", String(64)),
    Column("created_at", Float, nullable=False),
    Column("seen_at", Float),  # when the owner first read it
)
Index("ix_share_opinions_share_pk", share_opinions.c.share_pk)
