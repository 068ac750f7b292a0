"""Second opinions: who shares a study, who manages a share, and what a share link's
recipient reaches (``rix.sharing`` keeps the shares; ``scope`` limits a link to them)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, or_, true

from rix.access import SHARE_ROLES, Principal, PrincipalKind
from rix.auth.users import Role
from rix.errors import AccessDenied
from rix.index.workflow_tables import shares
from rix.region.trusts import Trust

# what a share's browser session may ask for: reading DICOMweb, the viewer, its own pages
SHARE_READS = ("/dicomweb/", "/wado", "/viewer/")
SHARE_PAGES = ("/share/",)  # and "/share" itself; not "/shares", the senders' list


def require_share(principal: Principal) -> None:
    """Who sends a study out for a second opinion: a signed-in clinician or radiologist
    (the studies themselves must be in their scope: ``rix.sharing`` asks ``scope``)."""
    if principal.kind is not PrincipalKind.USER or principal.user_pk is None:
        raise AccessDenied("studies are shared by a signed-in user")
    if not principal.roles & SHARE_ROLES or principal.trust is None:
        raise AccessDenied("studies are shared by clinicians and radiologists")


def require_pin_unless_allowed(trust: Trust, *, with_pin: bool) -> None:
    """A link opens with a PIN the sender passes another way, so a forwarded email alone
    opens nothing; a link with no PIN only where the sharing trust allows it."""
    if not with_pin and not trust.shares_without_pin:
        raise AccessDenied(
            f"trust {trust.code} requires a PIN on every share (a trust administrator "
            "can allow shares without one)"
        )


def may_manage_share(principal: Principal, *, owner_pk: int, trust_pk: int) -> bool:
    """A share is seen and revoked by its owner, its trust's administrators and the
    region's."""
    if principal.kind is PrincipalKind.SYSTEM or Role.REGION_ADMIN in principal.roles:
        return True
    if principal.user_pk is not None and principal.user_pk == owner_pk:
        return True
    return (
        Role.TRUST_ADMIN in principal.roles
        and principal.trust is not None
        and principal.trust.pk == trust_pk
    )


def managed_shares(principal: Principal) -> ColumnElement[bool]:
    """``may_manage_share`` as SQL over ``shares``, for listing them."""
    if principal.kind is PrincipalKind.SYSTEM or Role.REGION_ADMIN in principal.roles:
        return true()
    mine: list[ColumnElement[bool]] = []
    if principal.user_pk is not None:
        mine.append(shares.c.owner_pk == principal.user_pk)
    if Role.TRUST_ADMIN in principal.roles and principal.trust is not None:
        mine.append(shares.c.trust_pk == principal.trust.pk)
    return or_(*mine) if mine else false()


def require_manage_share(principal: Principal, *, owner_pk: int, trust_pk: int) -> None:
    if not may_manage_share(principal, owner_pk=owner_pk, trust_pk=trust_pk):
        raise AccessDenied("a share is managed by its owner and administrators")


def require_share_route(principal: Principal, method: str, path: str) -> None:
    """A share's recipient reads DICOMweb and the viewer (limited to the shared studies by
    ``scope``) and their share's own pages; every other route (the API, the portal,
    STOW-RS) is refused, whatever it would have checked itself."""
    if principal.kind is not PrincipalKind.SHARE:
        return
    if path == "/share" or path.startswith(SHARE_PAGES):
        return
    if method in ("GET", "HEAD") and path.startswith(SHARE_READS):
        return
    raise AccessDenied("a shared study is read-only, in the viewer and its share page")


def require_download(principal: Principal) -> None:
    """Downloads (a zip of the study): whoever sees the study, except a share's recipient
    when the sender did not allow it."""
    if principal.kind is PrincipalKind.SHARE and not principal.may_download:
        raise AccessDenied("the sender did not allow downloads of this share")
