"""``/api/shares``: second-opinion links over HTTP, for scripts and the EPR. Checks and
audit live in ``rix.access`` and ``rix.sharing``; the link and PIN are in the creation's
answer only, never again."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, StringConstraints

from rix.sharing import links
from rix.sharing.record import Share
from rix.web.auth import principal_of
from rix.web.context import archive_of
from rix.web.fields import Answer, RowId
from rix.web.portal.share_owner import base_url

router = APIRouter(prefix="/api", tags=["shares"])
Uid = Annotated[str, StringConstraints(pattern=r"^[0-9.]{1,64}$")]


class ShareIn(BaseModel):
    studies: list[Uid] = Field(min_length=1, max_length=links.MAX_STUDIES)
    recipient_name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    recipient_email: Annotated[str, StringConstraints(min_length=3, max_length=254)]
    purpose: Annotated[str, StringConstraints(max_length=2000)] = ""
    days: float | None = Field(None, gt=0, le=366)
    expires_at: float | None = Field(None, gt=0, description="Unix time; instead of days")
    download: bool = False
    pin: bool = Field(
        True,
        description="A PIN to pass another way; false only where the trust allows "
        "shares without one (else 403), and then on record",
    )


class OpinionOut(Answer):
    study_uid: str
    text: str
    key_images: list[str]  # SOP Instance UIDs
    sr_instance_uid: str
    created_at: float


class ShareOut(Answer):
    """A share; ``state`` is open, expired, revoked or locked; times are Unix seconds."""

    id: int
    state: str
    owner: str
    trust: str
    recipient_name: str
    recipient_email: str
    purpose: str
    studies: list[str]
    download: bool
    pin: bool
    created_at: float
    expires_at: float
    revoked_at: float | None
    locked_at: float | None
    opinions: list[OpinionOut]


class ShareCreatedOut(ShareOut):
    """The link and the PIN, in this answer only."""

    link: str
    pin_code: str
    mailed: bool
    unsent: str  # why the email did not go ('' when it did)


class ShareUseOut(Answer):
    """A use of the link, as the audit trail recorded it (``at``: Unix seconds)."""

    id: int
    at: float
    kind: str
    outcome: str
    actor: str
    source: str
    trust: str
    patient: str
    nhs_number: str
    study_uid: str
    detail: dict[str, Any]


class ShareDetailOut(ShareOut):
    uses: list[ShareUseOut]


def as_dict(share: Share) -> dict[str, Any]:
    return {
        "id": share.pk,
        "state": share.state(),
        "owner": share.owner_name,
        "trust": share.trust_code,
        "recipient_name": share.recipient_name,
        "recipient_email": share.recipient_email,
        "purpose": share.purpose,
        "studies": list(share.study_uids),
        "download": share.may_download,
        "pin": share.has_pin,
        "created_at": share.created_at,
        "expires_at": share.expires_at,
        "revoked_at": share.revoked_at,
        "locked_at": share.locked_at,
        "opinions": [
            {
                "study_uid": o.study_uid,
                "text": o.text,
                "key_images": o.key_images,
                "sr_instance_uid": o.sr_instance_uid,
                "created_at": o.created_at,
            }
            for o in share.opinions
        ],
    }


@router.post(
    "/shares",
    status_code=201,
    summary="Share studies of one patient for an opinion",
    response_model=ShareCreatedOut,
)
def create_share(request: Request, body: ShareIn) -> dict[str, Any]:
    created = links.create(
        archive_of(request),
        principal_of(request),
        study_uids=body.studies,
        recipient_name=body.recipient_name,
        recipient_email=body.recipient_email,
        purpose=body.purpose,
        base_url=base_url(request),
        days=body.days,
        expires_at=body.expires_at,
        may_download=body.download,
        with_pin=body.pin,
    )
    return {
        **as_dict(created.share),
        "link": created.link,
        "pin_code": created.pin,
        "mailed": not created.unsent,
        "unsent": created.unsent,
    }


@router.get("/shares", summary="Shares you manage, newest first", response_model=list[ShareOut])
def list_shares(request: Request) -> list[dict[str, Any]]:
    with archive_of(request).engine.connect() as conn:
        return [as_dict(s) for s in links.visible_to(conn, principal_of(request))]


@router.get(
    "/shares/{share_id}",
    summary="One share, with every use of its link",
    response_model=ShareDetailOut,
)
def get_share(request: Request, share_id: RowId) -> dict[str, Any]:
    archive = archive_of(request)
    with archive.engine.connect() as conn:
        share = links.managed(conn, principal_of(request), share_id)
    views = links.views(archive, share)
    return {**as_dict(share), "uses": [v.as_dict() for v in views]}


@router.post(
    "/shares/{share_id}/revoke", summary="Close a share's link now", response_model=ShareOut
)
async def revoke_share(request: Request, share_id: RowId) -> dict[str, Any]:
    share = await run_in_threadpool(
        links.revoke, archive_of(request), principal_of(request), share_id
    )
    return as_dict(share)
