"""Every setting is documented: in the README table and in `rix serve --help` (STYLE rule 17)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from rix.config import SETTINGS_HELP, Settings, SettingsError, load

README = (Path(__file__).parents[1] / "README.md").read_text()
NAMES = [f.name for f in fields(Settings)]


def test_every_setting_has_help_text() -> None:
    assert sorted(SETTINGS_HELP) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_setting_is_in_the_readme_table(name: str) -> None:
    assert f"| `{name}` | `RIX_{name.upper()}` |" in README


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
    ],
)
def test_invalid_settings_are_refused_at_start(bad: dict[str, object]) -> None:
    with pytest.raises(SettingsError):
        load(bad, env={})
