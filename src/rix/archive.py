"""The archive a process works on: settings, index engine, object store and index writer.

Opened once per process (``rix serve``, a CLI command, a test) and passed to front ends;
never created per request.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from rix.config import Settings
from rix.index import database
from rix.index.group_commit import IndexWriter
from rix.store import ObjectStore
from rix.store.files import FileStore


@dataclass(frozen=True, slots=True, kw_only=True)
class Archive:
    settings: Settings
    engine: Engine
    store: ObjectStore
    writer: IndexWriter

    def close(self) -> None:
        self.writer.close()
        self.engine.dispose()


def open_archive(settings: Settings, *, migrate: bool = True) -> Archive:
    settings.data.mkdir(parents=True, exist_ok=True)
    engine = database.connect(settings.index_url)
    if migrate:
        database.upgrade(engine)
    from rix.routing import stability  # routing needs the archive: imported once it exists

    store = FileStore(settings.objects_dir)
    writer = IndexWriter(engine, after_add=stability.scheduler(settings.stable_seconds))
    return Archive(settings=settings, engine=engine, store=store, writer=writer)
