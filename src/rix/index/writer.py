"""Group commit: concurrent stores share one index transaction and one commit.

Every association thread hands its index work to one writer thread and waits. The
writer takes everything queued, runs each piece in its own savepoint, commits once, and
only then wakes the callers, so a success is never answered before the commit while N
concurrent stores cost one fsync of the database instead of N.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import structlog
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from rix.index.database import begin_write

T = TypeVar("T")
log = structlog.get_logger(__name__)

_STOP = object()
MAX_BATCH = 512


class IndexWriter:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="rix-index-writer", daemon=True)
        self._thread.start()
        self.batches = 0
        self.operations = 0

    def submit(self, operation: Callable[[Connection], T]) -> T:
        """Run ``operation`` in the next group transaction; return once it is committed."""
        future: Future[T] = Future()
        self._queue.put((operation, future))
        return future.result()

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

    def _commit(self, batch: list[tuple[Callable[[Connection], Any], Future[Any]]]) -> None:
        results: list[tuple[Future[Any], Any, BaseException | None]] = []
        try:
            with begin_write(self.engine) as conn:
                for operation, future in batch:
                    results.append((future, *_attempt(conn, operation)))
        except Exception as exc:  # the commit itself failed: nobody's work is durable
            log.error("index commit failed", error=str(exc), batch=len(batch))
            for _operation, future in batch:
                future.set_exception(exc)
            return
        self.batches += 1
        self.operations += len(batch)
        for future, value, error in results:
            if error is None:
                future.set_result(value)
            else:
                future.set_exception(error)


def _attempt(
    conn: Connection, operation: Callable[[Connection], T]
) -> tuple[Any, BaseException | None]:
    """Run in a savepoint; retry once after a unique-key race with another process."""
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
