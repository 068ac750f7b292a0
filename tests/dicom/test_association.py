"""Association policy (PS3.8 7.1.1.9): unknown calling AE titles are rejected.

A server of its own with ``accept_any_ae`` off: a caller not in the AE registry gets an
A-ASSOCIATE-RJ (rejected-permanent, service-user, calling AE title not recognized) and
is accepted once ``rix ae add`` registers it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pynetdicom import build_context

from tests.conftest import new_server
from tests.peers import dcmtk, postgres, scu
from tests.peers.server import RixServer

VERIFICATION = "1.2.840.10008.1.1"
REJECTED_PERMANENT, SERVICE_USER, CALLING_AE_NOT_RECOGNIZED = 0x01, 0x01, 0x03


@pytest.fixture(scope="module")
def strict_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RixServer]:
    url = postgres.create_database(migrated=True) if backend == "postgresql" else ""
    server = new_server(tmp_path_factory.mktemp("strict"), accept_any_ae=False, database_url=url)
    server.start()
    yield server
    server.stop(wait=False)
    if url:
        postgres.drop_database(url)


def associate(server: RixServer, calling: str) -> tuple[bool, tuple[int, int, int] | None]:
    """(established, (result, source, reason) of the rejection if rejected)."""
    ae = scu.new_ae(calling)
    assoc = ae.associate(
        dcmtk.HOST,
        server.dicom_port,
        [build_context(VERIFICATION)],
        ae_title="RIX",
        evt_handlers=scu.NODELAY,
    )
    try:
        if assoc.is_established:
            assert assoc.send_c_echo().Status == 0x0000
            assoc.release()
            return True, None
        assert assoc.is_rejected
        rj = assoc.acceptor.primitive
        return False, (int(rj.result), int(rj.result_source), int(rj.diagnostic))
    finally:
        ae.shutdown()


def test_unknown_calling_ae_title_is_rejected(strict_server: RixServer) -> None:
    assert associate(strict_server, "STRANGER") == (
        False,
        (REJECTED_PERMANENT, SERVICE_USER, CALLING_AE_NOT_RECOGNIZED),
    )


def test_echoscu_with_an_unknown_calling_ae_title_is_rejected(strict_server: RixServer) -> None:
    result = dcmtk.run(
        "echoscu", "-aet", "STRANGER2", "-aec", "RIX", dcmtk.HOST, str(strict_server.dicom_port)
    )
    assert result.returncode != 0
    assert "Association Rejected" in result.stdout + result.stderr


def test_calling_ae_title_is_accepted_after_rix_ae_add(strict_server: RixServer) -> None:
    assert associate(strict_server, "MODALITY1")[0] is False
    strict_server.rix("ae", "add", "MODALITY1", "--host", dcmtk.HOST, "--port", "104")
    assert associate(strict_server, "MODALITY1") == (True, None)
    assert dcmtk.echoscu(strict_server.dicom_port, calling="MODALITY1") == 0
    assert associate(strict_server, "MODALITY2")[0] is False  # others still refused


def test_a_registered_ae_title_from_another_address_is_rejected(strict_server: RixServer) -> None:
    # the title is registered for another host: whoever sends it from here is not that AE
    strict_server.rix("ae", "add", "FARPACS", "--host", "192.0.2.10", "--port", "104")
    assert associate(strict_server, "FARPACS") == (
        False,
        (REJECTED_PERMANENT, SERVICE_USER, CALLING_AE_NOT_RECOGNIZED),
    )
