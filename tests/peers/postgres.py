"""Fresh databases on the machine's PostgreSQL (127.0.0.1:5432, user postgres, trust)."""

from __future__ import annotations

import os
import uuid

import psycopg

from rix.config import normalise_database_url
from rix.index import database

ADMIN_URL = os.environ.get("RIX_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

_template: dict[str, str] = {}  # "name": a database at the newest schema, made once


def create_database(*, migrated: bool = False) -> str:
    """Create a database and return its URL: empty, or ``migrated`` to the newest schema.

    A migrated one is a copy of a template migrated once per session (``CREATE DATABASE
    ... TEMPLATE``): copying takes a tenth of the second or more that running every
    migration takes. Tests of the migrations themselves, and the session's server (so
    that ``rix serve`` is seen to migrate a new database), start from an empty one.
    """
    name = f"rix_test_{uuid.uuid4().hex[:12]}"
    template = f' TEMPLATE "{_migrated_template()}"' if migrated else ""
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{template}')
    return _url(name)


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drop_template() -> None:
    """Drop the session's migrated template, if one was made."""
    if name := _template.pop("name", ""):
        drop_database(_url(name))


def _url(name: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _migrated_template() -> str:
    if "name" not in _template:
        url = create_database()
        engine = database.connect(normalise_database_url(url))
        try:
            database.upgrade(engine)
        finally:
            engine.dispose()  # CREATE DATABASE ... TEMPLATE needs it unused
        _template["name"] = url.rsplit("/", 1)[1]
    return _template["name"]
