"""Administration pages: trusts and sites, DICOM peers (AEs), users, sharing agreements,
the MPI review list and the job queue.

The pages are a front end: every change is a call of ``rix.region.admin`` (or
``rix.routing.manage`` for jobs), which checks the caller's roles and writes the change
and its audit event in one transaction, exactly as the API and the command line do; the
lists are the API's own answers (``rix.web.api``), so a trust administrator sees here
only what the API would show them. Forms a user cannot use are hidden, but hiding is a
courtesy: the decision is ``rix.region.admin``'s.

After a change the browser is sent back to the page (303, POST/redirect/GET) with a code
naming what was done (``?done=trust``), never the values themselves: URLs end up in logs
and browser history, and carry no patient data. A refused or invalid change
shows the same page with the reason and the refusal's status, and the values entered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError

from rix import audit
from rix.access import ADMIN_ROLES, Principal, checks, trail
from rix.admin import region as admin
from rix.archive import Archive
from rix.auth.users import Role, parse_roles
from rix.errors import Conflict, RixError
from rix.jobs import queue
from rix.jobs.queue import State
from rix.region import aes
from rix.routing import manage
from rix.web.api import region as region_api
from rix.web.context import archive_of
from rix.web.portal import pages

router = APIRouter(prefix="/admin", include_in_schema=False)
User = Annotated[Principal, Depends(pages.user)]
M = TypeVar("M", bound=BaseModel)
MAX_ID = 2**31 - 1  # PostgreSQL's integer: a larger id is a bad form, not a database error

DONE = {
    "trust": "Trust saved.",
    "site": "Site saved.",
    "ae": "DICOM peer saved.",
    "ae-removed": "DICOM peer removed.",
    "ae-unknown": "No DICOM peer had that title.",
    "user": "User saved.",
    "user-disabled": "User disabled: their sessions and tokens no longer work.",
    "tokens-revoked": "The user's API tokens were revoked.",
    "agreement": "Sharing agreement added.",
    "agreement-exists": "Those trusts already had an agreement (its worklist setting as given).",
    "agreement-ended": "Sharing agreement ended.",
    "agreement-unknown": "Those trusts had no sharing agreement.",
    "review-dismissed": "Review closed without linking.",
    "job-retried": "Job queued to run now.",
    "job-cancelled": "Job cancelled.",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Section:
    """One administration page: where it is, who may open it, and what it shows."""

    path: str
    title: str
    template: str
    facts: Callable[[Request, Principal, str], dict[str, Any]]  # (request, me, edit)
    roles: tuple[Role, ...] = ADMIN_ROLES

    def open_to(self, principal: Principal) -> bool:
        return bool(principal.roles & set(self.roles))


def _region(me: Principal) -> bool:
    return Role.REGION_ADMIN in me.roles


def _trust_codes(request: Request) -> list[str]:
    return [t["code"] for t in region_api.list_trusts(request)["trusts"]]


def _trusts_facts(request: Request, me: Principal, edit: str) -> dict[str, Any]:
    found = region_api.list_trusts(request)["trusts"]
    entered = next(
        (
            {k: t[k] or "" for k in ("code", "name", "issuer", "pacs")}
            for t in found
            if t["code"] == edit.upper()
        ),
        {},
    )
    codes = [t["code"] for t in found]
    return {"trusts": found, "entered": entered, "site_trusts": checks.manageable_trusts(me, codes)}


def _aes_facts(request: Request, me: Principal, edit: str) -> dict[str, Any]:
    peers = region_api.list_aes(request)
    entered = next(
        (
            {k: str(p[k]) for k in ("title", "host", "port", "trust", "kind", "description")}
            for p in peers
            if p["title"] == edit
        ),
        {},
    )
    mine = checks.manageable_trusts(me, _trust_codes(request))
    for peer in peers:
        peer["removable"] = _region(me) or (bool(peer["trust"]) and peer["trust"] in mine)
    return {"aes": peers, "entered": entered, "ae_trusts": mine, "ae_kinds": list(aes.Kind)}


def _users_facts(request: Request, me: Principal, edit: str) -> dict[str, Any]:
    found = region_api.list_users(request)
    entered: dict[str, str] = {}
    for u in found:
        if u["username"] == edit:
            entered = {
                "username": u["username"],
                "display_name": u["display_name"],
                "trust": u["trust"],
            }
            entered.update({f"role-{r}": "on" for r in u["roles"]})
    grantable = checks.grantable_roles(me)
    return {
        "users": found,
        "entered": entered,
        "user_trusts": checks.manageable_trusts(me, _trust_codes(request)),
        "grantable": grantable,
    }


def _agreements_facts(request: Request, me: Principal, edit: str) -> dict[str, Any]:
    del me, edit
    listed = region_api.list_trusts(request)
    return {
        "agreements": listed["agreements"],
        "codes": [t["code"] for t in listed["trusts"]],
        "entered": {},
    }


def _mpi_facts(request: Request, me: Principal, edit: str) -> dict[str, Any]:
    """Open reviews name patients (issuer/ID, NHS number): showing them is an audited read."""
    del edit
    reviews = region_api.mpi_reviews(request)
    archive = archive_of(request)
    detail = {"mpi_reviews": len(reviews)}
    trail.record(archive.writer.post, me, audit.Kind.QUERY, audit.Outcome.SUCCESS, None, detail)
    return {"reviews": reviews, "entered": {}}


def _jobs_facts(request: Request, me: Principal, edit: str) -> dict[str, Any]:
    """The newest jobs of the user's trust (all for a region administrator), ``edit`` being
    the state to show, if one is chosen."""
    archive = archive_of(request)
    states = [State(edit)] if edit in set(State) else []
    found = manage.list_jobs(archive, me, states=states, limit=100)
    with archive.engine.connect() as conn:
        counts = queue.counts(conn, trust_pk=checks.administered_trust(me))
    return {
        "jobs": found,
        "counts": [(s.value, counts.get(s.value, 0)) for s in State],
        "state": edit if states else "",
        "retryable": {State.PENDING, State.DEAD, State.CANCELLED},
        "cancellable": {State.PENDING, State.RUNNING},
        "entered": {},
    }


def _overview_facts(request: Request, me: Principal, edit: str) -> dict[str, Any]:
    del edit
    archive = archive_of(request)
    listed = region_api.list_trusts(request)
    with archive.engine.connect() as conn:
        counts = queue.counts(conn, trust_pk=checks.administered_trust(me))
    return {
        "tally": {
            "trusts": len(listed["trusts"]),
            "aes": len(region_api.list_aes(request)),
            "users": len(region_api.list_users(request)),
            "agreements": len(listed["agreements"]),
        },
        "counts": [(s.value, counts.get(s.value, 0)) for s in State],
        "entered": {},
    }


OVERVIEW = Section(
    path="/admin", title="Administration", template="admin.html", facts=_overview_facts
)
TRUSTS = Section(
    path="/admin/trusts",
    title="Trusts and sites",
    template="admin_trusts.html",
    facts=_trusts_facts,
)
AES = Section(path="/admin/aes", title="DICOM peers", template="admin_aes.html", facts=_aes_facts)
USERS = Section(path="/admin/users", title="Users", template="admin_users.html", facts=_users_facts)
AGREEMENTS = Section(
    path="/admin/agreements",
    title="Sharing agreements",
    template="admin_agreements.html",
    facts=_agreements_facts,
)
MPI = Section(
    path="/admin/mpi",
    title="MPI reviews",
    template="admin_mpi.html",
    facts=_mpi_facts,
    roles=(Role.REGION_ADMIN,),
)
JOBS = Section(path="/admin/jobs", title="Jobs", template="jobs.html", facts=_jobs_facts)
SECTIONS = (OVERVIEW, TRUSTS, AES, USERS, AGREEMENTS, MPI, JOBS)


def _show(
    request: Request,
    me: Principal,
    section: Section,
    *,
    edit: str = "",
    done: str = "",
    entered: Mapping[str, str] | None = None,
    error: str = "",
    status: int = 200,
) -> Response:
    checks.require_role(me, *section.roles)
    facts = section.facts(request, me, edit)
    if entered is not None:  # a refused change: show what was typed, never a password
        facts["entered"] = {k: v for k, v in entered.items() if k not in ("password", "csrf")}
    context = {
        **facts,
        "section": section,
        "sections": [s for s in SECTIONS if s.open_to(me)],
        "region": _region(me),
        "done": DONE.get(done, ""),
        "error": error,
    }
    return pages.render(request, section.template, context, status=status)


Change = Callable[[Archive, Principal, dict[str, str]], str]


async def _act(request: Request, me: Principal, section: Section, change: Change) -> Response:
    """Check the form's CSRF token, make the change, and go back to the page; a refusal
    or bad input shows the page again with the reason, under the refusal's status."""
    form = await pages.form_of(request)
    checks.require_role(me, *section.roles)
    try:
        done = await run_in_threadpool(change, archive_of(request), me, form)
    except RixError as exc:
        return await run_in_threadpool(
            _show, request, me, section, entered=form, error=exc.reason, status=exc.http_status
        )
    return RedirectResponse(f"{section.path}?done={done}", status_code=303)


def _valid(model: type[M], values: Mapping[str, Any]) -> M:
    """The API's own input rules (``rix.web.api``), their failure a readable refusal."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "form"
        raise Conflict(f"{field.replace('_', ' ')}: {first['msg']}") from None


def _row_id(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_ID:
        raise Conflict("not a valid id")
    return int(text)


# --- trusts and sites ---------------------------------------------------------------------


def _save_trust(archive: Archive, me: Principal, form: dict[str, str]) -> str:
    body = _valid(
        region_api.TrustIn, {k: form.get(k, "").strip() for k in ("code", "name", "issuer", "pacs")}
    )
    admin.add_trust(archive, me, body.code, body.name, body.issuer, body.pacs)
    return "trust"


def _save_site(archive: Archive, me: Principal, form: dict[str, str]) -> str:
    trust = form.get("trust", "").strip()
    if not trust:
        raise Conflict("choose the trust the site belongs to")
    site = {"code": form.get("site_code", "").strip(), "name": form.get("site_name", "").strip()}
    body = _valid(region_api.SiteIn, site)
    admin.add_site(archive, me, trust, body.code, body.name)
    return "site"


@router.get("", response_class=HTMLResponse)
def overview(request: Request, me: User) -> Response:
    return _show(request, me, OVERVIEW)


@router.get("/trusts", response_class=HTMLResponse)
def trusts_page(request: Request, me: User, done: str = "", edit: str = "") -> Response:
    return _show(request, me, TRUSTS, edit=edit, done=done)


@router.post("/trusts")
async def save_trust(request: Request, me: User) -> Response:
    return await _act(request, me, TRUSTS, _save_trust)


@router.post("/trusts/sites")
async def save_site(request: Request, me: User) -> Response:
    return await _act(request, me, TRUSTS, _save_site)


# --- DICOM peers ------------------------------------------------------------------------------


def _save_ae(archive: Archive, me: Principal, form: dict[str, str]) -> str:
    fields = ("title", "host", "port", "trust", "kind", "description")
    values = {k: form.get(k, "").strip() for k in fields}
    if not values["kind"]:  # a form from before kinds: the registry's default
        del values["kind"]
    body = _valid(region_api.AEIn, values)
    peer = aes.RemoteAE(
        title=body.title,
        host=body.host,
        port=body.port,
        description=body.description,
        kind=body.kind,
    )
    admin.add_ae(archive, me, peer, body.trust)
    return "ae"


def _remove_ae(archive: Archive, me: Principal, form: dict[str, str]) -> str:
    return "ae-removed" if admin.remove_ae(archive, me, form.get("title", "")) else "ae-unknown"


@router.get("/aes", response_class=HTMLResponse)
def aes_page(request: Request, me: User, done: str = "", edit: str = "") -> Response:
    return _show(request, me, AES, edit=edit, done=done)


@router.post("/aes")
async def save_ae(request: Request, me: User) -> Response:
    return await _act(request, me, AES, _save_ae)


@router.post("/aes/remove")
async def remove_ae(request: Request, me: User) -> Response:
    return await _act(request, me, AES, _remove_ae)


# --- users ------------------------------------------------------------------------------------


def _save_user(archive: Archive, me: Principal, form: dict[str, str]) -> str:
    body = _valid(
        region_api.UserIn,
        {
            "username": form.get("username", "").strip(),
            "roles": [r.value for r in Role if form.get(f"role-{r.value}")],
            "trust": form.get("trust", "").strip(),
            "display_name": form.get("display_name", "").strip(),
            "password": form.get("password", ""),
            "email": form.get("email", "").strip(),
        },
    )
    admin.add_user(
        archive,
        me,
        username=body.username,
        roles=parse_roles(",".join(body.roles)),
        trust=body.trust,
        display_name=body.display_name,
        password=body.password,
        email=body.email,
    )
    return "user"


def _disable_user(archive: Archive, me: Principal, form: dict[str, str]) -> str:
    admin.disable_user(archive, me, form.get("username", ""))
    return "user-disabled"


def _revoke_tokens(archive: Archive, me: Principal, form: dict[str, str]) -> str:
    admin.revoke_tokens(archive, me, form.get("username", ""))
    return "tokens-revoked"


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, me: User, done: str = "", edit: str = "") -> Response:
    return _show(request, me, USERS, edit=edit, done=done)


@router.post("/users")
async def save_user(request: Request, me: User) -> Response:
    return await _act(request, me, USERS, _save_user)


@router.post("/users/disable")
async def disable_user(request: Request, me: User) -> Response:
    return await _act(request, me, USERS, _disable_user)


@router.post("/users/revoke-tokens")
async def revoke_tokens(request: Request, me: User) -> Response:
    return await _act(request, me, USERS, _revoke_tokens)


# --- sharing agreements -----------------------------------------------------------------------


def _add_agreement(archive: Archive, me: Principal, form: dict[str, str]) -> str:
    body = _valid(
        region_api.AgreementIn,
        {
            "trust": form.get("trust", "").strip(),
            "other": form.get("other", "").strip(),
            "description": form.get("description", "").strip(),
            "names_before_claim": form.get("hide_names", "") != "yes",
        },
    )
    added = admin.add_agreement(
        archive,
        me,
        body.trust,
        body.other,
        body.description,
        names_before_claim=body.names_before_claim,
    )
    return "agreement" if added else "agreement-exists"


def _end_agreement(archive: Archive, me: Principal, form: dict[str, str]) -> str:
    ended = admin.remove_agreement(archive, me, form.get("trust", ""), form.get("other", ""))
    return "agreement-ended" if ended else "agreement-unknown"


@router.get("/agreements", response_class=HTMLResponse)
def agreements_page(request: Request, me: User, done: str = "") -> Response:
    return _show(request, me, AGREEMENTS, done=done)


@router.post("/agreements")
async def add_agreement(request: Request, me: User) -> Response:
    return await _act(request, me, AGREEMENTS, _add_agreement)


@router.post("/agreements/end")
async def end_agreement(request: Request, me: User) -> Response:
    return await _act(request, me, AGREEMENTS, _end_agreement)


# --- MPI reviews ------------------------------------------------------------------------------


def _dismiss_review(archive: Archive, me: Principal, form: dict[str, str]) -> str:
    admin.dismiss_review(archive, me, _row_id(form.get("review", "")))
    return "review-dismissed"


@router.get("/mpi", response_class=HTMLResponse)
def mpi_page(request: Request, me: User, done: str = "") -> Response:
    return _show(request, me, MPI, done=done)


@router.post("/mpi/dismiss")
async def dismiss_review(request: Request, me: User) -> Response:
    return await _act(request, me, MPI, _dismiss_review)


# --- jobs -------------------------------------------------------------------------------------


def _retry_job(archive: Archive, me: Principal, form: dict[str, str]) -> str:
    manage.retry_job(archive, me, _row_id(form.get("job", "")))
    return "job-retried"


def _cancel_job(archive: Archive, me: Principal, form: dict[str, str]) -> str:
    manage.cancel_job(archive, me, _row_id(form.get("job", "")))
    return "job-cancelled"


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, me: User, done: str = "", state: str = "") -> Response:
    return _show(request, me, JOBS, edit=state, done=done)


@router.post("/jobs/retry")
async def retry_job(request: Request, me: User) -> Response:
    return await _act(request, me, JOBS, _retry_job)


@router.post("/jobs/cancel")
async def cancel_job(request: Request, me: User) -> Response:
    return await _act(request, me, JOBS, _cancel_job)
