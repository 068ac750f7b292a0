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


def quiet_phi_loggers() -> None:
    """pynetdicom logs C-FIND/MOVE/GET identifiers at INFO (patient data; pynetdicom #911)."""
    from pynetdicom import _config

    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
