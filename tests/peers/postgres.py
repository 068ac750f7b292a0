"""Fresh databases on the machine's PostgreSQL (127.0.0.1:5432, user postgres, trust)."""

from __future__ import annotations

import os
import uuid

import psycopg

ADMIN_URL = os.environ.get("RIX_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def create_database() -> str:
    """Create an empty database and return its URL."""
    name = f"rix_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
