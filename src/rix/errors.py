"""Failures that carry their protocol answers.

Each kind knows its DIMSE status (PS3.4 Annex B.2.3 for storage, C.4 for query/retrieve)
and its HTTP code, so front ends map exceptions and never invent statuses.
"""

from __future__ import annotations

from enum import IntEnum


class StoreStatus(IntEnum):
    """C-STORE statuses, PS3.4 B.2.3."""

    SUCCESS = 0x0000
    OUT_OF_RESOURCES = 0xA700
    DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    CANNOT_UNDERSTAND = 0xC000
    PROCESSING_FAILURE = 0x0110
    DUPLICATE_SOP_INSTANCE = 0x0111  # PS3.7 C.4.5 general status
    COERCION_OF_DATA_ELEMENTS = 0xB000
    ELEMENTS_DISCARDED = 0xB006
    DATASET_DOES_NOT_MATCH_SOP_CLASS_WARNING = 0xB007


class QueryStatus(IntEnum):
    """C-FIND / C-MOVE / C-GET statuses, PS3.4 C.4.1.1.4, C.4.2.1.5, C.4.3.1.4."""

    SUCCESS = 0x0000
    PENDING = 0xFF00
    PENDING_WARNING = 0xFF01
    CANCEL = 0xFE00
    OUT_OF_RESOURCES = 0xA700
    OUT_OF_RESOURCES_SUBOPS = 0xA702
    MOVE_DESTINATION_UNKNOWN = 0xA801
    IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    UNABLE_TO_PROCESS = 0xC000
    SUBOPS_COMPLETE_WITH_FAILURES = 0xB000


class RixError(Exception):
    """Base: a failure with a reason a user can read and act on."""

    dimse_status: int = StoreStatus.PROCESSING_FAILURE
    http_status: int = 500

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidInstance(RixError):
    """The object cannot be stored: not DICOM, truncated, or missing/invalid UIDs."""

    dimse_status = StoreStatus.CANNOT_UNDERSTAND
    http_status = 400


class SOPClassMismatch(InvalidInstance):
    """The dataset's SOP Class differs from the one the C-STORE request names."""

    dimse_status = StoreStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS


class StudyMismatch(InvalidInstance):
    """The dataset belongs to another study than the one the request addressed
    (STOW-RS to /studies/{study}); PS3.18 10.5.3.2 fails such an instance."""

    dimse_status = StoreStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS


class DuplicateRejected(RixError):
    """Same SOP Instance UID with different bytes under the ``reject`` policy."""

    dimse_status = StoreStatus.DUPLICATE_SOP_INSTANCE
    http_status = 409


class StorageFull(RixError):
    dimse_status = StoreStatus.OUT_OF_RESOURCES
    http_status = 507


class InvalidQuery(RixError):
    dimse_status = QueryStatus.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS
    http_status = 400


class UnknownDestination(RixError):
    dimse_status = QueryStatus.MOVE_DESTINATION_UNKNOWN
    http_status = 404


class NotFound(RixError):
    dimse_status = QueryStatus.UNABLE_TO_PROCESS
    http_status = 404


NOT_AUTHORIZED = 0x0124  # PS3.7 Annex C general status "Refused: Not Authorized"


class Unauthenticated(RixError):
    """No credentials, or credentials that do not prove who the caller is (HTTP 401)."""

    dimse_status = NOT_AUTHORIZED
    http_status = 401


class AccessDenied(RixError):
    """The caller is known but the access policy refuses what it asked (HTTP 403)."""

    dimse_status = NOT_AUTHORIZED
    http_status = 403


class Conflict(RixError):
    """The request contradicts what is stored (an existing code, a link under review)."""

    http_status = 409
