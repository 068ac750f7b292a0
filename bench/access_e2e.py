"""rix's front ends served from the benchmark process, and a PACS's and a viewer's clients.

``access.py`` measures the access filter end to end with these: the DIMSE listener
(``rix.dicom.scp.start``) and the HTTP app (``rix.web.app.create_app`` under uvicorn, in a
thread) run as ``rix serve`` runs them, on loopback, against the archive the region was
built in. A PACS keeps its associations open and a viewer its HTTP connection, so the
clients open theirs once per query shape and every sample is one whole C-FIND (final
response received) or one whole QIDO-RS answer (body read to its last byte).

The C-FIND client is ``scu.py``'s blocking one, not pynetdicom: it only counts responses,
so with client and server sharing one process and two cores the figure stays the
server's (py-spy: the client holds the GIL ~5% of a 1-row C-FIND). It names a user with
User Identity Negotiation (PS3.7 D.3.3.7, type 2: user name and an API token as
passcode, as ``rix.dicom.principal`` accepts). QIDO-RS goes through ``dicomweb.py``'s
timed GET with the user's bearer token.

``ScopeSwitch`` is a measuring instrument, in bench code only: it stands in for
``rix.access.scope``, which both front ends call through the module attribute, and
answers ``EVERYTHING`` (no filter) while the current variant is "unscoped". The principal still
authenticates and is audited as always; only the SQL filter is dropped.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from unittest import mock

import uvicorn
from pydicom.dataset import Dataset
from sqlalchemy import ColumnElement

import dicomweb
import dimse
import scu
from network import LOOPBACK
from rix import access
from rix.access import Principal
from rix.archive import Archive
from rix.dicom import scp
from rix.index.attributes import Level
from rix.web.app import create_app

PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
USERNAME_AND_PASSCODE = 2  # PS3.7 D.3.3.7.1 User-Identity-Type
RETURN_KEYS = {  # what a PACS asks for at each level, beside the matching keys
    Level.PATIENT: (
        "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
        "NumberOfPatientRelatedStudies",
    ),
    Level.STUDY: dimse.STUDY_KEYS,
    Level.SERIES: (
        "StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber",
        "SeriesDescription", "NumberOfSeriesRelatedInstances",
    ),
}  # fmt: skip
QIDO_PATHS = {Level.STUDY: "/studies", Level.SERIES: "/series"}
START_TIMEOUT = 30.0


class QueryFailed(RuntimeError):
    """A C-FIND or QIDO-RS request was not answered with success; the message says how."""


# --- the servers -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FrontEnds:
    ae_title: str
    dicom_port: int
    dicomweb: str  # the root QIDO-RS is mounted under


@contextmanager
def serving(archive: Archive) -> Iterator[FrontEnds]:
    """The DIMSE listener and the HTTP server on ``archive.settings``' addresses, as
    ``rix.serve.run`` starts them; stopped (the HTTP server first) on exit."""
    settings = archive.settings
    dicom = scp.start(archive)
    config = uvicorn.Config(
        create_app(archive),
        host=settings.http_host,
        port=settings.http_port,
        log_level="warning",
        access_log=False,
    )
    http = uvicorn.Server(config)
    thread = threading.Thread(target=http.run, name="bench-http", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not http.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the HTTP server did not start on {settings.http}")
            time.sleep(0.02)
        yield FrontEnds(
            ae_title=settings.ae_title,
            dicom_port=settings.dicom_port,
            dicomweb=f"http://{settings.http_host}:{settings.http_port}/dicomweb",
        )
    finally:
        http.should_exit = True
        thread.join(timeout=START_TIMEOUT)
        dicom.shutdown()


Scope = Callable[[Principal], ColumnElement[bool]]


@dataclass(kw_only=True)
class ScopeSwitch:
    """``rix.access.scope``, or no filter at all while ``unscoped`` is set."""

    real: Scope
    unscoped: bool = False

    def scope(self, principal: Principal) -> ColumnElement[bool]:
        return access.EVERYTHING if self.unscoped else self.real(principal)


@contextmanager
def switchable_scope() -> Iterator[ScopeSwitch]:
    """Both front ends' ``access.scope(principal)`` calls go through the switch."""
    switch = ScopeSwitch(real=access.scope)
    with mock.patch.object(access, "scope", switch.scope):
        yield switch


# --- the clients -------------------------------------------------------------------------


def with_user_identity(request: bytes, username: str, passcode: str) -> bytes:
    """An A-ASSOCIATE-RQ with a User Identity sub-item (PS3.7 D.3.3.7.1, no positive
    response requested) appended to its User Information item, the last item of the
    PDU as ``scu.associate_rq`` builds it."""
    primary, secondary = username.encode(), passcode.encode()
    value = struct.pack(">BBH", USERNAME_AND_PASSCODE, 0, len(primary)) + primary
    value += struct.pack(">H", len(secondary)) + secondary
    sub_item = struct.pack(">BBH", 0x58, 0, len(value)) + value
    offset = 6 + 68  # PDU header, then the fixed fields (PS3.8 9.3.2)
    while request[offset] != 0x50:
        offset += 4 + struct.unpack_from(">H", request, offset + 2)[0]
    length = struct.unpack_from(">H", request, offset + 2)[0]
    body = request[6:offset] + struct.pack(">BBH", 0x50, 0, length + len(sub_item))
    body += request[offset + 4 :] + sub_item
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


class UserAssociation(scu.Association):
    """``scu.Association`` acting for a user it names in the association request."""

    def __init__(
        self, port: int, calling: str, called: str, abstract: str, username: str, passcode: str
    ) -> None:
        self.sock = socket.create_connection((LOOPBACK, port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.message_id = 0
        self.peer_max_pdu = 0
        request = scu.associate_rq(calling, called, abstract)
        self.sock.sendall(with_user_identity(request, username, passcode))
        kind, body = self._read_pdu()
        if kind != 0x02:
            self.sock.close()
            raise scu.AssociationError(f"{username} refused by {called} (PDU type {kind:#04x})")
        self._check_accepted(body)


def identifier(level: Level, matching: Mapping[str, str]) -> Dataset:
    """A C-FIND identifier at ``level``: ``RETURN_KEYS`` empty, the matching keys set."""
    ds = Dataset()
    ds.QueryRetrieveLevel = level.value
    for keyword in (*RETURN_KEYS[level], *matching):
        setattr(ds, keyword, matching.get(keyword, ""))
    return ds


def information_model(level: Level) -> str:
    """Patient Root for patients (the Study Root model has none, PS3.4 C.6.2.1), Study
    Root for the rest, as a PACS queries."""
    return PATIENT_ROOT_FIND if level is Level.PATIENT else scu.STUDY_ROOT_FIND


@dataclass(frozen=True, slots=True, kw_only=True)
class Pacs:
    """A PACS's associations for one query level: as the trust's AE, and as a user it
    names; each kept open for as many C-FINDs as it is asked."""

    level: Level
    ae: scu.Association
    user: scu.Association

    def find(self, as_user: bool, matching: Mapping[str, str]) -> tuple[float, int]:
        """Seconds and matches of one C-FIND, from request to final response."""
        model = information_model(self.level)
        assoc = self.user if as_user else self.ae
        query = identifier(self.level, matching)
        matches, status = 0, -1
        start = time.perf_counter()
        for response in assoc.request(scu.C_FIND_RQ, model, query):
            status = response.status
            if response.is_pending and response.identifier is not None:
                matches += 1
        seconds = time.perf_counter() - start
        if status != 0:
            raise QueryFailed(f"C-FIND {self.level.value}: final status {status:#06x}")
        return seconds, matches


@contextmanager
def pacs(
    front: FrontEnds, level: Level, *, calling: str, username: str, token: str
) -> Iterator[Pacs]:
    """Both associations open; released on exit. rix aborts an association idle for
    ``dicom_timeout`` (30 s, pynetdicom's network timeout), so these last one shape."""
    model = information_model(level)
    with ExitStack() as stack:
        ae = scu.Association(LOOPBACK, front.dicom_port, calling, front.ae_title, model)
        stack.callback(ae.close)
        user = UserAssociation(front.dicom_port, calling, front.ae_title, model, username, token)
        stack.callback(user.close)
        yield Pacs(level=level, ae=ae, user=user)


@contextmanager
def viewer(front: FrontEnds, token: str) -> Iterator[dicomweb.Endpoint]:
    """A viewer's keep-alive HTTP connection, signed in with a user's bearer token."""
    with dicomweb.connect(front.dicomweb, {"Authorization": f"Bearer {token}"}) as endpoint:
        yield endpoint


def qido(
    endpoint: dicomweb.Endpoint, level: Level, matching: Mapping[str, str], limit: int, offset: int
) -> tuple[float, int]:
    """Seconds to the last body byte of one QIDO-RS search, and its matches."""
    params = {**matching, "limit": str(limit)}
    if offset:
        params["offset"] = str(offset)
    path = QIDO_PATHS[level]
    reply = dicomweb.get(endpoint, path, dicomweb.DICOM_JSON, params, keep=True)
    if reply.status == 204:  # PS3.18 10.6.3.2: no match
        return reply.seconds, 0
    if not reply.ok:
        raise QueryFailed(f"QIDO-RS {path}: {reply.problem()}")
    return reply.seconds, len(json.loads(reply.body))
