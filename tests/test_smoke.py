"""The server starts on both backends and answers C-ECHO from DCMTK."""

import subprocess

from tests.peers.server import RixServer


def test_echoscu_gets_success(rix_server: RixServer) -> None:
    result = subprocess.run(
        ["echoscu", "-aec", "RIX", "127.0.0.1", str(rix_server.dicom_port)],
        check=False,
        env={"TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
