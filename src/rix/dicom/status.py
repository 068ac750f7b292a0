"""DIMSE statuses, and the one way a handler's failure becomes an answer (STYLE.md rule 15).

Every DIMSE handler does its work inside ``attempt``. A ``RixError`` is answered with the
status it carries (``rix.errors``) and its reason as the Error Comment; anything else (a
bug, the database away) with the service's processing-failure status and a logged
traceback. Either way the peer gets a named failure status and the association lives on,
as pynetdicom's own services do with their ``attempt`` context (``service_class.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum

import structlog
from pydicom.dataset import Dataset

from rix.errors import RixError

log = structlog.get_logger(__name__)


class GeneralStatus(IntEnum):
    """General statuses of PS3.7 Annex C that the N- services answer with (those a
    ``RixError`` carries are in ``rix.errors``)."""

    SUCCESS = 0x0000
    PROCESSING_FAILURE = 0x0110
    NO_SUCH_OBJECT_INSTANCE = 0x0112
    CLASS_INSTANCE_CONFLICT = 0x0119
    MISSING_ATTRIBUTE = 0x0120
    NO_SUCH_ACTION_TYPE = 0x0123


def status(code: int, comment: str = "") -> Dataset:
    """A status dataset: Status and, when there is a reason, its Error Comment."""
    ds = Dataset()
    ds.Status = int(code)
    if comment:
        ds.ErrorComment = error_comment(comment)
    return ds


def error_comment(reason: str) -> str:
    """``reason`` as a valid LO (PS3.5 6.2): 64 characters, no backslash or control codes."""
    text = "".join(c if c.isprintable() else " " for c in reason.replace("\\", "/"))
    return text[:64]


def answer(exc: RixError) -> Dataset:
    """The status ``exc`` carries, its reason and, where it names one, its Error ID."""
    reply = status(exc.dimse_status, exc.reason)
    error_id = getattr(exc, "error_id", None)
    if error_id is not None:
        reply.ErrorID = error_id
    return reply


@dataclass(slots=True)
class Attempt:
    """How an ``attempt`` block ended: ``failure`` is the answer when it raised."""

    failure: Dataset | None = None
    error: Exception | None = None

    @property
    def reason(self) -> str:
        """Why it failed, for the audit trail: the error's reason, or its type (a bug)."""
        if isinstance(self.error, RixError):
            return self.error.reason
        return "" if self.error is None else type(self.error).__name__


@contextmanager
def attempt(service: str, unexpected: IntEnum) -> Iterator[Attempt]:
    """Run the block; on any exception fill in the answer (module docstring). The
    ``unexpected`` status answers what is not a ``RixError``, with its comment."""
    outcome = Attempt()
    try:
        yield outcome
    except RixError as exc:
        log.warning(f"{service} refused", reason=exc.reason, status=hex(exc.dimse_status))
        outcome.error, outcome.failure = exc, answer(exc)
    except Exception as exc:  # a bug must become an answer, never a dead association
        log.exception(f"{service} failed", error=type(exc).__name__)
        words = unexpected.name.lower().replace("_", " ")
        outcome.error, outcome.failure = exc, status(unexpected, f"{words}: {type(exc).__name__}")
