"""STOW-RS client (PS3.18 10.5): rix sending stored instances to a DICOMweb server.

Instances go as Part 10 files in ``multipart/related; type="application/dicom"``
requests of up to ``BATCH`` instances, streamed from the store; the response's
Referenced SOP Sequence says which were stored, the Failed SOP Sequence which were not.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence

import httpx

from rix.archive import Archive
from rix.config import environment_secret
from rix.errors import StoreStatus
from rix.index import queries
from rix.region import identity
from rix.retrieve import copies
from rix.routing.rules import Destination

BATCH = 50
REFERENCED_SOP_SEQUENCE = "00081199"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_INSTANCE_UID = "00081155"
FAILURE_REASON = "00081197"


class StowFailed(Exception):
    """The server answered the whole request with an error, or could not be reached."""


def send(
    archive: Archive,
    destination: Destination,
    stored: Sequence[queries.StoredInstance],
    outgoing: identity.Outgoing,
    *,
    on_delivered: Callable[[queries.StoredInstance], None],
) -> list[tuple[str, int]]:
    """POST ``stored`` in batches; returns the instances refused, with their reason codes."""
    headers = {"Accept": "application/dicom+json"}
    if destination.token_env:
        token = environment_secret(destination.token_env)
        if not token:
            raise StowFailed(f"the variable {destination.token_env} holding the token is empty")
        headers["Authorization"] = f"Bearer {token}"
    refused: list[tuple[str, int]] = []
    timeout = httpx.Timeout(archive.settings.dicom_timeout, read=300.0)
    with httpx.Client(timeout=timeout, headers=headers) as client:
        for start in range(0, len(stored), BATCH):
            batch = stored[start : start + BATCH]
            stored_uids, failed = _post(client, destination, archive, batch, outgoing)
            for item in batch:
                if item.sop_uid in stored_uids:
                    on_delivered(item)
            refused.extend(failed)
    return refused


def _post(
    client: httpx.Client,
    destination: Destination,
    archive: Archive,
    batch: Sequence[queries.StoredInstance],
    outgoing: identity.Outgoing,
) -> tuple[set[str], list[tuple[str, int]]]:
    url = destination.stow
    boundary = uuid.uuid4().hex
    body = _body(archive, batch, outgoing, destination.transfer_syntax, boundary)
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    try:
        response = client.post(
            f"{url}/studies", content=body, headers={"Content-Type": content_type}
        )
    except httpx.HTTPError as exc:
        raise StowFailed(f"{url}: {type(exc).__name__}: {exc}") from exc
    if response.status_code not in (200, 202, 409):
        raise StowFailed(f"{url} answered {response.status_code}: {response.text[:200]}")
    try:
        document = response.json()
    except ValueError as exc:
        raise StowFailed(f"{url} answered {response.status_code} without DICOM JSON") from exc
    return _stored(document), _failed(document)


def _body(
    archive: Archive,
    batch: Sequence[queries.StoredInstance],
    outgoing: identity.Outgoing,
    target: str,
    boundary: str,
) -> Iterator[bytes]:
    """The request body, streamed: stored files as they are unless the destination's
    identity or transfer syntax asks for a re-encoded copy."""
    for item in batch:
        yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        yield from copies.streamed(archive.store, item, outgoing.of(item), target)
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def _items(document: object, tag: str) -> list[dict[str, object]]:
    if not isinstance(document, dict):
        return []
    element = document.get(tag)
    value = element.get("Value", []) if isinstance(element, dict) else []
    return [v for v in value if isinstance(v, dict)]


def _text(item: dict[str, object], tag: str) -> str:
    element = item.get(tag)
    value = element.get("Value", []) if isinstance(element, dict) else []
    return str(value[0]) if value else ""


def _stored(document: object) -> set[str]:
    return {
        _text(i, REFERENCED_SOP_INSTANCE_UID) for i in _items(document, REFERENCED_SOP_SEQUENCE)
    }


def _failed(document: object) -> list[tuple[str, int]]:
    out = []
    for item in _items(document, FAILED_SOP_SEQUENCE):
        reason = _text(item, FAILURE_REASON)
        out.append(
            (
                _text(item, REFERENCED_SOP_INSTANCE_UID),
                int(reason) if reason else StoreStatus.CANNOT_UNDERSTAND,
            )
        )
    return out
