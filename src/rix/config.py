"""Settings: one typed object, read once at start.

Each setting is declared once, as a field of ``Settings``: its name, type, default and help
text. From that one declaration come its ``RIX_*`` environment variable, its TOML key, its
``rix serve`` option (``SETTINGS``) and its parsing, so a setting cannot be added to one of
them and forgotten in another. Precedence is flags > environment > TOML file > defaults; a
test checks that each setting appears in the README and in ``rix serve --help``.

Settings with structure (``turnaround_targets``, ``report_destinations``) are parsed here
into typed values, so the modules that use them read a mapping, never re-parse text, and a
mistake is refused at start.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar, get_type_hints
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from rix.times import zone

T = TypeVar("T")


class SettingsError(ValueError):
    """A setting has a value rix cannot use; raised at start, never later."""


class DuplicatePolicy(StrEnum):
    """What to do when a SOP Instance UID arrives again with different bytes.

    Identical bytes are always a plain success with one copy kept. For different bytes,
    no copy is ever silently deleted: the one not made current is kept beside the
    archive under ``conflicts/`` and listed by ``rix conflicts``.
    """

    KEEP_FIRST = "keep-first"  # answer a warning (0xB000-range), keep the stored copy current
    KEEP_LATEST = "keep-latest"  # make the new copy current, keep the old one as a conflict
    REJECT = "reject"  # answer a failure; the new bytes are kept as a conflict for review


class Priority(StrEnum):
    """What turnaround targets key on (the reporting worklist, the dashboard); an order's
    priority, most urgent first. Declared with the settings because ``turnaround_targets``
    names them."""

    EMERGENCY = "emergency"
    INPATIENT = "inpatient"
    OUTPATIENT = "outpatient"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportDestination:
    """A trust's RIS or EPR that receives its signed reports as HL7 ORU^R01 over MLLP."""

    trust: str
    host: str
    port: int

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


# --- parsing a setting's text -----------------------------------------------------------------

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str) -> float:
    """``90m``, ``24h``, ``7d``, or plain seconds."""
    found = _DURATION.match(text.lower())
    if found is None:
        raise SettingsError(f"{text!r} is not a duration such as 24h")
    return float(found[1]) * _UNITS[found[2] or "s"]


def parse_turnaround_targets(text: str) -> Mapping[str, float]:
    """``emergency=1h,inpatient=24h,outpatient=7d`` as seconds per priority."""
    found: dict[str, float] = {}
    names = [p.value for p in Priority]
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep or name not in names:
            raise SettingsError(
                f"{item!r} is not priority=duration (priorities: {', '.join(names)})"
            )
        found[name] = parse_duration(value)
    if not found:
        raise SettingsError("names no priority")
    return MappingProxyType(found)


def parse_report_destinations(text: str) -> Mapping[str, ReportDestination]:
    """``TRUST=host:port,...`` by trust code."""
    found: dict[str, ReportDestination] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        code, sep, address = item.partition("=")
        host, colon, port = address.strip().rpartition(":")
        code = code.strip().upper()
        if not (sep and colon and code and host and port.isdigit() and 0 < int(port) < 65536):
            raise SettingsError(f"{item!r} is not TRUST=host:port")
        found[code] = ReportDestination(trust=code, host=host.strip("[]"), port=int(port))
    return MappingProxyType(found)


def _boolean(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    return str(raw).strip().lower() in ("1", "true", "yes", "on")


# --- declaring a setting ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Declared:
    text: str
    shown: str | None  # the default as the help writes it; None: from the default itself
    parse: Callable[[str], Any] | None  # None: from the field's type
    flags: tuple[str, ...]


def setting(default: T, text: str, *, shown: str | None = None, flags: tuple[str, ...] = ()) -> T:
    """A field of ``Settings`` with its help ``text`` (without the environment variable or
    the default, which the help adds); ``flags`` spell the ``rix serve`` option when the
    name's own ``--dashed-name`` is not all of it."""
    declared = _Declared(text=text, shown=shown, parse=None, flags=flags)
    return field(default=default, metadata={"setting": declared})


def parsed_setting(default: str, parse: Callable[[str], T], text: str) -> T:
    """A field whose value is parsed from text (flag, variable, TOML), its default too."""
    declared = _Declared(text=text, shown=default, parse=parse, flags=())
    made: T = field(default_factory=lambda: parse(default), metadata={"setting": declared})
    return made


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Every setting of rix. Each field is one declaration (see ``setting``): the name is
    also the TOML key, ``RIX_`` + the name in capitals the environment variable, and
    ``--`` + the name with dashes the ``rix serve`` option."""

    data: Path = setting(
        Path("rix-data"), "Data folder: SQLite index and object files.", shown="./rix-data"
    )
    database_url: str = setting(
        "",
        "Index database URL; empty means SQLite in the data folder; postgresql://... uses "
        "PostgreSQL.",
    )
    dicom_host: str = setting("127.0.0.1", "Address the DICOM listener binds.")
    dicom_port: int = setting(11112, "DICOM listener port.")
    ae_title: str = setting("RIX", "rix's own DICOM AE title.")
    http: str = setting("127.0.0.1:8042", "HTTP listener host:port.")
    accept_any_ae: bool = setting(
        False,
        "Accept associations from calling AE titles not in the AE registry; the demo turns it on.",
        flags=("--accept-any-ae/--registered-ae-only",),
    )
    duplicate_policy: DuplicatePolicy = setting(
        DuplicatePolicy.KEEP_FIRST,
        "Same SOP Instance UID with different bytes: keep-first (warning), keep-latest, or "
        "reject. No copy is ever deleted.",
    )
    max_associations: int = setting(32, "Concurrent DICOM associations.")
    dicom_timeout: float = setting(30.0, "DIMSE/network timeout in seconds.")
    max_upload_mb: int = setting(
        2048, "Largest STOW-RS request body in MiB; larger ones get 413 before being read."
    )
    break_glass_hours: float = setting(
        4.0,
        "How long a break-glass declaration opens a patient's records at other trusts.",
    )
    session_hours: float = setting(10.0, "Lifetime of a login session cookie.")
    oidc_issuer: str = setting(
        "", "OpenID Connect issuer whose bearer tokens rix accepts; empty turns OIDC off."
    )
    oidc_audience: str = setting("", "Audience (aud) OIDC tokens must be issued for.")
    oidc_jwks_url: str = setting("", "URL of the issuer's signing keys (JWKS).")
    oidc_username_claim: str = setting(
        "preferred_username",
        "Claim naming the rix user an OIDC token stands for; roles and trust come from that "
        "rix user.",
    )
    oidc_client_id: str = setting(
        "",
        "rix's client ID at the identity provider; set, the sign-in page offers single "
        "sign-on (authorization code flow with PKCE).",
    )
    oidc_client_secret: str = setting(
        "",
        "rix's client secret, sent with client_secret_basic; empty makes rix a public client "
        "relying on PKCE alone. Prefer the environment variable to the flag.",
    )
    oidc_authorization_url: str = setting(
        "", "The identity provider's authorization endpoint, where browsers sign in."
    )
    oidc_token_url: str = setting(
        "", "The identity provider's token endpoint, where rix exchanges the code."
    )
    oidc_redirect_base: str = setting(
        "",
        "rix's external origin as browsers see it (https://rix.region.example), for the "
        "redirect URI registered at the identity provider; empty derives it from each "
        "request.",
    )
    audit_syslog: str = setting(
        "",
        "Audit repository for DICOM audit messages (PS3.15 A.5) over syslog: "
        "tcp://host:port or tls://host:port; empty sends none.",
    )
    audit_syslog_ca: str = setting(
        "", "CA certificate file that signs the audit repository's TLS certificate."
    )
    dicom_tls_port: int = setting(
        0, "Port of the DICOM TLS listener (PS3.15 B.9, BCP 195); 0 turns it off."
    )
    dicom_tls_cert: str = setting("", "PEM certificate of the DICOM TLS listener.")
    dicom_tls_key: str = setting("", "PEM private key of the DICOM TLS listener.")
    dicom_tls_ca: str = setting(
        "",
        "PEM CA certificates that sign client certificates; when set, DICOM TLS peers must "
        "present one.",
    )
    roles: str = setting(
        "web,dicom,worker",
        "What this process serves, comma-separated: web, dicom, worker; at region scale run "
        "each on as many nodes as needed.",
        flags=("--roles", "--role"),
    )
    workers: int = setting(2, "Job worker threads of a worker process.")
    stable_seconds: float = setting(
        10.0,
        "A study is stable, and routing rules run, this many seconds after its last instance "
        "arrived.",
    )
    job_give_up_hours: float = setting(
        24.0,
        "A job still failing this long after it was queued is dead-lettered with an alert.",
    )
    alert_webhook: str = setting(
        "", "URL that receives a JSON POST for every dead-lettered job; empty only logs."
    )
    transfer_days: int = setting(
        365, "A patient transfer sends studies of this many days back; 0 sends all."
    )
    hl7_port: int = setting(
        0,
        "Port of the HL7 v2 MLLP listener (orders ORM/OMI, ADT patients and transfers); 0 "
        "turns it off.",
    )
    import_expiry_hours: float = setting(
        24.0,
        "A browser import (outside media uploaded to the portal) not finished this many "
        "hours after its last change is deleted with its files; a finished one's files go "
        "at once.",
    )
    turnaround_targets: Mapping[str, float] = parsed_setting(
        "emergency=1h,inpatient=24h,outpatient=7d",
        parse_turnaround_targets,
        "Report turnaround target per order priority, from the study's arrival to its first "
        "preliminary or final report: priority=duration with s, m, h or d; a priority not "
        "named takes the longest.",
    )
    turnaround_backlog: int = setting(
        50,
        "Unreported studies of one trust past which a backlog alert is raised, once a day; "
        "0 turns it off.",
    )
    turnaround_check_minutes: float = setting(
        5.0, "How often a worker looks for turnaround breaches and backlogs."
    )
    turnaround_webhook: str = setting(
        "",
        "URL POSTed a JSON alert for every turnaround breach and backlog; empty uses "
        "alert_webhook.",
    )
    turnaround_email: str = setting(
        "",
        "Who is emailed turnaround alerts: addresses, comma-separated; CODE=address gets "
        "trust CODE's alerts only (needs smtp_host).",
    )
    prefetch_priors: int = setting(
        3,
        "How many relevant priors (same modality or body part, newest first) an order "
        "prefetches from other trusts.",
    )
    report_destinations: Mapping[str, ReportDestination] = parsed_setting(
        "",
        parse_report_destinations,
        "Where signed reports go as HL7 ORU^R01 over MLLP, each trust's to its own RIS or "
        "EPR: TRUST=host:port, comma-separated; a trust not named gets none.",
    )
    report_pdf: bool = setting(
        True,
        "Store each signed report in its study as an Encapsulated PDF too, beside its "
        "Basic Text SR (for PACS and viewers that show PDFs, not SR).",
    )
    smtp_host: str = setting("", "SMTP server for email (share links, alerts); empty sends none.")
    smtp_port: int = setting(25, "SMTP server port.")
    smtp_from: str = setting("rix@localhost", "Sender address of rix's email.")
    smtp_username: str = setting("", "SMTP login; empty sends without one.")
    smtp_password: str = setting("", "SMTP password. Prefer the environment variable to the flag.")
    smtp_starttls: bool = setting(
        False, "Upgrade the SMTP connection with STARTTLS before logging in."
    )
    public_url: str = setting(
        "",
        "rix's address as people outside see it (https://rix.region.example), for links in "
        "email and alerts; empty uses the request's, and refuses turnaround alerts.",
    )
    display_timezone: ZoneInfo = parsed_setting(
        "Europe/London",
        zone,
        "Time zone of the times people read (pages, messages), named beside each time: "
        "7 Dec 2026 21:42 GMT; programs get ISO 8601 in UTC.",
    )
    share_max_days: int = setting(30, "Longest a second-opinion share link may last, in days.")
    viewer_dir: Path = setting(
        Path(),
        "Folder of the OHIF viewer served at /viewer/, installed by `rix viewer install`.",
        shown="viewer/ in the data folder",
    )
    portal_assets_dir: Path = setting(
        Path(),
        "Folder of htmx.min.js for the portal pages, installed by `rix viewer install`; "
        "pages work without it, with full page loads.",
        shown="assets/ in the data folder",
    )

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
    def viewer_folder(self) -> Path:  # empty viewer_dir: where `rix viewer install` puts it
        return self.viewer_dir if self.viewer_dir != Path() else self.data / "viewer"

    @property
    def portal_assets_folder(self) -> Path:
        return self.portal_assets_dir if self.portal_assets_dir != Path() else self.data / "assets"

    @property
    def http_host(self) -> str:
        return self.http.rsplit(":", 1)[0] or "127.0.0.1"

    @property
    def http_port(self) -> int:
        return int(self.http.rsplit(":", 1)[1])


@dataclass(frozen=True, slots=True, kw_only=True)
class Setting:
    """One setting as people set it: a ``rix serve`` option, a ``RIX_*`` variable, a TOML
    key, all read from its declaration in ``Settings``."""

    name: str
    kind: type  # what a flag is parsed as before ``parse``: str, int, float, bool or Path
    default: Any
    text: str
    shown: str  # the default as the help writes it; empty when there is none to show
    parse: Callable[[Any], Any]
    flags: tuple[str, ...]  # the option's spellings; empty: typer's own from the name

    @property
    def env(self) -> str:
        return "RIX_" + self.name.upper()

    @property
    def toml_key(self) -> str:
        return self.name

    @property
    def help(self) -> str:
        default = f", default {self.shown}" if self.shown else ""
        return f"{self.text} (env {self.env}{default})"


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _declare(spec: Field[Any], kind: Any) -> Setting:
    declared: _Declared = spec.metadata["setting"]
    default = spec.default_factory() if callable(spec.default_factory) else spec.default
    plain = kind if kind in (bool, int, float, Path) else str
    parse: Callable[[Any], Any]
    if declared.parse is not None:
        parse = declared.parse
    elif kind is bool:
        parse = _boolean
    else:
        parse = kind  # int, float, Path, str, or a StrEnum such as DuplicatePolicy
    return Setting(
        name=spec.name,
        kind=plain,
        default=default,
        text=declared.text,
        shown=_shown(default) if declared.shown is None else declared.shown,
        parse=parse,
        flags=declared.flags,
    )


def _declared() -> Mapping[str, Setting]:
    kinds = get_type_hints(Settings)
    return MappingProxyType(
        {spec.name: _declare(spec, kinds[spec.name]) for spec in fields(Settings)}
    )


SETTINGS = _declared()  # by name, in the order of their declaration


# --- reading them -----------------------------------------------------------------------------


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs (SQLAlchemy's default driver is psycopg2)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _coerce(declared: Setting, raw: Any) -> Any:
    """A value from TOML (typed), the environment (text) or a flag (parsed by typer) as the
    field's type."""
    try:
        return declared.parse(raw if declared.kind in (bool, int, float) else str(raw))
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"{declared.name}: {exc}") from exc


def _from_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        table = tomllib.load(f)
    by_key = {s.toml_key: s.name for s in SETTINGS.values()}
    unknown = set(table) - set(by_key)
    if unknown:
        raise SettingsError(f"unknown settings in {path}: {sorted(unknown)}")
    return {by_key[key]: value for key, value in table.items()}


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
        values.update(_from_toml(toml_path))
    values.update({s.name: env[s.env] for s in SETTINGS.values() if s.env in env})
    values.update({name: value for name, value in (flags or {}).items() if value is not None})
    settings = replace(Settings(), **{k: _coerce(SETTINGS[k], v) for k, v in values.items()})
    validate(settings)
    return settings


def environment_secret(name: str) -> str:
    """The secret held by environment variable ``name`` (a routing rule's ``token_env``), or
    "" when unset. Read when used, so a token never sits in a rules file or the index, and
    read here, so no other module reads the environment."""
    return os.environ.get(name, "")


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
    _validate_alert_links(settings)


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
    if settings.turnaround_backlog < 0 or settings.prefetch_priors < 0:
        raise SettingsError("turnaround_backlog and prefetch_priors cannot be negative")
    if settings.turnaround_check_minutes <= 0:
        raise SettingsError("turnaround_check_minutes must be more than 0")


def _validate_alert_links(settings: Settings) -> None:
    """Alerts link to the dashboard; a relative ``/turnaround?...`` means nothing in a mailbox."""
    named = ("turnaround_webhook", "turnaround_email", "alert_webhook")
    destinations = [name for name in named if getattr(settings, name)]
    if destinations and not settings.public_url:
        raise SettingsError(f"{', '.join(destinations)}: alerts link to public_url; set it")
    parts = urlsplit(settings.public_url)
    if settings.public_url and (parts.scheme not in ("https", "http") or not parts.hostname):
        raise SettingsError("public_url must be an absolute URL such as https://rix.example")


def is_loopback(host: str) -> bool:
    """Only this machine can reach the address (127.0.0.0/8, ::1, localhost)."""
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def quiet_phi_loggers() -> None:
    """pynetdicom logs C-FIND/MOVE/GET identifiers at INFO (patient data; pynetdicom #911)."""
    from pynetdicom import _config  # noqa: PLC0415 (config must not pay pynetdicom's import)

    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
