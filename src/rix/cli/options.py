"""Options and output shared by the ``rix`` commands (``rix.cli``, ``rix.cli_region``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from rix import config
from rix.config import SETTINGS_HELP, Settings

if TYPE_CHECKING:
    from rix.access import Principal
    from rix.archive import Archive

console = Console()

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (env RIX_CONFIG).")
]
DataOpt = Annotated[Path | None, typer.Option("--data", help=SETTINGS_HELP["data"])]
DbOpt = Annotated[str | None, typer.Option("--database-url", help=SETTINGS_HELP["database_url"])]


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
