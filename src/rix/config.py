"""Settings: one typed object, read once at start.

Precedence is flags > environment (``RIX_*``) > TOML file > defaults. Every field is
documented in ``SETTINGS_HELP``; a test checks that each one appears in the README and in
``rix serve --help`` so no setting is ever undocumented.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# where `make viewer` installs the OHIF viewer: build/ beside src/, never committed
SOURCE_TREE = Path(__file__).resolve().parents[2]


class DuplicatePolicy(StrEnum):
    """What to do when a SOP Instance UID arrives again with different bytes.

    Identical bytes are always a plain success with one copy kept. For different bytes,
    no copy is ever silently deleted: the one not made current is kept beside the
    archive under ``conflicts/`` and listed by ``rix conflicts``.
    """

    KEEP_FIRST = "keep-first"  # answer a warning (0xB000-range), keep the stored copy current
    KEEP_LATEST = "keep-latest"  # make the new copy current, keep the old one as a conflict
    REJECT = "reject"  # answer a failure; the new bytes are kept as a conflict for review


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    data: Path = Path("rix-data")
    database_url: str = ""
    dicom_host: str = "127.0.0.1"
    dicom_port: int = 11112
    ae_title: str = "RIX"
    http: str = "127.0.0.1:8042"
    accept_any_ae: bool = False
    duplicate_policy: DuplicatePolicy = DuplicatePolicy.KEEP_FIRST
    max_associations: int = 32
    dicom_timeout: float = 30.0
    max_upload_mb: int = 2048
    break_glass_hours: float = 4.0
    session_hours: float = 10.0
    oidc_issuer: str = ""
    oidc_audience: str = ""
    oidc_jwks_url: str = ""
    oidc_username_claim: str = "preferred_username"
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_authorization_url: str = ""
    oidc_token_url: str = ""
    oidc_redirect_base: str = ""
    audit_syslog: str = ""
    audit_syslog_ca: str = ""
    dicom_tls_port: int = 0
    dicom_tls_cert: str = ""
    dicom_tls_key: str = ""
    dicom_tls_ca: str = ""
    roles: str = "web,dicom,worker"
    workers: int = 2
    stable_seconds: float = 10.0
    job_give_up_hours: float = 24.0
    alert_webhook: str = ""
    transfer_days: int = 365
    hl7_port: int = 0
    import_expiry_hours: float = 24.0
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = "rix@localhost"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    public_url: str = ""
    share_max_days: int = 30
    turnaround_targets: str = "emergency=1h,inpatient=24h,outpatient=7d"
    turnaround_backlog: int = 50
    turnaround_check_minutes: float = 5.0
    turnaround_webhook: str = ""
    turnaround_email: str = ""
    prefetch_priors: int = 3
    report_destinations: str = ""
    viewer_dir: Path = SOURCE_TREE / "build" / "ohif"
    portal_assets_dir: Path = SOURCE_TREE / "build" / "assets"

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(r.strip() for r in self.roles.split(",") if r.strip())

    @property
    def index_url(self) -> str:
        """SQLAlchemy URL of the index; SQLite in the data folder unless configured."""
        if not self.database_url:
            return f"sqlite:///{(self.data / 'index.sqlite').resolve()}"
        return normalise_database_url(self.database_url)

    @property
    def objects_dir(self) -> Path:
        return self.data / "objects"

    @property
    def http_host(self) -> str:
        return self.http.rsplit(":", 1)[0] or "127.0.0.1"

    @property
    def http_port(self) -> int:
        return int(self.http.rsplit(":", 1)[1])


SETTINGS_HELP: dict[str, str] = {
    "data": "Data folder: SQLite index and object files (env RIX_DATA, default ./rix-data).",
    "database_url": (
        "Index database URL; empty means SQLite in the data folder; postgresql://... uses "
        "PostgreSQL (env RIX_DATABASE_URL)."
    ),
    "dicom_host": "Address the DICOM listener binds (env RIX_DICOM_HOST, default 127.0.0.1).",
    "dicom_port": "DICOM listener port (env RIX_DICOM_PORT, default 11112).",
    "ae_title": "rix's own DICOM AE title (env RIX_AE_TITLE, default RIX).",
    "http": "HTTP listener host:port (env RIX_HTTP, default 127.0.0.1:8042).",
    "accept_any_ae": (
        "Accept associations from calling AE titles not in the AE registry "
        "(env RIX_ACCEPT_ANY_AE, default false; the demo turns it on)."
    ),
    "duplicate_policy": (
        "Same SOP Instance UID with different bytes: keep-first (warning), keep-latest, or "
        "reject (env RIX_DUPLICATE_POLICY, default keep-first). No copy is ever deleted."
    ),
    "max_associations": "Concurrent DICOM associations (env RIX_MAX_ASSOCIATIONS, default 32).",
    "dicom_timeout": "DIMSE/network timeout in seconds (env RIX_DICOM_TIMEOUT, default 30).",
    "max_upload_mb": (
        "Largest STOW-RS request body in MiB; larger ones get 413 before being read "
        "(env RIX_MAX_UPLOAD_MB, default 2048)."
    ),
    "break_glass_hours": (
        "How long a break-glass declaration opens a patient's records at other trusts "
        "(env RIX_BREAK_GLASS_HOURS, default 4)."
    ),
    "session_hours": "Lifetime of a login session cookie (env RIX_SESSION_HOURS, default 10).",
    "oidc_issuer": (
        "OpenID Connect issuer whose bearer tokens rix accepts; empty turns OIDC off "
        "(env RIX_OIDC_ISSUER)."
    ),
    "oidc_audience": "Audience (aud) OIDC tokens must be issued for (env RIX_OIDC_AUDIENCE).",
    "oidc_jwks_url": "URL of the issuer's signing keys (JWKS) (env RIX_OIDC_JWKS_URL).",
    "oidc_username_claim": (
        "Claim naming the rix user an OIDC token stands for (env RIX_OIDC_USERNAME_CLAIM, "
        "default preferred_username); roles and trust come from that rix user."
    ),
    "oidc_client_id": (
        "rix's client ID at the identity provider; set, the sign-in page offers single "
        "sign-on (authorization code flow with PKCE) (env RIX_OIDC_CLIENT_ID)."
    ),
    "oidc_client_secret": (
        "rix's client secret, sent with client_secret_basic; empty makes rix a public client "
        "relying on PKCE alone (env RIX_OIDC_CLIENT_SECRET; prefer it to the flag)."
    ),
    "oidc_authorization_url": (
        "The identity provider's authorization endpoint, where browsers sign in "
        "(env RIX_OIDC_AUTHORIZATION_URL)."
    ),
    "oidc_token_url": (
        "The identity provider's token endpoint, where rix exchanges the code "
        "(env RIX_OIDC_TOKEN_URL)."
    ),
    "oidc_redirect_base": (
        "rix's external origin as browsers see it (https://rix.region.example), for the "
        "redirect URI registered at the identity provider; empty derives it from each request "
        "(env RIX_OIDC_REDIRECT_BASE)."
    ),
    "audit_syslog": (
        "Audit repository for DICOM audit messages (PS3.15 A.5) over syslog: "
        "tcp://host:port or tls://host:port; empty sends none (env RIX_AUDIT_SYSLOG)."
    ),
    "audit_syslog_ca": (
        "CA certificate file that signs the audit repository's TLS certificate "
        "(env RIX_AUDIT_SYSLOG_CA)."
    ),
    "dicom_tls_port": (
        "Port of the DICOM TLS listener (PS3.15 B.9, BCP 195); 0 turns it off "
        "(env RIX_DICOM_TLS_PORT)."
    ),
    "dicom_tls_cert": "PEM certificate of the DICOM TLS listener (env RIX_DICOM_TLS_CERT).",
    "dicom_tls_key": "PEM private key of the DICOM TLS listener (env RIX_DICOM_TLS_KEY).",
    "dicom_tls_ca": (
        "PEM CA certificates that sign client certificates; when set, DICOM TLS peers must "
        "present one (env RIX_DICOM_TLS_CA)."
    ),
    "roles": (
        "What this process serves, comma-separated: web, dicom, worker (env RIX_ROLES, "
        "default all three); at region scale run each on as many nodes as needed."
    ),
    "workers": "Job worker threads of a worker process (env RIX_WORKERS, default 2).",
    "stable_seconds": (
        "A study is stable, and routing rules run, this many seconds after its last "
        "instance arrived (env RIX_STABLE_SECONDS, default 10)."
    ),
    "job_give_up_hours": (
        "A job still failing this long after it was queued is dead-lettered with an alert "
        "(env RIX_JOB_GIVE_UP_HOURS, default 24)."
    ),
    "alert_webhook": (
        "URL that receives a JSON POST for every dead-lettered job; empty only logs "
        "(env RIX_ALERT_WEBHOOK)."
    ),
    "transfer_days": (
        "A patient transfer sends studies of this many days back; 0 sends all "
        "(env RIX_TRANSFER_DAYS, default 365)."
    ),
    "hl7_port": (
        "Port of the HL7 v2 MLLP listener (orders ORM/OMI, ADT patients and transfers); 0 "
        "turns it off (env RIX_HL7_PORT)."
    ),
    "import_expiry_hours": (
        "A browser import (outside media uploaded to the portal) not finished this many "
        "hours after its last change is deleted with its files; a finished one's files go "
        "at once (env RIX_IMPORT_EXPIRY_HOURS, default 24)."
    ),
    "smtp_host": (
        "SMTP server for email (share links, alerts); empty sends none (env RIX_SMTP_HOST)."
    ),
    "smtp_port": "SMTP server port (env RIX_SMTP_PORT, default 25).",
    "smtp_from": "Sender address of rix's email (env RIX_SMTP_FROM, default rix@localhost).",
    "smtp_username": "SMTP login; empty sends without one (env RIX_SMTP_USERNAME).",
    "smtp_password": "SMTP password (env RIX_SMTP_PASSWORD; prefer it to the flag).",
    "smtp_starttls": (
        "Upgrade the SMTP connection with STARTTLS before logging in "
        "(env RIX_SMTP_STARTTLS, default false)."
    ),
    "public_url": (
        "rix's address as people outside see it (https://rix.region.example), for links in "
        "email; empty uses the address of the request that made the link (env RIX_PUBLIC_URL)."
    ),
    "share_max_days": (
        "Longest a second-opinion share link may last, in days (env RIX_SHARE_MAX_DAYS, "
        "default 30)."
    ),
    "turnaround_targets": (
        "Report turnaround target per order priority, from the study's arrival to its first "
        "preliminary or final report: priority=duration with s, m, h or d "
        "(env RIX_TURNAROUND_TARGETS, default emergency=1h,inpatient=24h,outpatient=7d; "
        "a priority not named takes the longest)."
    ),
    "turnaround_backlog": (
        "Unreported studies of one trust past which a backlog alert is raised, once a day "
        "(env RIX_TURNAROUND_BACKLOG, default 50; 0 turns it off)."
    ),
    "turnaround_check_minutes": (
        "How often a worker looks for turnaround breaches and backlogs "
        "(env RIX_TURNAROUND_CHECK_MINUTES, default 5)."
    ),
    "turnaround_webhook": (
        "URL POSTed a JSON alert for every turnaround breach and backlog; empty uses "
        "alert_webhook (env RIX_TURNAROUND_WEBHOOK)."
    ),
    "turnaround_email": (
        "Who is emailed turnaround alerts: addresses, comma-separated; CODE=address gets "
        "trust CODE's alerts only (env RIX_TURNAROUND_EMAIL; needs smtp_host)."
    ),
    "prefetch_priors": (
        "How many relevant priors (same modality or body part, newest first) an order "
        "prefetches from other trusts (env RIX_PREFETCH_PRIORS, default 3)."
    ),
    "report_destinations": (
        "Where signed reports go as HL7 ORU^R01 over MLLP, each trust's to its own RIS or "
        "EPR: TRUST=host:port, comma-separated; a trust not named gets none "
        "(env RIX_REPORT_DESTINATIONS)."
    ),
    "viewer_dir": (
        "Folder of the OHIF viewer served at /viewer/, installed and prepared by `make "
        "viewer` (env RIX_VIEWER_DIR, default build/ohif beside rix's source)."
    ),
    "portal_assets_dir": (
        "Folder holding htmx.min.js for the portal pages, installed by `make assets` "
        "(env RIX_PORTAL_ASSETS_DIR, default build/assets beside rix's source); the pages "
        "work without it, with full page loads."
    ),
}


class SettingsError(ValueError):
    """A setting has a value rix cannot use; raised at start, never later."""


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs (SQLAlchemy's default driver is psycopg2)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _coerce(name: str, raw: Any) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    try:
        if kind in ("bool", bool):
            if isinstance(raw, bool):
                return raw
            return str(raw).strip().lower() in ("1", "true", "yes", "on")
        if kind in ("int", int):
            return int(raw)
        if kind in ("float", float):
            return float(raw)
        if kind in ("Path", Path):
            return Path(raw)
        if kind in ("DuplicatePolicy", DuplicatePolicy):
            return DuplicatePolicy(str(raw))
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc}") from exc
    return str(raw)


def load(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    toml_path: Path | None = None,
) -> Settings:
    """Merge defaults, the TOML file, ``RIX_*`` variables and flags, then validate."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    toml_path = toml_path or (Path(env["RIX_CONFIG"]) if env.get("RIX_CONFIG") else None)
    if toml_path is not None:
        with toml_path.open("rb") as f:
            table = tomllib.load(f)
        unknown = set(table) - set(SETTINGS_HELP)
        if unknown:
            raise SettingsError(f"unknown settings in {toml_path}: {sorted(unknown)}")
        values.update(table)
    for name in SETTINGS_HELP:
        key = "RIX_" + name.upper()
        if key in env:
            values[name] = env[key]
    for name, value in (flags or {}).items():
        if value is not None:
            values[name] = value
    settings = replace(Settings(), **{k: _coerce(k, v) for k, v in values.items()})
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    if not 0 < settings.dicom_port < 65536:
        raise SettingsError(f"dicom_port out of range: {settings.dicom_port}")
    if not 1 <= len(settings.ae_title) <= 16:
        raise SettingsError("ae_title must be 1 to 16 characters")
    try:
        port = settings.http_port
    except (IndexError, ValueError) as exc:
        raise SettingsError(f"http must be host:port, got {settings.http!r}") from exc
    if not 0 < port < 65536:
        raise SettingsError(f"http port out of range: {port}")
    if settings.accept_any_ae and not is_loopback(settings.dicom_host):
        raise SettingsError(
            "accept_any_ae lets any unauthenticated DICOM peer store and query; it is "
            f"refused on the non-loopback address {settings.dicom_host}"
        )
    if settings.dicom_tls_port and not (settings.dicom_tls_cert and settings.dicom_tls_key):
        raise SettingsError("dicom_tls_port needs dicom_tls_cert and dicom_tls_key")
    if settings.oidc_issuer and not (settings.oidc_audience and settings.oidc_jwks_url):
        raise SettingsError("oidc_issuer needs oidc_audience and oidc_jwks_url")
    _validate_oidc_sign_in(settings)
    if settings.audit_syslog and not settings.audit_syslog.startswith(("tcp://", "tls://")):
        raise SettingsError("audit_syslog must be tcp://host:port or tls://host:port")
    _validate_jobs(settings)
    _validate_turnaround(settings)
    _validate_report_destinations(settings)


def _validate_oidc_sign_in(settings: Settings) -> None:
    """Browser sign-in (OIDC Core 3.1) needs the issuer's settings and both endpoints; the
    token endpoint receives the client secret and returns the ID token, so, like the JWKS,
    it is reached over TLS (RFC 6749 3.2), plain HTTP only on loopback."""
    if not settings.oidc_client_id:
        extra = ("oidc_client_secret", "oidc_authorization_url", "oidc_token_url")
        if any(getattr(settings, name) for name in extra):
            raise SettingsError("oidc_client_secret and the endpoints need oidc_client_id")
        return
    if not settings.oidc_issuer:
        raise SettingsError("oidc_client_id needs oidc_issuer, oidc_audience and oidc_jwks_url")
    for name in ("oidc_authorization_url", "oidc_token_url"):
        if not is_secure_url(getattr(settings, name)):
            raise SettingsError(f"{name} must be https:// (http:// only on loopback)")
    base = urlsplit(settings.oidc_redirect_base)
    if settings.oidc_redirect_base and (
        base.scheme not in ("https", "http") or not base.hostname or base.query or base.fragment
    ):
        raise SettingsError("oidc_redirect_base must be an origin such as https://rix.example")


def is_secure_url(url: str) -> bool:
    """An https:// URL, or http:// to this machine (a test or a sidecar on loopback)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname))


def _validate_jobs(settings: Settings) -> None:
    unknown_roles = settings.role_set - {"web", "dicom", "worker"}
    if unknown_roles or not settings.role_set:
        raise SettingsError(f"roles are web, dicom and worker; got {settings.roles!r}")
    if settings.workers < 0 or settings.stable_seconds < 0 or settings.transfer_days < 0:
        raise SettingsError("workers, stable_seconds and transfer_days cannot be negative")
    if settings.import_expiry_hours <= 0:
        raise SettingsError("import_expiry_hours must be more than 0")


def _validate_turnaround(settings: Settings) -> None:
    from rix.workflow.turnaround import parse_targets

    parse_targets(settings.turnaround_targets)
    if settings.turnaround_backlog < 0 or settings.prefetch_priors < 0:
        raise SettingsError("turnaround_backlog and prefetch_priors cannot be negative")
    if settings.turnaround_check_minutes <= 0:
        raise SettingsError("turnaround_check_minutes must be more than 0")


def _validate_report_destinations(settings: Settings) -> None:
    from rix.workflow.oru import destinations

    destinations(settings.report_destinations)


def is_loopback(host: str) -> bool:
    """Only this machine can reach the address (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def quiet_phi_loggers() -> None:
    """pynetdicom logs C-FIND/MOVE/GET identifiers at INFO (patient data; pynetdicom #911)."""
    from pynetdicom import _config

    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
