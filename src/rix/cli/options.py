"""Options and output shared by the ``rix`` commands (``rix.cli``, ``rix.cli_region``)."""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from rix import config
from rix.config import SETTINGS, Settings

if TYPE_CHECKING:
    from rix.access import Principal
    from rix.archive import Archive

console = Console()

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (env RIX_CONFIG).")
]
DataOpt = Annotated[Path | None, typer.Option("--data", help=SETTINGS["data"].help)]
DbOpt = Annotated[str | None, typer.Option("--database-url", help=SETTINGS["database_url"].help)]
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json", help="Print one JSON document on stdout instead: every value whole, for scripts."
    ),
]


def print_json(document: object) -> None:
    """``document`` as JSON on stdout, alone: nothing else a listing prints goes with it."""
    json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def print_table(table: Table) -> None:
    """On a terminal, as wide as the terminal; piped or redirected, as wide as its widest
    row, so no value (a UID, an NHS number) is cut or wrapped for the reading script."""
    if console.is_terminal:
        console.print(table)
        return
    wide = Console(width=1_000_000)
    width = Measurement.get(wide, wide.options, table).maximum
    Console(width=width, no_color=True, highlight=False).print(table)


def _setting_option(name: str) -> Any:
    """Setting ``name``'s option as its declaration in ``rix.config`` spells it, with its
    help (which names its ``RIX_*`` variable and its default). Left out, it is None, so the
    environment, the TOML file or the default decides."""
    declared = SETTINGS[name]
    return Annotated[declared.kind | None, typer.Option(*declared.flags, help=declared.help)]


def with_setting_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command(cfg, **flags)`` a ``--config`` option and one option per declared
    setting, so a setting added to ``rix.config`` is a ``rix serve`` flag with its help
    without being written again here. typer reads parameters from the signature
    (``inspect.signature`` honours ``__signature__``, PEP 362)."""
    parameters = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind)
        for name, kind in [("cfg", ConfigOpt), *((n, _setting_option(n)) for n in SETTINGS)]
    ]
    signature = inspect.Signature(parameters, return_annotation=None)
    command.__signature__ = signature  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
    return command


def _settings(cfg: Path | None, **flags: Any) -> Settings:
    try:
        return config.load(flags, toml_path=cfg)
    except config.SettingsError as exc:
        console.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(2) from exc


@contextmanager
def _archive(cfg: Path | None, data: Path | None, database_url: str | None) -> Iterator[Archive]:
    from rix.serve import open_archive

    archive = open_archive(_settings(cfg, data=data, database_url=database_url))
    try:
        yield archive
    finally:
        archive.close()


@contextmanager
def _progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def operator() -> Principal:
    """The command line runs on the server as rix itself; the audit trail names the
    operating-system account that ran it."""
    import getpass

    from rix.access import Principal, PrincipalKind

    return Principal(kind=PrincipalKind.SYSTEM, name=f"cli:{getpass.getuser()}", source="cli")
