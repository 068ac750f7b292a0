"""The archive a process works on: settings, index engine, object store and index writer.

Opened once per process (``rix serve``, a CLI command, a test) and passed to front ends;
never created per request. ``open_with`` takes the index writer's hooks from its caller:
what the upper layers do when instances are added is wired by the composition root
(``rix.serve.open_archive``), never imported from down here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from rix.config import Settings
from rix.index import database
from rix.index.group_commit import IndexWriter
from rix.index.write import Hooks
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


def open_with(settings: Settings, hooks: Hooks, *, migrate: bool = True) -> Archive:
    settings.data.mkdir(parents=True, exist_ok=True)
    engine = database.connect(settings.index_url)
    if migrate:
        database.upgrade(engine)
    store = FileStore(settings.objects_dir)
    writer = IndexWriter(engine, hooks)
    return Archive(settings=settings, engine=engine, store=store, writer=writer)
