"""The ``rix`` command: parses, calls one function, prints. No logic of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rix import config
from rix.config import SETTINGS_HELP, Settings

app = typer.Typer(help="rix: Regional Imaging eXchange.", no_args_is_help=True)
db_app = typer.Typer(help="The index database.", no_args_is_help=True)
ae_app = typer.Typer(help="The registry of DICOM peers (AE titles).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(ae_app, name="ae")
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


@app.command()
def serve(
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
    dicom_host: Annotated[str | None, typer.Option(help=SETTINGS_HELP["dicom_host"])] = None,
    dicom_port: Annotated[int | None, typer.Option(help=SETTINGS_HELP["dicom_port"])] = None,
    ae_title: Annotated[str | None, typer.Option(help=SETTINGS_HELP["ae_title"])] = None,
    http: Annotated[str | None, typer.Option(help=SETTINGS_HELP["http"])] = None,
    accept_any_ae: Annotated[
        bool | None,
        typer.Option("--accept-any-ae/--registered-ae-only", help=SETTINGS_HELP["accept_any_ae"]),
    ] = None,
    duplicate_policy: Annotated[
        str | None, typer.Option(help=SETTINGS_HELP["duplicate_policy"])
    ] = None,
    max_associations: Annotated[
        int | None, typer.Option(help=SETTINGS_HELP["max_associations"])
    ] = None,
    dicom_timeout: Annotated[
        float | None, typer.Option(help=SETTINGS_HELP["dicom_timeout"])
    ] = None,
) -> None:
    """Serve DICOM and HTTP from one process (the embedded default: SQLite + files)."""
    from rix import serve as serving

    settings = _settings(
        cfg,
        data=data,
        database_url=database_url,
        dicom_host=dicom_host,
        dicom_port=dicom_port,
        ae_title=ae_title,
        http=http,
        accept_any_ae=accept_any_ae,
        duplicate_policy=duplicate_policy,
        max_associations=max_associations,
        dicom_timeout=dicom_timeout,
    )
    console.print(
        f"rix: DICOM {settings.ae_title}@{settings.dicom_host}:{settings.dicom_port}, "
        f"HTTP http://{settings.http}, data {settings.data}"
    )
    serving.run(settings)


@db_app.command("upgrade")
def db_upgrade(cfg: ConfigOpt = None, data: DataOpt = None, database_url: DbOpt = None) -> None:
    """Apply the index schema migrations."""
    from rix.index import database

    settings = _settings(cfg, data=data, database_url=database_url)
    settings.data.mkdir(parents=True, exist_ok=True)
    engine = database.connect(settings.index_url)
    database.upgrade(engine)
    console.print(f"index at revision {database.current_revision(engine)}")


@ae_app.command("add")
def ae_add(
    title: str,
    host: Annotated[str, typer.Option(help="Host name or address of the peer.")],
    port: Annotated[int, typer.Option(help="DICOM port of the peer.")],
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Register a DICOM peer (a C-MOVE destination, an allowed caller)."""
    from rix.archive import open_archive
    from rix.index import aes

    if not 1 <= len(title) <= 16:
        raise typer.BadParameter("AE titles are 1 to 16 characters")
    archive = open_archive(_settings(cfg, data=data, database_url=database_url))
    aes.add(
        archive.engine, aes.RemoteAE(title=title, host=host, port=port, description=description)
    )
    archive.close()
    console.print(f"registered {title} at {host}:{port}")


@ae_app.command("list")
def ae_list(cfg: ConfigOpt = None, data: DataOpt = None, database_url: DbOpt = None) -> None:
    """List registered DICOM peers."""
    from rix.archive import open_archive
    from rix.index import aes

    archive = open_archive(_settings(cfg, data=data, database_url=database_url))
    table = Table("AE title", "host", "port", "description")
    for ae in aes.all_aes(archive.engine):
        table.add_row(ae.title, ae.host, str(ae.port), ae.description)
    archive.close()
    console.print(table)


@ae_app.command("remove")
def ae_remove(
    title: str, cfg: ConfigOpt = None, data: DataOpt = None, database_url: DbOpt = None
) -> None:
    """Remove a DICOM peer from the registry."""
    from rix.archive import open_archive
    from rix.index import aes

    archive = open_archive(_settings(cfg, data=data, database_url=database_url))
    found = aes.remove(archive.engine, title)
    archive.close()
    if not found:
        console.print(f"no AE titled {title}")
        raise typer.Exit(1)
    console.print(f"removed {title}")


if __name__ == "__main__":
    app()
