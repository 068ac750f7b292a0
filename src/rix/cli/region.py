"""``rix trust|user|token|agreement|mpi|relationship|audit``: the region from the command
line. Each command calls ``rix.region.admin`` (checked and audited there) or a reader."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from rix import times
from rix.cli.options import (
    ConfigOpt,
    DataOpt,
    DbOpt,
    JsonOpt,
    _archive,
    console,
    operator,
    print_json,
    print_table,
)
from rix.errors import RixError

if TYPE_CHECKING:
    from rix.archive import Archive

trust_app = typer.Typer(help="Trusts of the region and their sites.", no_args_is_help=True)
user_app = typer.Typer(help="Users and their roles.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
agreement_app = typer.Typer(help="Sharing agreements between trusts.", no_args_is_help=True)
mpi_app = typer.Typer(help="The master patient index.", no_args_is_help=True)
relationship_app = typer.Typer(
    help="Legitimate relationships (orders, encounters, referrals).", no_args_is_help=True
)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(trust_app, name="trust")
    app.add_typer(user_app, name="user")
    app.add_typer(token_app, name="token")
    app.add_typer(agreement_app, name="agreement")
    app.add_typer(mpi_app, name="mpi")
    app.add_typer(relationship_app, name="relationship")
    app.add_typer(audit_app, name="audit")


def _fail(exc: RixError) -> typer.Exit:
    console.print(f"[red]{exc.reason}[/red]")
    return typer.Exit(1)


@contextmanager
def _changing(cfg: Path | None, data: Path | None, database_url: str | None) -> Iterator[Archive]:
    """The archive for one command; a refusal (a role, a missing trust) is printed, exit 1."""
    with _archive(cfg, data, database_url) as archive:
        try:
            yield archive
        except RixError as exc:
            raise _fail(exc) from exc


@trust_app.command("add")
def trust_add(
    code: str,
    name: Annotated[str, typer.Option(help="The trust's name.")],
    issuer: Annotated[
        str,
        typer.Option(
            help="Issuer of Patient ID of its hospital numbers (default: code; kept on update)."
        ),
    ] = "",
    pacs: Annotated[
        str | None,
        typer.Option(help="AE title of its PACS: where transfers and priors are sent."),
    ] = None,
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Add a trust (or update its name, issuer and PACS)."""
    from rix.admin import region as admin

    with _changing(cfg, data, database_url) as archive:
        trust = admin.add_trust(archive, operator(), code, name, issuer, pacs)
    console.print(f"trust {trust.code} ({trust.name}), issuer {trust.issuer}")


@trust_app.command("set")
def trust_set(
    code: str,
    shares_without_pin: Annotated[
        bool,
        typer.Option(
            "--shares-without-pin/--shares-need-pin",
            help="Whether the trust's staff may share a link with no PIN (default: need one).",
        ),
    ],
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Change a trust's settings."""
    from rix.admin import region as admin

    with _changing(cfg, data, database_url) as archive:
        trust = admin.set_shares_without_pin(archive, operator(), code, shares_without_pin)
    allowed = "may" if trust.shares_without_pin else "may not"
    console.print(f"trust {trust.code}: staff {allowed} share links without a PIN")


@trust_app.command("list")
def trust_list(
    as_json: JsonOpt = False,
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """List trusts, their sites and agreements (--json: {"trusts": [...], "agreements":
    [...]})."""
    from rix.region import trusts

    with _archive(cfg, data, database_url) as archive, archive.engine.connect() as conn:
        found = [(t, trusts.sites_of(conn, t.code)) for t in trusts.all_trusts(conn)]
        agreements = trusts.all_agreements(conn)
    if as_json:
        listed = [
            {
                "code": t.code,
                "name": t.name,
                "issuer": t.issuer,
                "pacs": t.pacs_ae,
                "sites": [{"code": code, "name": name} for code, name in sites],
            }
            for t, sites in found
        ]
        pairs = [
            {
                "trust": a.trust_a,
                "other": a.trust_b,
                "description": a.description,
                "names_before_claim": a.names_before_claim,
            }
            for a in agreements
        ]
        print_json({"trusts": listed, "agreements": pairs})
        return
    table = Table("code", "name", "issuer", "PACS", "sites")
    for t, sites in found:
        table.add_row(t.code, t.name, t.issuer, t.pacs_ae, ", ".join(code for code, _ in sites))
    print_table(table)
    for a in agreements:
        hidden = "" if a.names_before_claim else " (names hidden until a claim)"
        console.print(f"agreement: {a.trust_a} <-> {a.trust_b} {a.description}{hidden}")


@trust_app.command("site")
def site_add(
    trust: str,
    code: str,
    name: Annotated[str, typer.Option(help="The site's name.")],
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Add a site (a hospital) to a trust."""
    from rix.admin import region as admin

    with _changing(cfg, data, database_url) as archive:
        admin.add_site(archive, operator(), trust, code, name)
    console.print(f"site {code.upper()} of {trust.upper()}")


@agreement_app.command("add")
def agreement_add(
    trust: str,
    other: str,
    description: Annotated[str, typer.Option(help="Free text: the agreement's reference.")] = "",
    names_before_claim: Annotated[
        bool | None,
        typer.Option(
            "--names-before-claim/--hide-names-before-claim",
            help="Whether the shared reporting worklist names each trust's patients to the "
            "other's radiologists before they claim a study (new agreements: named; given "
            "for an agreement in force, changes it).",
        ),
    ] = None,
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Let two trusts share images (with a relationship or break-glass), both ways."""
    from rix.admin import region as admin

    with _changing(cfg, data, database_url) as archive:
        added = admin.add_agreement(
            archive, operator(), trust, other, description, names_before_claim=names_before_claim
        )
    console.print(f"agreement {trust.upper()} <-> {other.upper()}" + ("" if added else " exists"))


@agreement_app.command("remove")
def agreement_remove(
    trust: str, other: str, cfg: ConfigOpt = None, data: DataOpt = None, database_url: DbOpt = None
) -> None:
    """End a sharing agreement."""
    from rix.admin import region as admin

    with _changing(cfg, data, database_url) as archive:
        removed = admin.remove_agreement(archive, operator(), trust, other)
    if not removed:
        console.print("no such agreement")
        raise typer.Exit(1)
    console.print(f"agreement {trust.upper()} <-> {other.upper()} removed")


@user_app.command("add")
def user_add(
    username: str,
    roles: Annotated[
        str,
        typer.Option(
            help="Comma-separated: clinician, radiologist, radiographer, trust-admin, "
            "region-admin, auditor."
        ),
    ],
    trust: Annotated[str, typer.Option(help="The user's trust (code).")] = "",
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    email: Annotated[
        str, typer.Option(help="Where rix writes to them (share lockouts, second opinions).")
    ] = "",
    password: Annotated[
        str, typer.Option(help="Password for the login page; prompt with --password -.")
    ] = "",
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Add a user (or update their roles, trust and password)."""
    from rix.admin import region as admin
    from rix.auth.users import parse_roles

    if password == "-":
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with _changing(cfg, data, database_url) as archive:
        user = admin.add_user(
            archive,
            operator(),
            username=username,
            roles=parse_roles(roles),
            trust=trust,
            display_name=name,
            password=password,
            email=email,
        )
    where = user.trust.code if user.trust else "the region"
    console.print(f"user {user.username} of {where}: {', '.join(sorted(user.roles))}")


@user_app.command("list")
def user_list(
    as_json: JsonOpt = False,
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """List users (--json: a list of {username, name, trust, roles, active, email})."""
    from rix.auth import users

    with _archive(cfg, data, database_url) as archive, archive.engine.connect() as conn:
        found = users.all_users(conn)
    if as_json:
        print_json(
            [
                {
                    "username": u.username,
                    "name": u.display_name,
                    "trust": u.trust.code if u.trust else None,
                    "roles": sorted(u.roles),
                    "active": u.active,
                    "email": u.email,
                }
                for u in found
            ]
        )
        return
    table = Table("user", "name", "trust", "roles", "active")
    for u in found:
        trust = u.trust.code if u.trust else "-"
        table.add_row(u.username, u.display_name, trust, ", ".join(sorted(u.roles)), str(u.active))
    print_table(table)


@token_app.command("create")
def token_create(
    username: str,
    label: Annotated[str, typer.Option(help="What the token is for.")] = "",
    days: Annotated[float | None, typer.Option(help="Expires after this many days.")] = None,
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Print a new API token for USERNAME (shown once; only its hash is kept)."""
    from rix.admin import region as admin

    with _changing(cfg, data, database_url) as archive:
        token = admin.create_token(archive, operator(), username, label, days)
    print(token)


@token_app.command("revoke")
def token_revoke(
    username: str, cfg: ConfigOpt = None, data: DataOpt = None, database_url: DbOpt = None
) -> None:
    """End every API token of USERNAME."""
    from rix.admin import region as admin

    with _changing(cfg, data, database_url) as archive:
        count = admin.revoke_tokens(archive, operator(), username)
    console.print(f"revoked {count} token(s) of {username}")


@user_app.command("disable")
def user_disable(
    username: str, cfg: ConfigOpt = None, data: DataOpt = None, database_url: DbOpt = None
) -> None:
    """Disable a user: sign-in, sessions and API tokens stop working at once."""
    from rix.admin import region as admin

    with _changing(cfg, data, database_url) as archive:
        admin.disable_user(archive, operator(), username)
    console.print(f"{username} disabled")


@mpi_app.command("review")
def mpi_review(
    as_json: JsonOpt = False,
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Records waiting for an administrator: conflicts, invalid NHS numbers (--json: a list
    of {id, patient, nhs_number, kind, detail, created_at}, as /api/mpi/reviews)."""
    from rix.region import mpi

    with _archive(cfg, data, database_url) as archive, archive.engine.connect() as conn:
        reviews = mpi.open_reviews(conn)
    if as_json:
        print_json(
            [
                {
                    "id": r.id,
                    "patient": r.patient,
                    "nhs_number": r.nhs_number,
                    "kind": r.kind,
                    "detail": r.detail,
                    "created_at": r.created_at,
                }
                for r in reviews
            ]
        )
        return
    table = Table("id", "record", "NHS number", "problem", "detail")
    for r in reviews:
        table.add_row(str(r.id), r.patient, r.nhs_number, r.kind, json.dumps(r.detail))
    print_table(table)


@mpi_app.command("show")
def mpi_show(
    patient: str,
    as_json: JsonOpt = False,
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """A record (ISSUER/ID) and every record linked to it (--json: a list of {record,
    trust, birth_date, sex, nhs_number, link, person})."""
    from rix.region import mpi

    with _archive(cfg, data, database_url) as archive, archive.engine.connect() as conn:
        try:
            rec = mpi.find_record(conn, patient)
        except RixError as exc:
            raise _fail(exc) from exc
        linked = [rec] if rec.person_pk is None else mpi.records_of_person(conn, rec.person_pk)
    if as_json:
        print_json(
            [
                {
                    "record": r.ref,
                    "trust": r.trust or None,
                    "birth_date": r.birth_date,
                    "sex": r.sex,
                    "nhs_number": r.nhs_number,
                    "link": r.link_state,
                    "person": r.person_pk,
                }
                for r in linked
            ]
        )
        return
    table = Table("record", "trust", "birth date", "sex", "NHS number", "link")
    for r in linked:
        table.add_row(r.ref, r.trust or "-", r.birth_date, r.sex, r.nhs_number, r.link_state)
    print_table(table)


@mpi_app.command("link")
def mpi_link(
    patient: str,
    to: Annotated[str, typer.Option(help="The record (ISSUER/ID) to link it with.")],
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Link two records of one person by hand (final: never undone automatically)."""
    from rix.admin import region as admin

    with _changing(cfg, data, database_url) as archive:
        person = admin.link(archive, operator(), patient, to)
    console.print(f"{patient} linked to {to} (person {person})")


@mpi_app.command("unlink")
def mpi_unlink(
    patient: str, cfg: ConfigOpt = None, data: DataOpt = None, database_url: DbOpt = None
) -> None:
    """Take a record out of its person by hand (final: never re-linked automatically)."""
    from rix.admin import region as admin

    with _changing(cfg, data, database_url) as archive:
        admin.unlink(archive, operator(), patient)
    console.print(f"{patient} unlinked")


@mpi_app.command("dismiss")
def mpi_dismiss(
    review: int, cfg: ConfigOpt = None, data: DataOpt = None, database_url: DbOpt = None
) -> None:
    """Close a review item without linking."""
    from rix.admin import region as admin

    with _changing(cfg, data, database_url) as archive:
        admin.dismiss_review(archive, operator(), review)
    console.print(f"review {review} dismissed")


@mpi_app.command("nhs-number")
def mpi_nhs_number(
    patient: str,
    nhs_number: str,
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Give a record its NHS number (as HL7 ADT would); links it if it can."""
    from rix.admin import region as admin

    with _changing(cfg, data, database_url) as archive:
        rec = admin.assign_nhs_number(archive, operator(), patient, nhs_number)
    console.print(f"{rec.ref}: NHS number {rec.nhs_number}, link {rec.link_state or 'none'}")


@relationship_app.command("add")
def relationship_add(
    trust: str,
    kind: Annotated[str, typer.Option(help="order, encounter or referral.")],
    nhs_number: Annotated[str, typer.Option(help="The patient's NHS number.")] = "",
    patient: Annotated[str, typer.Option(help="Or a record, ISSUER/ID.")] = "",
    reference: Annotated[str, typer.Option(help="Order or encounter number.")] = "",
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Record that the patient has an order, encounter or referral at TRUST."""
    from rix.admin import region as admin

    if not (nhs_number or patient):
        raise typer.BadParameter("give --nhs-number or --patient")
    with _changing(cfg, data, database_url) as archive:
        admin.record_relationship(
            archive,
            operator(),
            trust=trust,
            nhs_number=nhs_number,
            patient=patient,
            kind=kind,
            reference=reference,
        )
    console.print(f"{kind} at {trust.upper()} recorded")


@audit_app.command("verify")
def audit_verify(cfg: ConfigOpt = None, data: DataOpt = None, database_url: DbOpt = None) -> None:
    """Check the hash chain: any edited or deleted event is reported."""
    from rix import audit

    with _archive(cfg, data, database_url) as archive:
        breaks = audit.verify_chain(archive.engine)
    for b in breaks:
        console.print(f"[red]event {b.event_id}: {b.problem}[/red]")
    if breaks:
        raise typer.Exit(1)
    console.print("audit chain intact")


@audit_app.command("search")
def audit_search(
    patient: Annotated[str, typer.Option(help="Record ISSUER/ID.")] = "",
    nhs_number: Annotated[str, typer.Option(help="Every record of this NHS number.")] = "",
    user: Annotated[str, typer.Option(help="What this user (or AE) did.")] = "",
    study: Annotated[str, typer.Option(help="Study Instance UID.")] = "",
    limit: Annotated[int, typer.Option(help="Newest first, at most this many.")] = 200,
    as_json: JsonOpt = False,
    cfg: ConfigOpt = None,
    data: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Who accessed this patient's images; what did this user access (--json: a list of
    the events, newest first)."""
    from rix import audit

    with _archive(cfg, data, database_url) as archive:
        events = audit.search(
            archive.engine,
            patient=patient,
            nhs_number=nhs_number,
            actor=user,
            study_uid=study,
            limit=limit,
        )
    if as_json:
        print_json([e.as_dict() for e in events])
        return
    table = Table("when", "what", "outcome", "who", "trust", "from", "patient", "study")
    for e in events:
        study = e.study_uid[-24:] if console.is_terminal else e.study_uid
        table.add_row(
            times.iso(e.at), e.kind, e.outcome, e.actor, e.trust, e.source, e.patient, study
        )
    print_table(table)
