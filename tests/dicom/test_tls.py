"""DICOM over TLS (PS3.15 B.9, BCP 195 / RFC 9325): the second listener and its policy.

The live server requires client certificates signed by the test CA. DCMTK's ``+tls``
client, with its default Non-downgrading BCP 195 profile, is the outside peer.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import build_context
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from rix.config import Settings, SettingsError
from rix.dicom import tls
from tests.peers import certs, dcmtk, postgres, scu, synthetic
from tests.peers.certs import Identity, Pki
from tests.peers.server import RixServer, free_port

CALLING = "TLSPEER"


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsRix:
    server: RixServer
    port: int  # the TLS listener; server.dicom_port is the plain one
    pki: Pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return certs.write_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_rix(tmp_path_factory: pytest.TempPathFactory, backend: str, pki: Pki) -> Iterator[TlsRix]:
    """A server of its own (its TLS settings are its own) on each backend."""
    url = postgres.create_database(migrated=True) if backend == "postgresql" else ""
    port = free_port()
    env = {
        "RIX_DICOM_TLS_PORT": str(port),
        "RIX_DICOM_TLS_CERT": str(pki.server.cert),
        "RIX_DICOM_TLS_KEY": str(pki.server.key),
        "RIX_DICOM_TLS_CA": str(pki.ca),
    }
    folder = tmp_path_factory.mktemp("tls")
    server = RixServer(data=folder / "data", database_url=url, extra_env=env).start()
    try:
        yield TlsRix(server=server, port=port, pki=pki)
    finally:
        server.stop(wait=False)
        if url:
            postgres.drop_database(url)


def tls_args(identity: Identity | None, pki: Pki) -> list[str]:
    """DCMTK's TLS options: present ``identity`` (or none), trust the test CA for rix."""
    presented = ["+tls", str(identity.key), str(identity.cert)] if identity else ["+tla"]
    return [*presented, "+cf", str(pki.ca)]


def echoscu_tls(
    rix: TlsRix, identity: Identity | None, *options: str
) -> subprocess.CompletedProcess[str]:
    args = [*tls_args(identity, rix.pki), *options]
    return dcmtk.run("echoscu", "-v", *args, "-aec", "RIX", dcmtk.HOST, str(rix.port), timeout=30)


def server_log(rix: TlsRix) -> str:
    assert rix.server.log_path is not None
    return rix.server.log_path.read_text()


# DCMTK's BCP 195 profiles: Non-downgrading (its default), plain, and Extended (TLS 1.2 only)
@pytest.mark.parametrize("profile", ["+py", "+px", "+pz"])
def test_echoscu_with_a_trusted_certificate_gets_success(tls_rix: TlsRix, profile: str) -> None:
    result = echoscu_tls(tls_rix, tls_rix.pki.client, profile)
    assert result.returncode == 0, result.stderr
    assert "Received Echo Response (Success)" in result.stdout + result.stderr


def test_storescu_over_tls_stores_an_instance_the_plain_port_finds(
    tls_rix: TlsRix, tmp_path: Path
) -> None:
    [path] = synthetic.write_series(tmp_path / "in", 1, patient_id="TLS-1")
    study_uid = pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID
    args = tls_args(tls_rix.pki.client, tls_rix.pki)
    stored = dcmtk.run(
        "storescu", *args, "-aet", CALLING, "-aec", "RIX", dcmtk.HOST, str(tls_rix.port), str(path)
    )
    assert stored.returncode == 0, stored.stderr

    found = dcmtk.run(
        "findscu", "-S", "-X", "-od", str(tmp_path), "-aet", CALLING, "-aec", "RIX",
        dcmtk.HOST, str(tls_rix.server.dicom_port),
        *dcmtk.keys({"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study_uid}),
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    answers = [pydicom.dcmread(p) for p in tmp_path.glob("rsp*.dcm")]
    assert [a.StudyInstanceUID for a in answers] == [study_uid]


def test_pynetdicom_client_with_tls_args_finds_over_tls(tls_rix: TlsRix, tmp_path: Path) -> None:
    [path] = synthetic.write_series(tmp_path, 1, patient_id="TLS-2")
    instance = pydicom.dcmread(path)
    context = certs.client_context(tls_rix.pki.ca, tls_rix.pki.client)
    contexts = [
        build_context(instance.SOPClassUID),
        build_context(StudyRootQueryRetrieveInformationModelFind),
    ]
    with scu.association(
        tls_rix.port, contexts, calling=CALLING, tls_args=(context, certs.HOST)
    ) as assoc:
        assert assoc.send_c_store(instance).Status == 0x0000
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = instance.StudyInstanceUID
        answers = [
            identifier
            for status, identifier in assoc.send_c_find(
                query, StudyRootQueryRetrieveInformationModelFind
            )
            if status.Status in (0xFF00, 0xFF01) and identifier is not None
        ]
    assert [a.StudyInstanceUID for a in answers] == [instance.StudyInstanceUID]


def test_tls12_client_negotiates_an_ecdhe_aead_suite(tls_rix: TlsRix) -> None:
    context = certs.client_context(tls_rix.pki.ca, tls_rix.pki.client)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with scu.association(
        tls_rix.port, [build_context(Verification)], tls_args=(context, certs.HOST)
    ) as assoc:
        assert assoc.dul.socket is not None
        sock = assoc.dul.socket.socket
        assert isinstance(sock, ssl.SSLSocket)
        name, version, _bits = sock.cipher() or ("", "", 0)
        assert assoc.send_c_echo().Status == 0x0000
    assert version == "TLSv1.2"
    assert name.startswith("ECDHE-") and ("-GCM-" in name or "CHACHA20" in name), name


def test_client_without_a_certificate_is_refused(tls_rix: TlsRix) -> None:
    ae = scu.new_ae()
    ae.add_requested_context(Verification)
    context = certs.client_context(tls_rix.pki.ca)
    assoc = ae.associate(certs.HOST, tls_rix.port, tls_args=(context, certs.HOST))
    assert not assoc.is_established
    assert "reason=PEER_DID_NOT_RETURN_A_CERTIFICATE" in server_log(tls_rix)


def test_client_certificate_from_an_untrusted_ca_is_refused(tls_rix: TlsRix) -> None:
    result = echoscu_tls(tls_rix, tls_rix.pki.rogue)
    assert result.returncode != 0
    assert "Echo Response" not in result.stdout + result.stderr
    assert "reason=CERTIFICATE_VERIFY_FAILED" in server_log(tls_rix)


def test_tls11_client_is_refused_by_the_server(tls_rix: TlsRix) -> None:
    context = tls11_client(tls_rix.pki)
    with (
        socket.create_connection((certs.HOST, tls_rix.port), timeout=10) as raw,
        pytest.raises(ssl.SSLError) as refused,
    ):
        context.wrap_socket(raw, server_hostname=certs.HOST)
    assert refused.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION"  # the server's alert


def test_silent_connection_does_not_hold_up_other_peers(tls_rix: TlsRix) -> None:
    with socket.create_connection((certs.HOST, tls_rix.port)):
        started = time.monotonic()
        result = echoscu_tls(tls_rix, tls_rix.pki.client)
        assert result.returncode == 0, result.stderr
        assert time.monotonic() - started < 5


def test_plain_port_still_answers(tls_rix: TlsRix) -> None:
    assert dcmtk.echoscu(tls_rix.server.dicom_port) == 0


def test_unloadable_certificate_stops_start_with_a_settings_error(tmp_path: Path, pki: Pki) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    env = {
        "RIX_DICOM_TLS_PORT": str(free_port()),
        "RIX_DICOM_TLS_CERT": str(bad),
        "RIX_DICOM_TLS_KEY": str(pki.server.key),
    }
    with pytest.raises(RuntimeError, match="rix serve exited") as exited:
        RixServer(data=tmp_path / "data", extra_env=env).start()
    assert "SettingsError: dicom_tls_cert/dicom_tls_key: cannot load" in str(exited.value)


# The context itself, without a server: handshakes through memory BIOs.


def settings(pki: Pki, *, ca: bool) -> Settings:
    return Settings(
        dicom_tls_port=2762,
        dicom_tls_cert=str(pki.server.cert),
        dicom_tls_key=str(pki.server.key),
        dicom_tls_ca=str(pki.ca) if ca else "",
    )


def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> ssl.SSLObject:
    """Shake hands in memory; the server's end, or the first side's ``ssl.SSLError``."""
    wires = {side: (ssl.MemoryBIO(), ssl.MemoryBIO()) for side in ("server", "client")}
    ends = {
        "server": server.wrap_bio(*wires["server"], server_side=True),
        "client": client.wrap_bio(*wires["client"], server_hostname=certs.HOST),
    }
    for _ in range(10):
        done = 0
        for side, other in (("client", "server"), ("server", "client")):
            try:
                ends[side].do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
            finally:
                wires[other][0].write(wires[side][1].read())
        if done == 2:
            return ends["server"]
    raise AssertionError("handshake did not finish")


def tls11_client(pki: Pki) -> ssl.SSLContext:
    context = certs.client_context(pki.ca, pki.client)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 will not offer TLS 1.1 otherwise
    with warnings.catch_warnings(category=DeprecationWarning, action="ignore"):
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    return context


def test_server_context_is_none_when_tls_port_is_zero() -> None:
    assert tls.server_context(Settings()) is None


def test_server_context_refuses_tls_below_1_2(pki: Pki) -> None:
    context = tls.server_context(settings(pki, ca=False))
    assert context is not None
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError, match="UNSUPPORTED_PROTOCOL"):
        handshake(context, tls11_client(pki))


def test_server_context_offers_only_ecdhe_aead_suites_in_tls12(pki: Pki) -> None:
    context = tls.server_context(settings(pki, ca=False))
    assert context is not None
    tls12 = [c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12
    for name in tls12:
        assert name.startswith("ECDHE-") and ("-GCM-" in name or "CHACHA20" in name), name


def test_server_context_requests_no_client_certificate_without_a_ca(pki: Pki) -> None:
    context = tls.server_context(settings(pki, ca=False))
    assert context is not None
    server_end = handshake(context, certs.client_context(pki.ca))
    assert server_end.getpeercert() is None


def test_server_context_with_a_ca_requires_a_client_certificate(pki: Pki) -> None:
    context = tls.server_context(settings(pki, ca=True))
    assert context is not None
    with pytest.raises(ssl.SSLError, match="PEER_DID_NOT_RETURN_A_CERTIFICATE"):
        handshake(context, certs.client_context(pki.ca))
    server_end = handshake(context, certs.client_context(pki.ca, pki.client))
    assert server_end.getpeercert() is not None


def test_missing_key_file_is_a_settings_error(pki: Pki, tmp_path: Path) -> None:
    missing = Settings(
        dicom_tls_port=2762,
        dicom_tls_cert=str(pki.server.cert),
        dicom_tls_key=str(tmp_path / "absent.key"),
    )
    with pytest.raises(SettingsError, match="dicom_tls_cert/dicom_tls_key"):
        tls.server_context(missing)
