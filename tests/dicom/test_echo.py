"""Verification SOP Class (PS3.4 Annex A): C-ECHO answers success."""

from __future__ import annotations

from pynetdicom import build_context

from tests.peers import dcmtk, scu
from tests.peers.server import RixServer

VERIFICATION = "1.2.840.10008.1.1"


def test_echoscu_gets_success(rix_server: RixServer) -> None:
    result = dcmtk.run("echoscu", "-v", "-aec", "RIX", dcmtk.HOST, str(rix_server.dicom_port))
    assert result.returncode == 0, result.stderr
    assert "Received Echo Response (Success)" in result.stdout + result.stderr


def test_pynetdicom_echo_gets_success(rix_server: RixServer) -> None:
    with scu.association(rix_server.dicom_port, [build_context(VERIFICATION)]) as assoc:
        assert assoc.send_c_echo().Status == 0x0000
