"""Export of the audit trail to an audit repository, as DICOM audit messages over syslog.

The ``audit_events`` table is the spool: nothing is queued in memory or in files. The
row of ``audit_export`` for the destination holds the id of the last event the
repository was sent; a background thread reads the events after it, in id order and a
batch at a time, writes each as one syslog message (PS3.15 A.5 XML, RFC 5424, framed by
RFC 6587 octet counting, over TCP or TLS per RFC 5425), and once the whole batch is
written moves ``last_id`` on in one write transaction. While the repository is
unreachable nothing moves: events wait in the table and go out in order when it is
back, after a back-off of 0.5 s doubling to 30 s between attempts.

Delivery is at least once. Ids become visible in order, because ``audit.record`` holds
one lock per chain until its commit (SQLite has one writer anyway), so no event is
skipped. A crash of rix, or a connection lost after a batch was written and before
``last_id`` moved, sends that batch again: the repository may then hold a message twice,
byte for byte the same when the same host sends it. Syslog itself has no
acknowledgement; ``SyslogSender.confirm`` tells a repository that closed after reading
a batch from one that closed without reading it, so a repository that is stopped loses
nothing and receives nothing twice, but one that dies after reading bytes and before
storing them can lose them (see ``rix.syslog``).

With several rix nodes on one PostgreSQL index, only the node holding a session
advisory lock for the destination exports; the others wait and take over when its
session ends. Logs name the destination and the kind of error, never an event's
content: events carry patient identifiers.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from dataclasses import dataclass, field

import structlog
from sqlalchemy import Connection, Engine, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from rix.audit import Outcome, syslog
from rix.audit.messages import AuditEvent, audit_message
from rix.config import Settings
from rix.index.database import begin_write
from rix.index.schema import audit_events, audit_export

log = structlog.get_logger(__name__)

LEADER_RETRY = 5.0  # seconds between attempts to take over from another node
STOP_GRACE = 2.0  # seconds a batch under way has to finish when the server stops


@dataclass(slots=True, kw_only=True)
class Backoff:
    """Delays between attempts to reach the repository: ``first`` doubling to ``most``."""

    first: float = 0.5
    most: float = 30.0
    _next: float = field(default=0.0, init=False)

    def next(self) -> float:
        delay = self._next or self.first
        self._next = min(delay * 2, self.most)
        return delay

    def reset(self) -> None:
        self._next = 0.0

    @property
    def failing(self) -> bool:
        return self._next > 0.0


def destination_key(url: str) -> str:
    """The ``audit_export`` key of a destination: its URL, or a digest of a long one."""
    if len(url) <= 64:
        return url
    return "sha256:" + hashlib.sha256(url.encode()).hexdigest()[:57]


def acknowledged(conn: Connection, destination: str) -> int:
    """Id of the last event sent to ``destination``; 0 before the first, so a newly
    configured repository receives the whole trail."""
    query = select(audit_export.c.last_id).where(audit_export.c.destination == destination)
    return int(conn.execute(query).scalar() or 0)


def acknowledge(conn: Connection, destination: str, last_id: int) -> None:
    moved = conn.execute(
        update(audit_export)
        .where(audit_export.c.destination == destination)
        .values(last_id=last_id)
    )
    if moved.rowcount == 0:
        conn.execute(insert(audit_export).values(destination=destination, last_id=last_id))


def unsent(conn: Connection, after: int, limit: int) -> list[AuditEvent]:
    query = (
        select(audit_events)
        .where(audit_events.c.id > after)
        .order_by(audit_events.c.id)
        .limit(limit)
    )
    return [AuditEvent.from_row(row) for row in conn.execute(query)]


def severity(event: AuditEvent) -> syslog.Severity:
    """Notice for a success, warning otherwise: the two ITI-20 3.20.4.1.2 allows."""
    if event.outcome == Outcome.SUCCESS:
        return syslog.Severity.NOTICE
    return syslog.Severity.WARNING


class Leadership:
    """The right to export to one destination among the nodes sharing a PostgreSQL index.

    A session-level ``pg_try_advisory_lock`` on a connection kept for the purpose (in
    autocommit, so it never sits idle in a transaction); it goes with the session if the
    node dies. SQLite serves one node, which always leads.
    """

    def __init__(self, engine: Engine, destination: str) -> None:
        self.engine = engine
        digest = hashlib.sha256(b"rix-audit-export:" + destination.encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)
        self._conn: Connection | None = None

    def held(self) -> bool:
        if self.engine.dialect.name != "postgresql":
            return True
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except SQLAlchemyError:
                self.release()  # the session, and with it the lock, is gone
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            query = text("SELECT pg_try_advisory_lock(:key)")
            taken = bool(conn.execute(query, {"key": self.key}).scalar())
        except BaseException:
            conn.close()
            raise
        if not taken:
            conn.close()  # another node leads; this session holds nothing
            return False
        self._conn = conn
        log.info("audit export leads on this node")
        return True

    def release(self) -> None:
        """Close the session: the lock must not go back to the pool with its connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.invalidate()
            conn.close()


class AuditExporter:
    """A thread that sends the audit trail to ``settings.audit_syslog``; see the module.

    ``stop`` is prompt: waits are on an ``Event``, and a send still blocked after
    ``STOP_GRACE`` is woken by shutting its socket (a connection attempt under way runs
    to its 5 s timeout). A failing pass is logged and retried; the thread never raises
    into the server.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        batch: int = 200,
        interval: float = 0.5,
        settle: float = 0.05,
        backoff: Backoff | None = None,
    ) -> None:
        self.engine = engine
        self.target = syslog.Destination.parse(settings.audit_syslog, settings.audit_syslog_ca)
        self.destination = destination_key(self.target.url)
        self.source_id = settings.ae_title
        self.batch = batch
        self.interval = interval
        self.settle = settle  # how long a repository's reset after a batch has to arrive
        self.backoff = backoff or Backoff()
        self.hostname = socket.gethostname()
        self._sender = syslog.SyslogSender(self.target)
        self._leadership = Leadership(engine, self.destination)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rix-audit-export", daemon=True)

    def start(self) -> AuditExporter:
        self._thread.start()
        log.info("audit export started", destination=self.target.url)
        return self

    def stop(self) -> None:
        """Let a batch under way be acknowledged (or it would go again at the next start),
        then wake a send the repository has stopped reading."""
        self._stop.set()
        self._thread.join(timeout=STOP_GRACE)
        if self._thread.is_alive():
            self._sender.abort()
            self._thread.join(timeout=10)

    def send_pending(self) -> int:
        """Send the next batch of events and move ``last_id`` past it; how many were sent.

        ``OSError`` when the repository cannot be reached or closed the connection, in
        which case ``last_id`` stays and the batch goes again on the next call.
        """
        with self.engine.connect() as conn:
            events = unsent(conn, acknowledged(conn, self.destination), self.batch)
        if not events:
            return 0
        data = b"".join(syslog.frame(self._message(event)) for event in events)
        self._open()
        self._sender.send(data)
        self._sender.confirm(wait=self.settle)
        with begin_write(self.engine) as conn:
            acknowledge(conn, self.destination, events[-1].id)
        return len(events)

    def _message(self, event: AuditEvent) -> bytes:
        body = audit_message(event, source_id=self.source_id)
        return syslog.message(
            body, timestamp=event.at, hostname=self.hostname, severity=severity(event)
        )

    def _open(self) -> None:
        """Connect, or reconnect at once if the repository closed an idle connection."""
        if self._sender.connected:
            try:
                self._sender.check_open()
                return
            except OSError:
                self._sender.close()
        self._sender.connect()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._stop.wait(self._step())
        finally:
            self._sender.close()
            self._leadership.release()

    def _step(self) -> float:
        """One pass; returns how long to wait before the next."""
        try:
            if not self._leadership.held():
                return LEADER_RETRY
            sent = self.send_pending()
        except OSError as exc:  # ssl.SSLError and ConnectionError included
            self._sender.close()
            return self._unreachable(exc)
        except Exception as exc:  # the database, or a bug: log, wait, retry; never crash
            log.warning("audit export pass failed", error=type(exc).__name__)
            return self.backoff.next()
        if self.backoff.failing:
            log.info("audit export resumed", destination=self.target.url)
            self.backoff.reset()
        return 0.0 if sent == self.batch else self.interval

    def _unreachable(self, exc: OSError) -> float:
        if not self.backoff.failing and not self._stop.is_set():
            log.warning(
                "audit repository unreachable; events stay spooled",
                destination=self.target.url,
                error=type(exc).__name__,
            )
        return self.backoff.next()
