"""Group commit: concurrent stores share one index transaction and one commit.

Every association thread hands its index work to one writer thread and waits. The
writer takes everything queued, adds all queued instances with a few multi-row
statements (``write.add_instances``), runs any other work in savepoints, commits once,
and only then wakes the callers: a success is never answered before the commit, while
N concurrent stores cost one fsync of the database instead of N.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from rix.index import records, write
from rix.index.database import begin_write

T = TypeVar("T")
log = structlog.get_logger(__name__)

_STOP = object()
MAX_BATCH = 512


@dataclass(frozen=True, slots=True)
class _Item:
    future: Future[Any]
    record: records.InstanceRecord | None = None
    operation: Callable[[Connection], Any] | None = None


class IndexWriter:
    def __init__(self, engine: Engine, hooks: write.Hooks | None = None) -> None:
        """``hooks`` run in each transaction that adds instances, durable with them (the
        MPI linking new records, a study's stability job); the composition root wires them."""
        self.engine = engine
        self.hooks = hooks or write.Hooks()
        self.cache = write.IndexCache()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="rix-index-writer", daemon=True)
        self._thread.start()
        self.batches = 0
        self.operations = 0
        # time.monotonic() of the latest commit that added instances; 0 before any (audit
        # events of reads commit too, and must not look like a store in progress)
        self.last_store = 0.0

    def add_instance(self, record: records.InstanceRecord) -> write.AddResult:
        """Index one instance in the next group transaction; return once committed."""
        future: Future[write.AddResult] = Future()
        self._queue.put(_Item(future, record=record))
        return future.result()

    def submit(self, operation: Callable[[Connection], T]) -> T:
        """Run ``operation`` in the next group transaction; return once it is committed."""
        future: Future[T] = Future()
        self._queue.put(_Item(future, operation=operation))
        return future.result()

    def post(self, operation: Callable[[Connection], T]) -> Future[T]:
        """Queue ``operation`` for the next group transaction without waiting for it.

        For records whose loss in a crash would not lose data, such as the audit event of
        a read: the answer need not wait a commit (an fsync) for it. Queued work commits
        in order, so a later ``submit`` returns only after this one is durable too.
        """
        future: Future[T] = Future()
        self._queue.put(_Item(future, operation=operation))
        return future

    def flush(self) -> None:
        """Return once everything queued before is committed."""
        self.submit(lambda _conn: None)

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Item]) -> None:
        stores = [item for item in batch if item.record is not None]
        others = [item for item in batch if item.operation is not None]
        try:
            with begin_write(self.engine) as conn:
                added = write.add_instances(
                    conn, [i.record for i in stores if i.record], self.cache, self.hooks
                )
                self._after_add(conn, stores, added)
                outcomes = [_attempt(conn, i.operation) for i in others if i.operation]
        except Exception as exc:  # nothing of this batch is durable
            self.cache.clear()  # a stale key (or another process's insert) may be the cause
            if len(batch) > 1:
                log.warning("group commit failed; committing one by one", error=type(exc).__name__)
                for item in batch:
                    self._commit([item])
                return
            log.error("index commit failed", error=str(exc))
            batch[0].future.set_exception(exc)
            return
        self.batches += 1
        self.operations += len(batch)
        if stores:
            self.last_store = time.monotonic()
        for item, result in zip(stores, added, strict=True):
            item.future.set_result(result)
        for item, (value, error) in zip(others, outcomes, strict=True):
            if error is None:
                item.future.set_result(value)
            else:
                item.future.set_exception(error)

    def _after_add(
        self, conn: Connection, stores: list[_Item], added: list[write.AddResult]
    ) -> None:
        studies = {
            item.record.study["study_uid"]
            for item, result in zip(stores, added, strict=True)
            if item.record is not None and result.outcome is write.AddOutcome.ADDED
        }
        if studies:
            self.hooks.added(conn, sorted(studies))


def _attempt(
    conn: Connection, operation: Callable[[Connection], T]
) -> tuple[Any, BaseException | None]:
    """Run in a savepoint so one failing operation does not fail its neighbours."""
    for attempt in range(2):
        try:
            with conn.begin_nested():
                return operation(conn), None
        except IntegrityError as exc:
            if attempt == 1:
                return None, exc
        except OperationalError:
            raise
        except Exception as exc:
            return None, exc
    return None, RuntimeError("unreachable")
