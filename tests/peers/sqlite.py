"""SQLite indexes at the newest schema, copied from one migrated once per session."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from rix.index import database

INDEX = "index.sqlite"  # where rix keeps a SQLite index in its data folder (Settings.index_url)

_template: dict[str, Path] = {}  # "path": an index at the newest schema, made once


def migrated_index(data: Path) -> None:
    """Put an index at the newest schema in the data folder ``data``, unless it has one.

    A copy of a template migrated once per session, as ``postgres.create_database(
    migrated=True)`` for PostgreSQL: a server or an archive opened on it then finds nothing
    to migrate (every migration takes about 0.3 s, a copy a hundredth of that). Tests of
    the migrations, and the session's server (so that ``rix serve`` is seen to migrate a
    new index), start from none.
    """
    target = data / INDEX
    if target.exists():
        return
    data.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(_migrated_template()) as source, sqlite3.connect(target) as copy:
        source.backup(copy)  # a consistent copy, whatever the template's WAL holds
    source.close()
    copy.close()


def _migrated_template() -> Path:
    if "path" not in _template:
        path = Path(tempfile.mkdtemp(prefix="rix-sqlite-template-")) / INDEX
        engine = database.connect(f"sqlite:///{path}")
        try:
            database.upgrade(engine)
        finally:
            engine.dispose()
        _template["path"] = path
    return _template["path"]


def drop_template() -> None:
    """Remove the session's migrated template, if one was made."""
    if path := _template.pop("path", None):
        for leftover in path.parent.iterdir():
            leftover.unlink()
        path.parent.rmdir()
