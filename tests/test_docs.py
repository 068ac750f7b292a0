"""Every setting is documented: in the README table and in `rix serve --help` (STYLE rule 17),
and each is read under the names its one declaration gives it (``rix.config.SETTINGS``)."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import fields
from enum import Enum
from pathlib import Path

import pytest

from rix.config import SETTINGS, Setting, Settings, SettingsError, load

README = (Path(__file__).parents[1] / "README.md").read_text()
NAMES = [f.name for f in fields(Settings)]
ROW = re.compile(r"^\| `(\w+)` \| `(RIX_\w+)` \| ([^|]*) \|", re.MULTILINE)


def test_every_setting_has_help_text() -> None:
    assert list(SETTINGS) == NAMES
    for declared in SETTINGS.values():
        assert declared.text and declared.env in declared.help


@pytest.mark.parametrize("name", NAMES)
def test_every_setting_is_in_the_readme_table(name: str) -> None:
    assert f"| `{name}` | `{SETTINGS[name].env}` |" in README


def test_the_readme_table_names_each_declared_setting_once_with_its_default() -> None:
    rows = ROW.findall(README)
    assert [name for name, _, _ in rows] == NAMES
    for name, env, default in rows:
        declared = SETTINGS[name]
        assert env == declared.env
        if default.startswith("empty"):
            assert declared.shown == "", name
        else:
            written = default.split("`")[1]
            assert declared.shown == written or declared.shown.startswith(written + " "), name


def test_every_setting_is_a_flag_of_rix_serve() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rix.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "200", "PATH": ""},
    )
    for name in NAMES:
        assert "--" + name.replace("_", "-") in result.stdout
        assert SETTINGS[name].env in result.stdout


def _as_text(declared: Setting) -> str:
    """The default written as a person would write it in a variable or the TOML file."""
    if declared.kind is str and not isinstance(declared.default, str):
        return declared.shown  # parsed from text: its default is that text
    if declared.kind is bool:
        return declared.shown
    return str(declared.default)


@pytest.mark.parametrize("name", NAMES)
def test_every_setting_is_read_from_its_variable_and_its_toml_key(
    name: str, tmp_path: Path
) -> None:
    declared = SETTINGS[name]
    assert load(env={declared.env: _as_text(declared)}) == Settings()
    toml = tmp_path / "rix.toml"
    toml.write_text(f"{declared.toml_key} = {_as_text(declared)!r}\n".replace("'", '"'))
    assert load(env={}, toml_path=toml) == Settings()


# A value other than the default for each setting that needs one written out (the rest are
# derived from the default's type), with the settings it must come with to be accepted.
OTHER_VALUE = {
    "database_url": "postgresql://rix@db.example:5432/rix",
    "dicom_host": "0.0.0.0",
    "ae_title": "RIXB",
    "http": "127.0.0.1:9999",
    "roles": "web",
    "turnaround_targets": "emergency=2h",
    "report_destinations": "EMH=127.0.0.1:2575",
    "public_url": "https://rix.example",
    "display_timezone": "UTC",
    "audit_syslog": "tcp://127.0.0.1:6514",
    "alert_webhook": "http://127.0.0.1:9/alert",
    "turnaround_webhook": "http://127.0.0.1:9/turnaround",
    "turnaround_email": "ops@trust.example",
    "smtp_from": "rix@trust.example",
    "oidc_issuer": "https://idp.example",
    "oidc_jwks_url": "https://idp.example/jwks",
    "oidc_authorization_url": "https://idp.example/auth",
    "oidc_token_url": "https://idp.example/token",
    "oidc_redirect_base": "https://rix.example",
}
_OIDC = {
    "RIX_OIDC_ISSUER": "https://idp.example",
    "RIX_OIDC_AUDIENCE": "rix",
    "RIX_OIDC_JWKS_URL": "https://idp.example/jwks",
}
_CLIENT = {
    **_OIDC,
    "RIX_OIDC_CLIENT_ID": "rix-portal",
    "RIX_OIDC_AUTHORIZATION_URL": "https://idp.example/authorize",
    "RIX_OIDC_TOKEN_URL": "https://idp.example/oauth/token",
}
_ALERTS = {"RIX_PUBLIC_URL": "https://rix.example"}
COMES_WITH = {
    "dicom_tls_port": {"RIX_DICOM_TLS_CERT": "cert.pem", "RIX_DICOM_TLS_KEY": "key.pem"},
    "oidc_issuer": _OIDC,
    "oidc_client_id": _CLIENT,
    "oidc_client_secret": _CLIENT,
    "oidc_authorization_url": _CLIENT,
    "oidc_token_url": _CLIENT,
    "alert_webhook": _ALERTS,
    "turnaround_webhook": _ALERTS,
    "turnaround_email": _ALERTS,
}


def _other_value(name: str) -> str:
    default = getattr(Settings(), name)
    if name in OTHER_VALUE:
        return OTHER_VALUE[name]
    if isinstance(default, bool):
        return "false" if default else "true"
    if isinstance(default, Enum):
        return next(m.value for m in type(default) if m != default)
    if isinstance(default, int | float):
        return str(default + 1)
    if isinstance(default, Path):
        return "/srv/rix-elsewhere"
    return "example-value"


@pytest.mark.parametrize("name", NAMES)
def test_every_setting_takes_another_value_from_its_variable_and_its_toml_key(
    name: str, tmp_path: Path
) -> None:
    """Read through its own variable and its own key, not just round-tripped as the default:
    a setting the loader ignored would keep its default and fail here."""
    declared, value = SETTINGS[name], _other_value(name)
    others = {k: v for k, v in COMES_WITH.get(name, {}).items() if k != declared.env}
    from_env = getattr(load(env={**others, declared.env: value}), name)
    assert from_env != getattr(Settings(), name)
    toml = tmp_path / "rix.toml"
    toml.write_text(f"{declared.toml_key} = {value!r}\n".replace("'", '"'))
    from_toml = getattr(load(env=others, toml_path=toml), name)
    assert from_toml == from_env


def test_flags_override_environment_which_overrides_toml(tmp_path: Path) -> None:
    toml = tmp_path / "rix.toml"
    toml.write_text('ae_title = "FROMTOML"\ndicom_port = 2000\nhttp = "127.0.0.1:9000"\n')
    env = {"RIX_DICOM_PORT": "3000", "RIX_HTTP": "127.0.0.1:9100"}
    settings = load({"http": "127.0.0.1:9200"}, env=env, toml_path=toml)
    assert (settings.ae_title, settings.dicom_port, settings.http) == (
        "FROMTOML",
        3000,
        "127.0.0.1:9200",
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"dicom_port": 0},
        {"ae_title": "A" * 17},
        {"http": "nohostport"},
        {"duplicate_policy": "overwrite"},
        {"turnaround_targets": "urgent=1h"},
        {"report_destinations": "NGH=host"},
        {"turnaround_webhook": "https://hooks.example/rix"},  # its links need public_url
        {"turnaround_email": "desk@example.org", "smtp_host": "127.0.0.1"},
        {"alert_webhook": "https://hooks.example/rix"},  # gets turnaround alerts too
        {"public_url": "rix.region.example"},  # not absolute
        {"display_timezone": "Europe/Atlantis"},
    ],
)
def test_invalid_settings_are_refused_at_start(bad: dict[str, object]) -> None:
    with pytest.raises(SettingsError):
        load(bad, env={})
