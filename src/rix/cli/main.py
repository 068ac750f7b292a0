"""The ``rix`` command: parses, calls one function, prints. No logic of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import func, select

from rix.cli import jobs
from rix.cli import region as cli_region
from rix.cli.options import (
    ConfigOpt,
    DataOpt,
    DbOpt,
    _archive,
    _progress,
    _settings,
    console,
    operator,
)
from rix.config import SETTINGS_HELP

app = typer.Typer(help="rix: Regional Imaging eXchange.", no_args_is_help=True)
db_app = typer.Typer(help="The index database.", no_args_is_help=True)
ae_app = typer.Typer(help="The registry of DICOM peers (AE titles).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(ae_app, name="ae")
cli_region.register(app)
jobs.register(app)


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
    max_upload_mb: Annotated[int | None, typer.Option(help=SETTINGS_HELP["max_upload_mb"])] = None,
    dicom_timeout: Annotated[
        float | None, typer.Option(help=SETTINGS_HELP["dicom_timeout"])
    ] = None,
    break_glass_hours: Annotated[
        float | None, typer.Option(help=SETTINGS_HELP["break_glass_hours"])
    ] = None,
    session_hours: Annotated[
        float | None, typer.Option(help=SETTINGS_HELP["session_hours"])
    ] = None,
    oidc_issuer: Annotated[str | None, typer.Option(help=SETTINGS_HELP["oidc_issuer"])] = None,
    oidc_audience: Annotated[str | None, typer.Option(help=SETTINGS_HELP["oidc_audience"])] = None,
    oidc_jwks_url: Annotated[str | None, typer.Option(help=SETTINGS_HELP["oidc_jwks_url"])] = None,
    oidc_username_claim: Annotated[
        str | None, typer.Option(help=SETTINGS_HELP["oidc_username_claim"])
    ] = None,
    oidc_client_id: Annotated[
        str | None, typer.Option(help=SETTINGS_HELP["oidc_client_id"])
    ] = None,
    oidc_client_secret: Annotated[
        str | None, typer.Option(help=SETTINGS_HELP["oidc_client_secret"])
    ] = None,
    oidc_authorization_url: Annotated[
        str | None, typer.Option(help=SETTINGS_HELP["oidc_authorization_url"])
    ] = None,
    oidc_token_url: Annotated[
        str | None, typer.Option(help=SETTINGS_HELP["oidc_token_url"])
    ] = None,
    oidc_redirect_base: Annotated[
        str | None, typer.Option(help=SETTINGS_HELP["oidc_redirect_base"])
    ] = None,
    audit_syslog: Annotated[str | None, typer.Option(help=SETTINGS_HELP["audit_syslog"])] = None,
    audit_syslog_ca: Annotated[
        str | None, typer.Option(help=SETTINGS_HELP["audit_syslog_ca"])
    ] = None,
    dicom_tls_port: Annotated[
        int | None, typer.Option(help=SETTINGS_HELP["dicom_tls_port"])
    ] = None,
    dicom_tls_cert: Annotated[
        str | None, typer.Option(help=SETTINGS_HELP["dicom_tls_cert"])
    ] = None,
    dicom_tls_key: Annotated[str | None, typer.Option(help=SETTINGS_HELP["dicom_tls_key"])] = None,
    dicom_tls_ca: Annotated[str | None, typer.Option(help=SETTINGS_HELP["dicom_tls_ca"])] = None,
    roles: Annotated[
        str | None, typer.Option("--roles", "--role", help=SETTINGS_HELP["roles"])
    ] = None,
    workers: Annotated[int | None, typer.Option(help=SETTINGS_HELP["workers"])] = None,
    stable_seconds: Annotated[
        float | None, typer.Option(help=SETTINGS_HELP["stable_seconds"])
    ] = None,
    job_give_up_hours: Annotated[
        float | None, typer.Option(help=SETTINGS_HELP["job_give_up_hours"])
    ] = None,
    alert_webhook: Annotated[str | None, typer.Option(help=SETTINGS_HELP["alert_webhook"])] = None,
    transfer_days: Annotated[int | None, typer.Option(help=SETTINGS_HELP["transfer_days"])] = None,
    hl7_port: Annotated[int | None, typer.Option(help=SETTINGS_HELP["hl7_port"])] = None,
    import_expiry_hours: Annotated[
        float | None, typer.Option(help=SETTINGS_HELP["import_expiry_hours"])
    ] = None,
    turnaround_targets: Annotated[
        str | None, typer.Option(help=SETTINGS_HELP["turnaround_targets"])
    ] = None,
    turnaround_backlog: Annotated[
        int | None, typer.Option(help=SETTINGS_HELP["turnaround_backlog"])
    ] = None,
    turnaround_check_minutes: Annotated[
        float | None, typer.Option(help=SETTINGS_HELP["turnaround_check_minutes"])
    ] = None,
    turnaround_webhook: Annotated[
        str | None, typer.Option(help=SETTINGS_HELP["turnaround_webhook"])
    ] = None,
    turnaround_email: Annotated[
        str | None, typer.Option(help=SETTINGS_HELP["turnaround_email"])
    ] = None,
    prefetch_priors: Annotated[
        int | None, typer.Option(help=SETTINGS_HELP["prefetch_priors"])
    ] = None,
    report_destinations: Annotated[
        str | None, typer.Option(help=SETTINGS_HELP["report_destinations"])
    ] = None,
    smtp_host: Annotated[str | None, typer.Option(help=SETTINGS_HELP["smtp_host"])] = None,
    smtp_port: Annotated[int | None, typer.Option(help=SETTINGS_HELP["smtp_port"])] = None,
    smtp_from: Annotated[str | None, typer.Option(help=SETTINGS_HELP["smtp_from"])] = None,
    smtp_username: Annotated[str | None, typer.Option(help=SETTINGS_HELP["smtp_username"])] = None,
    smtp_password: Annotated[str | None, typer.Option(help=SETTINGS_HELP["smtp_password"])] = None,
    smtp_starttls: Annotated[bool | None, typer.Option(help=SETTINGS_HELP["smtp_starttls"])] = None,
    public_url: Annotated[str | None, typer.Option(help=SETTINGS_HELP["public_url"])] = None,
    share_max_days: Annotated[
        int | None, typer.Option(help=SETTINGS_HELP["share_max_days"])
    ] = None,
    viewer_dir: Annotated[Path | None, typer.Option(help=SETTINGS_HELP["viewer_dir"])] = None,
    portal_assets_dir: Annotated[
        Path | None, typer.Option(help=SETTINGS_HELP["portal_assets_dir"])
    ] = None,
) -> None:
    """Serve DICOM, HTTP and the job workers from one process (the embedded default:
    SQLite + files), or some of them (``--role``) on a node of a region."""
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
        max_upload_mb=max_upload_mb,
        break_glass_hours=break_glass_hours,
        session_hours=session_hours,
        oidc_issuer=oidc_issuer,
        oidc_audience=oidc_audience,
        oidc_jwks_url=oidc_jwks_url,
        oidc_username_claim=oidc_username_claim,
        oidc_client_id=oidc_client_id,
        oidc_client_secret=oidc_client_secret,
        oidc_authorization_url=oidc_authorization_url,
        oidc_token_url=oidc_token_url,
        oidc_redirect_base=oidc_redirect_base,
        audit_syslog=audit_syslog,
        audit_syslog_ca=audit_syslog_ca,
        dicom_tls_port=dicom_tls_port,
        dicom_tls_cert=dicom_tls_cert,
        dicom_tls_key=dicom_tls_key,
        dicom_tls_ca=dicom_tls_ca,
        roles=roles,
        workers=workers,
        stable_seconds=stable_seconds,
        job_give_up_hours=job_give_up_hours,
        alert_webhook=alert_webhook,
        transfer_days=transfer_days,
        hl7_port=hl7_port,
        import_expiry_hours=import_expiry_hours,
        turnaround_targets=turnaround_targets,
        turnaround_backlog=turnaround_backlog,
        turnaround_check_minutes=turnaround_check_minutes,
        turnaround_webhook=turnaround_webhook,
        turnaround_email=turnaround_email,
        prefetch_priors=prefetch_priors,
        report_destinations=report_destinations,
        smtp_host=smtp_host,
        smtp_port=smtp_port,
        smtp_from=smtp_from,
        smtp_username=smtp_username,
        smtp_password=smtp_password,
        smtp_starttls=smtp_starttls,
        public_url=public_url,
        share_max_days=share_max_days,
        viewer_dir=viewer_dir,
        portal_assets_dir=portal_assets_dir,
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
    trust: Annotated[
        str, typer.Option(help="The trust it belongs to: what it sends is that trust's.")
    ] = "",
    description: Annotated[str, typer.Option(help="Free text.")] = "",
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
    peer = aes.RemoteAE(title=title, host=host, port=port, description=description)
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
def ae_list(cfg: ConfigOpt = None, data: DataOpt = None, database_url: DbOpt = None) -> None:
    """List registered DICOM peers."""
    from rix.archive import open_archive
    from rix.region import aes

    archive = open_archive(_settings(cfg, data=data, database_url=database_url))
    table = Table("AE title", "host", "port", "trust", "description")
    for ae in aes.all_aes(archive.engine):
        trust = ae.trust.code if ae.trust else "-"
        table.add_row(ae.title, ae.host, str(ae.port), trust, ae.description)
    archive.close()
    console.print(table)


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
        f"duplicates kept aside {summary.duplicates_kept}, rejected {len(summary.rejected)}, "
        f"skipped {len(summary.skipped)}"
    )
    if summary.rejected:
        table = Table("rejected file", "reason")
        for label, reason in summary.rejected[:50]:
            table.add_row(label, reason)
        console.print(table)
        if len(summary.rejected) > 50:
            console.print(f"... and {len(summary.rejected) - 50} more")
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
            report = verifying.verify(archive, advance)
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
    from rix.cli import demo as demo_region

    with (
        _archive(cfg, data, database_url) as archive,
        _progress("demo region", demo_region.size()) as advance,
    ):
        stored = demo_region.load(archive, advance)
    console.print(f"demo region: {stored} new instances, {demo_region.size() - stored} present")
