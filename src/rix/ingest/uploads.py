"""Resumable uploads of outside media from the browser, kept under the data folder.

A clerk's CD or zip can be gigabytes over a hospital network that drops connections, so
the browser sends each file in chunks at stated offsets, and after an interruption asks
how much arrived and continues from there. An upload is a folder
``DATA/uploads/ID/``: ``session.json`` (who owns it, the files declared, what the scan
found, the user's choices, the summary) and ``files/N``, the bytes of declared file N.
Names from the browser are labels only; files on disk are numbered, so no name (``../``,
an absolute path) can reach outside the folder.

A chunk is appended only whole and only at the end of what was received: a short or
corrupt chunk (its length or SHA-256 not what was stated) or one at another offset is
refused with its reason and the bytes already received stay as they were. Each append
is fsynced before it is acknowledged, so what ``status`` reports survives a crash.

At region scale the data folder holding uploads must be shared by the web and worker
nodes (the store step runs as a job, ``rix.reconcile``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from rix.errors import Conflict, NotFound, RixError

FOLDER = "uploads"
MAX_CHUNK = 16 << 20  # bytes in one request: bounded memory per request
MAX_FILES = 100_000  # a DVD of single-frame images holds some thousands
MAX_BYTES = 64 << 30  # an upload in all: a dual-layer DVD is 8.5 GB
MAX_NAME = 1024
_ID = re.compile(r"^[0-9a-f]{32}$")


class ChunkRefused(RixError):
    """The chunk is not what it says (short, corrupt, past the declared size)."""

    http_status = 400


class State(StrEnum):
    RECEIVING = "receiving"  # chunks accepted
    SCANNED = "scanned"  # the outside patients are known; files are frozen
    STORING = "storing"  # the store job is queued or running
    DONE = "done"  # stored; the files are gone, the summary stays until expiry


@dataclass(frozen=True, slots=True, kw_only=True)
class Declared:
    """A file the browser will send: its name (a label: path in a folder, or a file
    name) and its size in bytes."""

    name: str
    size: int

    def check(self) -> None:
        if not self.name or len(self.name) > MAX_NAME or any(ord(c) < 32 for c in self.name):
            raise Conflict("a file needs a name of 1 to 1024 printable characters")
        if self.size < 0:
            raise Conflict(f"file {self.name[:80]!r}: size cannot be negative")


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    id: str
    owner: str  # the user's name
    user_pk: int | None
    trust: str  # the user's trust code: the owner of what is stored
    created_at: float
    updated_at: float
    files: tuple[Declared, ...]
    state: State = State.RECEIVING
    scan: dict[str, Any] | None = None  # rix.reconcile.Scan as JSON
    choices: dict[str, str] = field(default_factory=dict)  # outside key → issuer/ID or skip
    job: int | None = None
    summary: dict[str, Any] | None = None

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["state"] = self.state.value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Session:
        files = tuple(Declared(**f) for f in data.pop("files"))
        return cls(files=files, **{**data, "state": State(data["state"])})


def root(data: Path) -> Path:
    return data / FOLDER


def _folder(base: Path, upload_id: str) -> Path:
    if not _ID.match(upload_id):
        raise NotFound("no such upload")
    return base / upload_id


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One writer at a time per upload, across processes (an advisory lock)."""
    try:
        fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        raise NotFound("no such upload") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_json(folder: Path, session: Session) -> None:
    temp = folder / "session.json.tmp"
    with temp.open("w", encoding="utf-8") as f:
        json.dump(session.as_json(), f)
        f.flush()
        os.fsync(f.fileno())
    temp.replace(folder / "session.json")


def _read_json(folder: Path) -> Session:
    try:
        data = json.loads((folder / "session.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound("no such upload") from None
    return Session.from_json(data)


def create(
    base: Path, *, owner: str, user_pk: int | None, trust: str, files: list[Declared]
) -> Session:
    """A new upload of ``files``, owned by one user of one trust."""
    if not files or len(files) > MAX_FILES:
        raise Conflict(f"an upload declares 1 to {MAX_FILES} files")
    for declared in files:
        declared.check()
    total = sum(f.size for f in files)
    if total > MAX_BYTES:
        raise Conflict(f"an upload is at most {MAX_BYTES >> 30} GiB")
    base.mkdir(parents=True, exist_ok=True)
    if shutil.disk_usage(base).free < total * 2:  # the upload, then its stored copy
        raise Conflict("not enough free space in the data folder for this upload")
    now = time.time()
    session = Session(
        id=secrets.token_hex(16),
        owner=owner,
        user_pk=user_pk,
        trust=trust,
        created_at=now,
        updated_at=now,
        files=tuple(files),
    )
    folder = base / session.id
    (folder / "files").mkdir(parents=True)
    _write_json(folder, session)
    return session


def load(base: Path, upload_id: str) -> Session:
    return _read_json(_folder(base, upload_id))


def owned(base: Path, upload_id: str, *, owner: str, user_pk: int | None) -> Session:
    """The upload if this user made it; anyone else is told it does not exist."""
    session = load(base, upload_id)
    if session.owner != owner or session.user_pk != user_pk:
        raise NotFound("no such upload")
    return session


def update(base: Path, upload_id: str, **changes: Any) -> Session:
    folder = _folder(base, upload_id)
    with _locked(folder):
        session = replace(_read_json(folder), updated_at=time.time(), **changes)
        _write_json(folder, session)
    return session


def transition(base: Path, upload_id: str, expected: tuple[State, ...], **changes: Any) -> Session:
    """Change the upload only if it is in one of ``expected`` states (one request wins)."""
    folder = _folder(base, upload_id)
    with _locked(folder):
        session = _read_json(folder)
        if session.state not in expected:
            raise Conflict(f"the upload is {session.state.value}")
        session = replace(session, updated_at=time.time(), **changes)
        _write_json(folder, session)
    return session


def file_path(base: Path, session: Session, number: int) -> Path:
    if not 0 <= number < len(session.files):
        raise NotFound(f"the upload has no file {number}")
    return _folder(base, session.id) / "files" / str(number)


def received(base: Path, session: Session) -> list[int]:
    """Bytes received of each declared file, in order: where the browser resumes."""
    folder = _folder(base, session.id) / "files"
    out = []
    for number in range(len(session.files)):
        try:
            out.append((folder / str(number)).stat().st_size)
        except FileNotFoundError:
            out.append(0)
    return out


def complete(base: Path, session: Session) -> bool:
    return received(base, session) == [f.size for f in session.files]


def write_chunk(
    base: Path,
    session: Session,
    *,
    number: int,
    offset: int,
    data: bytes,
    length: int | None = None,
    sha256: str = "",
) -> int:
    """Append ``data`` to file ``number`` if it starts where the received bytes end, is
    as long as stated (``length``, the request's Content-Length) and has the stated
    ``sha256``; returns the bytes of the file received after it."""
    path = file_path(base, session, number)
    declared = session.files[number]
    if length is not None and len(data) != length:
        raise ChunkRefused(f"chunk truncated: {len(data)} of {length} bytes arrived")
    if sha256 and hashlib.sha256(data).hexdigest() != sha256.lower():
        raise ChunkRefused("chunk does not match its SHA-256: nothing was written")
    folder = _folder(base, session.id)
    with _locked(folder):
        state = _read_json(folder).state
        if state is not State.RECEIVING:
            raise Conflict(f"the upload is {state.value}: it takes no more chunks")
        with path.open("ab") as f:
            have = os.fstat(f.fileno()).st_size
            if offset != have:
                raise Conflict(
                    f"chunk at offset {offset}, but {have} bytes of file {number} have "
                    f"arrived: resume at {have}"
                )
            if have + len(data) > declared.size:
                raise ChunkRefused(
                    f"chunk runs past the declared size of file {number} ({declared.size})"
                )
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            return have + len(data)


def discard_files(base: Path, upload_id: str) -> None:
    """The bytes of a finished upload: stored now, so kept no longer."""
    shutil.rmtree(_folder(base, upload_id) / "files", ignore_errors=True)


def delete(base: Path, upload_id: str) -> None:
    shutil.rmtree(_folder(base, upload_id), ignore_errors=True)


def sweep(base: Path, hours: float, now: float | None = None) -> list[str]:
    """Delete uploads unchanged for ``hours`` (a storing one only once its job is long
    gone: the job itself touches the session as it progresses); returns their ids."""
    if not base.is_dir():
        return []
    cutoff = (time.time() if now is None else now) - hours * 3600
    gone = []
    for folder in base.iterdir():
        if not _ID.match(folder.name):
            continue
        try:
            session = _read_json(folder)
        except (NotFound, ValueError, TypeError, KeyError):
            session = None
        changed = session.updated_at if session is not None else folder.stat().st_mtime
        if changed < cutoff:
            delete(base, folder.name)
            gone.append(folder.name)
    return gone
