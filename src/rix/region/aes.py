"""The AE registry: DICOM peers rix accepts associations from and sends to.

Each peer may belong to a trust: what it sends belongs to that trust, what it may query
and retrieve is what that trust's staff may (``rix.access``), and images sent to it
carry that trust's patient identifiers (``rix.region.identity``).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, insert, select, update

from rix.index.schema import application_entities, trusts
from rix.region.trusts import Trust, get_trust


class Kind(StrEnum):
    """What a peer is: a PACS or a workstation keeps what is sent to it; a modality (or
    anything else) sends, queries or takes a worklist, and is no destination for a study."""

    PACS = "pacs"
    WORKSTATION = "workstation"
    MODALITY = "modality"
    OTHER = "other"


STORING = frozenset({Kind.PACS, Kind.WORKSTATION})


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteAE:
    title: str
    host: str
    port: int
    description: str = ""
    trust: Trust | None = None
    kind: Kind = Kind.PACS

    @property
    def stores(self) -> bool:
        """Whether studies may be sent to it (``STORING``)."""
        return self.kind in STORING


def add(conn: Connection, ae: RemoteAE, trust: str = "") -> None:
    """Register or update a peer; AE titles are unique (PS3.8 9.3.2.1)."""
    trust_pk = get_trust(conn, trust).pk if trust else None
    values = {
        "host": ae.host,
        "port": ae.port,
        "description": ae.description,
        "trust_pk": trust_pk,
        "kind": ae.kind.value,
    }
    found = conn.execute(
        select(application_entities.c.id).where(application_entities.c.title == ae.title)
    ).first()
    if found is None:
        conn.execute(insert(application_entities).values(title=ae.title, **values))
    else:
        conn.execute(
            update(application_entities)
            .where(application_entities.c.title == ae.title)
            .values(**values)
        )


def remove(conn: Connection, title: str) -> bool:
    result = conn.execute(delete(application_entities).where(application_entities.c.title == title))
    return bool(result.rowcount)


def _select() -> Any:
    return select(application_entities, trusts.c.code, trusts.c.name, trusts.c.issuer).outerjoin(
        trusts, trusts.c.id == application_entities.c.trust_pk
    )


def _ae(row: Row[Any]) -> RemoteAE:
    trust = None
    if row.trust_pk is not None:
        trust = Trust(pk=row.trust_pk, code=row.code, name=row.name, issuer=row.issuer)
    return RemoteAE(
        title=row.title,
        host=row.host,
        port=row.port,
        description=row.description,
        trust=trust,
        kind=Kind(row.kind),
    )


@lru_cache(maxsize=1024)
def _addresses(host: str, stamp: int) -> frozenset[str]:
    """The addresses a registered host name stands for (cached a minute: ``stamp``)."""
    del stamp
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return frozenset({host})
    return frozenset(str(info[4][0]) for info in infos) | {host}


def connects_from(ae: RemoteAE, address: str) -> bool:
    """Whether a connection from ``address`` may use ``ae``'s title: the peer must be the
    registered host (PS3.8 leaves AE titles unauthenticated; this is the least check)."""
    allowed = _addresses(ae.host, int(time.monotonic() // 60))
    return address in allowed or address.removeprefix("::ffff:") in allowed


def get(engine: Engine, title: str) -> RemoteAE | None:
    with engine.connect() as conn:
        row = conn.execute(_select().where(application_entities.c.title == title.strip())).first()
    return None if row is None else _ae(row)


def all_aes(engine: Engine) -> list[RemoteAE]:
    with engine.connect() as conn:
        return [_ae(r) for r in conn.execute(_select().order_by(application_entities.c.title))]
