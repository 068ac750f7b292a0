"""Session fixtures: every server test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.peers import browser, postgres, server, sqlite
from tests.peers.server import RixServer

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(backend: str) -> Iterator[str]:
    """'' (SQLite in the data folder) or a fresh PostgreSQL database for the session."""
    if backend == "sqlite":
        yield ""
        return
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


@pytest.fixture
def fresh_database_url(backend: str) -> Iterator[str]:
    """An empty database of the test's own, for tests of the migrations."""
    if backend == "sqlite":
        yield ""
        return
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


@pytest.fixture
def migrated_database_url(backend: str) -> Iterator[str]:
    """A database of the test's own at the newest schema, for tests that start their own
    server or open their own archive ('' is SQLite in the test's data folder)."""
    if backend == "sqlite":
        yield ""
        return
    url = postgres.create_database(migrated=True)
    yield url
    postgres.drop_database(url)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    server.reap()
    postgres.drop_template()
    sqlite.drop_template()


@pytest.fixture(scope="session")
def rix_server(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[RixServer]:
    """One live `rix serve` per backend for the whole session."""
    shared = RixServer(
        data=tmp_path_factory.mktemp("rix") / "data", database_url=database_url, fresh_index=True
    )
    shared.start()
    yield shared
    shared.stop(wait=False)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    """One headless Chromium for the session (the sign-in and the portal tests)."""
    with browser.chromium() as b:
        yield b


def new_server(tmp_path: Path, **kwargs: object) -> RixServer:
    """A server of its own for tests that kill, restart or reconfigure it."""
    return RixServer(data=tmp_path / "data", **kwargs)  # type: ignore[arg-type]
