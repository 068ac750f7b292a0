"""The ``rix`` command: parses, calls one function, prints. No logic of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import func, select

from rix.cli import jobs
from rix.cli import region as cli_region
from rix.cli import viewer as cli_viewer
from rix.cli.options import (
    ConfigOpt,
    DataOpt,
    DbOpt,
    JsonOpt,
    _archive,
    _progress,
    _settings,
    console,
    operator,
    print_json,
    print_table,
    with_setting_options,
)

app = typer.Typer(help="rix: Regional Imaging eXchange.", no_args_is_help=True)
db_app = typer.Typer(help="The index database.", no_args_is_help=True)
ae_app = typer.Typer(help="The registry of DICOM peers (AE titles).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(ae_app, name="ae")
cli_region.register(app)
jobs.register(app)
cli_viewer.register(app)


@app.command()
@with_setting_options
def serve(cfg: Path | None = None, **flags: Any) -> None:
    """Serve DICOM, HTTP and the job workers from one process (the embedded default:
    SQLite + files), or some of them (``--role``) on a node of a region."""
    from rix import serve as serving

    settings = _settings(cfg, **flags)
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
    trust: Annotated[
        str, typer.Option(help="The trust it belongs to: what it sends is that trust's.")
    ] = "",
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    kind: Annotated[
        str,
        typer.Option(
            help="pacs, workstation, modality or other: studies are sent only to a PACS "
            "or a workstation."
        ),
    ] = "pacs",
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Register a DICOM peer (a C-MOVE destination, an allowed caller)."""
    from rix.admin import region as admin
    from rix.errors import RixError
    from rix.region import aes

    if not 1 <= len(title) <= 16:
        raise typer.BadParameter("AE titles are 1 to 16 characters")
    if kind not in set(aes.Kind):
        raise typer.BadParameter(f"kind is one of {', '.join(aes.Kind)}")
    peer = aes.RemoteAE(
        title=title, host=host, port=port, description=description, kind=aes.Kind(kind)
    )
    with _archive(cfg, data, database_url) as archive:
        try:
            admin.add_ae(archive, operator(), peer, trust)
        except RixError as exc:
            console.print(f"[red]{exc.reason}[/red]")
            raise typer.Exit(1) from exc
    console.print(
        f"registered {title} at {host}:{port}" + (f" for {trust.upper()}" if trust else "")
    )


@ae_app.command("list")
def ae_list(
    as_json: JsonOpt = False,
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """List registered DICOM peers (--json: a list of {title, host, port, trust, kind,
    description})."""
    from rix.region import aes

    with _archive(cfg, data, database_url) as archive:
        found = aes.all_aes(archive.engine)
    if as_json:
        print_json(
            [
                {
                    "title": ae.title,
                    "host": ae.host,
                    "port": ae.port,
                    "trust": ae.trust.code if ae.trust else None,
                    "kind": ae.kind.value,
                    "description": ae.description,
                }
                for ae in found
            ]
        )
        return
    table = Table("AE title", "host", "port", "trust", "kind", "description")
    for ae in found:
        trust = ae.trust.code if ae.trust else "-"
        table.add_row(ae.title, ae.host, str(ae.port), trust, ae.kind.value, ae.description)
    print_table(table)


@ae_app.command("remove")
def ae_remove(
    title: str, cfg: ConfigOpt = None, data: DataOpt = None, database_url: DbOpt = None
) -> None:
    """Remove a DICOM peer from the registry."""
    from rix.admin import region as admin

    with _archive(cfg, data, database_url) as archive:
        found = admin.remove_ae(archive, operator(), title)
    if not found:
        console.print(f"no AE titled {title}")
        raise typer.Exit(1)
    console.print(f"removed {title}")


@app.command("import")
def import_(
    paths: Annotated[list[Path], typer.Argument(help="Files, folders, zip files or media.")],
    trust: Annotated[
        str, typer.Option(help="The trust whose images these are (its issuer, its access).")
    ] = "",
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Import DICOM files, folders, zips and CD/DVD media (idempotent when re-run)."""
    from rix.errors import RixError
    from rix.ingest import importer
    from rix.region import trusts

    with (
        _archive(cfg, data, database_url) as archive,
        _progress("importing", importer.count_sources(paths)) as advance,
    ):
        try:
            with archive.engine.connect() as conn:
                owner = trusts.get_trust(conn, trust) if trust else None
        except RixError as exc:
            console.print(f"[red]{exc.reason}[/red]")
            raise typer.Exit(2) from exc
        summary = importer.import_paths(archive, paths, advance, trust=owner, principal=operator())
    console.print(
        f"stored {summary.stored}, already present {summary.already_present}, "
        f"duplicates kept aside {summary.duplicates_kept}, rejected {len(summary.refused)}, "
        f"skipped {len(summary.skipped)}"
    )
    if summary.refused:
        table = Table("rejected file", "reason")
        for problem in summary.refused[:50]:
            table.add_row(problem.file, problem.reason)
        console.print(table)
        if len(summary.refused) > 50:
            console.print(f"... and {len(summary.refused) - 50} more")
        raise typer.Exit(1)


@app.command()
def export(
    study_uids: Annotated[list[str], typer.Argument(help="Study Instance UIDs to export.")],
    to: Annotated[Path, typer.Option("--to", help="A folder, or a file ending in .zip.")],
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Export studies with a DICOMDIR, files exactly as stored (reconciled outside media
    under the local record's identity)."""
    from rix.errors import RixError
    from rix.retrieve import export as exporting

    with _archive(cfg, data, database_url) as archive:
        try:
            with _progress("exporting", 0) as advance:
                summary = exporting.export_studies(
                    archive, study_uids, to, advance, principal=operator()
                )
        except RixError as exc:
            console.print(f"[red]{exc.reason}[/red]")
            raise typer.Exit(1) from exc
    console.print(f"exported {summary.instances} instances ({summary.bytes:,} bytes) to {to}")


@app.command()
def reindex(cfg: ConfigOpt = None, data: DataOpt = None, database_url: DbOpt = None) -> None:
    """Rebuild the index from the object store alone (server stopped) and report differences."""
    from rix.ingest import reindex as reindexing

    with _archive(cfg, data, database_url) as archive:
        total = reindexing.count_objects(archive)
        with _progress("reindexing", total) as advance:
            report = reindexing.reindex(archive, advance)
    console.print(
        f"indexed {report.indexed} instances and {report.conflicts} kept copies; "
        f"{report.differences} differences from the previous index"
    )
    for label, items in (
        ("added", report.added),
        ("dropped", report.dropped),
        ("changed", report.changed),
    ):
        for uid in items[:20]:
            console.print(f"  {label}: {uid}")
    for key, reason in report.unreadable:
        console.print(f"  [red]unreadable[/red] {key}: {reason}")
    if report.unreadable:
        raise typer.Exit(1)


@app.command()
def verify(cfg: ConfigOpt = None, data: DataOpt = None, database_url: DbOpt = None) -> None:
    """Re-hash every stored object and report each one that differs from the index."""
    from rix.index import verify as verifying
    from rix.index.schema import instances

    with _archive(cfg, data, database_url) as archive:
        with archive.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(instances)).scalar_one()
        with _progress("verifying", total) as advance:
            report = verifying.verify(archive.engine, archive.store, advance)
    console.print(f"checked {report.checked} objects")
    for key in report.mismatched:
        console.print(f"  [red]checksum mismatch[/red] {key}")
    for key in report.missing:
        console.print(f"  [red]missing[/red] {key}")
    for key, reason in report.unreadable:
        console.print(f"  [red]unreadable[/red] {key}: {reason}")
    for key in report.unindexed:
        console.print(f"  not in the index (never acknowledged; `rix reindex` adds it): {key}")
    if not report.ok:
        raise typer.Exit(1)
    console.print("all objects match the index")


@app.command()
def demo(cfg: ConfigOpt = None, data: DataOpt = None, database_url: DbOpt = None) -> None:
    """Load the synthetic demo region (idempotent)."""
    from rix.cli import demo as demo_loader

    with (
        _archive(cfg, data, database_url) as archive,
        _progress("demo region", demo_loader.size()) as advance,
    ):
        stored = demo_loader.load(archive, advance)
    console.print(f"demo region: {stored} new instances, {demo_loader.size() - stored} present")
