"""The AE registry: DICOM peers rix may accept associations from and send to."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select, update

from rix.index.database import begin_write
from rix.index.schema import application_entities


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteAE:
    title: str
    host: str
    port: int
    description: str = ""


def add(engine: Engine, ae: RemoteAE) -> None:
    """Register or update a peer; AE titles are unique (PS3.8 9.3.2.1)."""
    values = {"host": ae.host, "port": ae.port, "description": ae.description}
    with begin_write(engine) as conn:
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


def remove(engine: Engine, title: str) -> bool:
    with begin_write(engine) as conn:
        result = conn.execute(
            delete(application_entities).where(application_entities.c.title == title)
        )
    return bool(result.rowcount)


def get(engine: Engine, title: str) -> RemoteAE | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(application_entities).where(application_entities.c.title == title.strip())
        ).first()
    if row is None:
        return None
    return RemoteAE(title=row.title, host=row.host, port=row.port, description=row.description)


def all_aes(engine: Engine) -> list[RemoteAE]:
    with engine.connect() as conn:
        rows = conn.execute(select(application_entities).order_by(application_entities.c.title))
        return [
            RemoteAE(title=r.title, host=r.host, port=r.port, description=r.description)
            for r in rows
        ]
