"""A live `rix serve` in a subprocess, on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import traceback
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from typer.testing import CliRunner

from rix.admin import region as admin
from rix.archive import Archive
from rix.auth.users import parse_roles
from rix.cli.main import app as cli
from rix.cli.options import operator
from rix.region.aes import RemoteAE
from tests.peers import sqlite
from tests.peers.archive import opened

ROOT = Path(__file__).resolve().parents[2]
# where `make test` installs the viewer and htmx (`make viewer`), for every test server
VIEWER = ROOT / "build" / "ohif"
ASSETS = ROOT / "build" / "assets"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RixServer:
    data: Path
    database_url: str = ""
    ae_title: str = "RIX"
    accept_any_ae: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    # True: `rix serve` migrates an empty SQLite index itself (the session's server, so that
    # is seen working); else it starts on a copy of the session's migrated one
    fresh_index: bool = False
    dicom_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _token: str = ""

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            RIX_DATA=str(self.data),
            RIX_DATABASE_URL=self.database_url,
            RIX_DICOM_PORT=str(self.dicom_port),
            RIX_HTTP=f"127.0.0.1:{self.http_port}",
            RIX_AE_TITLE=self.ae_title,
            RIX_ACCEPT_ANY_AE="true" if self.accept_any_ae else "false",
            TCP_NODELAY="1",
            RIX_VIEWER_DIR=str(VIEWER),
            RIX_PORTAL_ASSETS_DIR=str(ASSETS),
        )
        env.update(self.extra_env)
        return env

    def rix(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a `rix` CLI command against this server's data folder and database: the
        command line's own app in this process, with the server's environment (a new
        interpreter spends about 1.5 s importing rix before the command starts)."""
        result = CliRunner().invoke(cli, list(args), env=self.env, prog_name="rix")
        stderr = result.stderr
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            trace = traceback.format_exception(result.exception)
            stderr += "".join(trace)  # as the interpreter would print it
        done = subprocess.CompletedProcess(
            ["rix", *args], result.exit_code, stdout=result.stdout, stderr=stderr
        )
        if check:
            done.check_returncode()
        return done

    @contextmanager
    def archive(self) -> Iterator[Archive]:
        """The server's archive opened in the test process, migrated as a `rix` command
        would: what the command would change, changed without starting one (about 1.5 s
        each), before or while the server runs."""
        with opened(self.data, self.database_url) as archive:
            yield archive

    def add_trust(self, code: str, name: str, issuer: str = "", pacs: str | None = None) -> None:
        """As `rix trust add`: the same function, as the same principal."""
        with self.archive() as archive:
            admin.add_trust(archive, operator(), code, name, issuer, pacs)

    def add_user(
        self, username: str, roles: str, *, trust: str = "", password: str = "", email: str = ""
    ) -> None:
        """As `rix user add`: ``roles`` comma-separated."""
        with self.archive() as archive:
            admin.add_user(
                archive,
                operator(),
                username=username,
                roles=parse_roles(roles),
                trust=trust,
                password=password,
                email=email,
            )

    def create_token(self, username: str) -> str:
        """As `rix token create`: a new API token of ``username``."""
        with self.archive() as archive:
            return admin.create_token(archive, operator(), username, "", None)

    def add_ae(self, title: str, host: str, port: int, trust: str = "") -> None:
        """As `rix ae add`: a registered DICOM peer."""
        with self.archive() as archive:
            admin.add_ae(archive, operator(), RemoteAE(title=title, host=host, port=port), trust)

    def agree(self, one: str, other: str, agreed: bool = True) -> None:
        """As `rix agreement add` (or `remove`)."""
        with self.archive() as archive:
            if agreed:
                admin.add_agreement(archive, operator(), one, other, "")
            else:
                admin.remove_agreement(archive, operator(), one, other)

    @property
    def token(self) -> str:
        """An API token of ``tester``, clinician and radiologist of trust TEST, made once
        (the command line's own tests are in tests/cli): what STOW-RS stores through it is
        TEST's."""
        if not self._token:
            self.add_trust("TEST", "Test Trust")
            self.add_user("tester", "clinician,radiologist", trust="TEST")
            self._token = self.create_token("tester")
        return self._token

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header of ``token``."""
        return {"Authorization": f"Bearer {self.token}"}

    def start(self, timeout: float = 30.0) -> RixServer:
        self.data.mkdir(parents=True, exist_ok=True)
        if not self.database_url and not self.fresh_index:
            sqlite.migrated_index(self.data)
        self.log_path = self.data.parent / f"{self.data.name}-serve.log"
        with self.log_path.open("ab") as log:  # the child has its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "rix.cli", "serve"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rix serve exited: {self.log_path.read_text()[-3000:]}")
            try:
                url = f"http://127.0.0.1:{self.http_port}/healthz"
                with urllib.request.urlopen(url, timeout=1):
                    pass
                if _dicom_port_open(self.dicom_port):
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError("rix serve did not become healthy")

    def stop(self, *, wait: bool = True) -> None:
        """SIGTERM, then wait for the process to exit. A fixture done with its server passes
        ``wait=False``: the shutdown (about 2 s: workers, listeners, the index) then overlaps
        the next test, and ``reap`` collects the process by the end of the session."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            if wait:
                _wait_or_kill(self.process)
            else:
                _stopping.append(self.process)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: no clean-up runs, as in a power cut of the process."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        self.process = None


_stopping: list[subprocess.Popen[bytes]] = []  # servers told to stop, not yet waited for


def reap() -> None:
    """Wait for every server stopped with ``wait=False`` (the end of the session)."""
    while _stopping:
        _wait_or_kill(_stopping.pop())


def _wait_or_kill(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _dicom_port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
