"""The archive opened in the test process, beside (or instead of) a server's."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rix.archive import Archive
from rix.config import Settings
from rix.serve import open_archive
from tests.peers import sqlite


@contextmanager
def opened(
    data: Path, database_url: str, *, migrate: bool = True, **settings: Any
) -> Iterator[Archive]:
    """The archive of ``data`` and ``database_url`` (and any other ``settings``), closed on
    exit: a server started on the same pair shares its index with this process
    (``migrate=False`` beside a server that already migrated it). A new SQLite index is a
    copy of the session's migrated one (``sqlite.migrated_index``)."""
    if migrate and not database_url:
        sqlite.migrated_index(data)
    base = dataclasses.replace(Settings(), data=data, database_url=database_url, **settings)
    archive = open_archive(base, migrate=migrate)
    try:
        yield archive
    finally:
        archive.close()
