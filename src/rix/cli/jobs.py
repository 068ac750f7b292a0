"""``rix jobs|rules|transfer``: the job machinery from the command line. Each command
calls ``rix.routing.manage`` or ``rix.routing.transfer`` (checked and audited there)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Table

from rix import times
from rix.cli.options import (
    ConfigOpt,
    DataOpt,
    DbOpt,
    JsonOpt,
    console,
    operator,
    print_json,
    print_table,
)
from rix.cli.region import _changing

if TYPE_CHECKING:
    from rix.archive import Archive
    from rix.routing.rules import Rule

jobs_app = typer.Typer(help="The durable job queue: routing, transfers, prefetch, alerts.")
rules_app = typer.Typer(help="Routing rules (TOML).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(rules_app, name="rules")
    app.command("transfer")(transfer)


def _when(at: float | None) -> str:
    return "" if at is None else times.iso(at)


@jobs_app.command("list")
def jobs_list(
    state: Annotated[
        list[str] | None, typer.Option(help="pending, running, done, dead, cancelled.")
    ] = None,
    kind: Annotated[str, typer.Option(help="stable, send, transfer, prefetch, notify.")] = "",
    parent: Annotated[int | None, typer.Option(help="Deliveries of this transfer.")] = None,
    limit: Annotated[int, typer.Option(help="Newest first, at most this many.")] = 50,
    as_json: JsonOpt = False,
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """List jobs, newest first, with the counts by state (--json: {"jobs": [...] as
    /api/jobs gives them, "counts": {state: n}})."""
    from rix.jobs import queue
    from rix.jobs.queue import State
    from rix.routing import manage

    with _changing(cfg, data, database_url) as archive:
        states = [State(s) for s in state or []]
        found = manage.list_jobs(
            archive, operator(), states=states, kind=kind, parent_pk=parent, limit=limit
        )
        with archive.engine.connect() as conn:
            counts = queue.counts(conn)
    if as_json:
        print_json({"jobs": [manage.as_dict(j) for j in found], "counts": counts})
        return
    table = Table("id", "kind", "state", "prio", "tries", "progress", "due", "label", "error")
    for j in found:
        progress = f"{j.done}/{j.total}" if j.total else ""
        due = _when(j.run_at) if j.state is State.PENDING else _when(j.finished_at)
        table.add_row(
            str(j.pk),
            j.kind,
            j.state.value,
            str(j.priority),
            str(j.attempts),
            progress,
            due,
            j.label,
            j.last_error[:60] if console.is_terminal else j.last_error,
        )
    print_table(table)
    console.print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no jobs")


@jobs_app.command("retry")
def jobs_retry(
    job: int, cfg: ConfigOpt = None, data: DataOpt = None, database_url: DbOpt = None
) -> None:
    """Run a failed, dead-lettered or waiting job now."""
    from rix.routing import manage

    with _changing(cfg, data, database_url) as archive:
        found = manage.retry_job(archive, operator(), job)
    console.print(f"job {found.pk} is {found.state.value}, due now")


@jobs_app.command("cancel")
def jobs_cancel(
    job: int, cfg: ConfigOpt = None, data: DataOpt = None, database_url: DbOpt = None
) -> None:
    """Cancel a job and its deliveries not yet sent."""
    from rix.routing import manage

    with _changing(cfg, data, database_url) as archive:
        found = manage.cancel_job(archive, operator(), job)
    console.print(f"job {found.pk} is {found.state.value}")


@rules_app.command("load")
def rules_load(
    file: Path, cfg: ConfigOpt = None, data: DataOpt = None, database_url: DbOpt = None
) -> None:
    """Replace the routing rules with those in FILE (checked whole first)."""
    from rix.routing import manage

    with _changing(cfg, data, database_url) as archive:
        loaded = manage.load_rules(archive, operator(), file.read_text(encoding="utf-8"))
    console.print(f"{len(loaded)} routing rules in force: {', '.join(r.name for r in loaded)}")


@rules_app.command("show")
def rules_show(
    as_json: JsonOpt = False,
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Print the rules in force as TOML (--json: a list of {name, priority, when, send})."""
    from rix.routing import manage, rules

    with _changing(cfg, data, database_url) as archive:
        in_force = manage.rules_in_force(archive, operator())
    if as_json:
        print_json([_rule(r) for r in in_force])
        return
    print(rules.to_toml(in_force), end="")


def _rule(rule: Rule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "priority": rule.priority.name.lower(),
        "when": {k: list(v) for k, v in rule.when.items()},
        "send": rule.send.as_dict(),
    }


@rules_app.command("test")
def rules_test(
    study: str,
    as_json: JsonOpt = False,
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Which rules a stored study matches, and what they look at; nothing is sent
    (--json: {"study", "rules": [{name, matches, send}]})."""
    from rix.routing import manage, stability

    with _changing(cfg, data, database_url) as archive:
        in_force = manage.rules_in_force(archive, operator())
        with archive.engine.connect() as conn:
            facts = stability.facts(conn, study)
    if facts is None:
        console.print(f"[red]no study {study}[/red]")
        raise typer.Exit(1)
    if as_json:
        matched = [_rule(r) | {"matches": r.matches(facts)} for r in in_force]
        print_json({"study": study, "rules": matched})
        return
    console.print(facts)
    for rule in in_force:
        mark = "[green]matches[/green]" if rule.matches(facts) else "no match"
        console.print(f"{rule.name}: {mark} -> {rule.send.key}")


def transfer(
    *,
    to: Annotated[str, typer.Option(help="The receiving trust.")],
    nhs_number: Annotated[str, typer.Option(help="The patient's NHS number.")] = "",
    patient: Annotated[str, typer.Option(help="Or one record: ISSUER/ID.")] = "",
    source: Annotated[str, typer.Option("--from", help="The trust the patient leaves.")] = "",
    days: Annotated[int | None, typer.Option(help="Studies this many days back (0: all).")] = None,
    priority: Annotated[str, typer.Option(help="routine, urgent or emergency.")] = "urgent",
    wait: Annotated[
        bool,
        typer.Option(
            help="Show delivery progress until done; exit 1, naming them, when any delivery "
            "ended dead or cancelled."
        ),
    ] = False,
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """A patient moves to another trust: send their recent images to its PACS."""
    from rix.jobs.queue import Priority
    from rix.routing import transfer as transfers

    with _changing(cfg, data, database_url) as archive:
        pk = transfers.request(
            archive,
            operator(),
            to_trust=to,
            from_trust=source,
            nhs_number=nhs_number,
            patient=patient,
            days=days,
            priority=Priority.named(priority),
        )
        console.print(f"transfer queued as job {pk}; rix serve's workers send it")
        if wait:
            _follow(archive, pk)


def _follow(archive: Archive, pk: int) -> None:
    """Deliveries finished of all, as a bar, until every one has finished."""
    from rix.jobs import queue
    from rix.jobs.queue import State

    settled = (State.DONE, State.DEAD, State.CANCELLED)
    with Progress(console=console) as bar:
        task = bar.add_task("deliveries", total=None)
        while True:
            with archive.engine.connect() as conn:
                parent = queue.get(conn, pk)
                children = queue.listing(conn, parent_pk=pk, limit=100_000)
            finished = sum(1 for c in children if c.state in settled)
            bar.update(task, total=len(children) or None, completed=finished)
            if parent.state in settled and finished == len(children):
                break
            time.sleep(0.5)
    failed = [c for c in children if c.state is not State.DONE]
    console.print(f"{len(children) - len(failed)} of {len(children)} studies delivered")
    if parent.state is not State.DONE:
        console.print(f"[red]transfer job {pk} {parent.state.value}: {parent.last_error}[/red]")
    for c in failed:
        console.print(f"[red]delivery job {c.pk} ({c.label}) {c.state.value}: {c.last_error}[/red]")
    if failed or parent.state is not State.DONE:
        raise typer.Exit(1)
