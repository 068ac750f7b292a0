"""DICOM over TLS: the BCP 195 secure transport connection profiles of PS3.15 B.9-B.11.

An optional second listener beside the plain one: the same AE, the same handlers, with
TLS 1.2 or later and only the cipher suites BCP 195 (RFC 9325 4.2) recommends. When a CA
is configured, peers must present a certificate it signed (PS3.15 B.9 node
authentication); otherwise the listener authenticates itself only.
"""

from __future__ import annotations

import socket
import ssl
from functools import partial
from typing import Any

import structlog
from pynetdicom import evt
from pynetdicom.events import Event
from pynetdicom.transport import ThreadedAssociationServer

from rix.archive import Archive
from rix.config import Settings, SettingsError
from rix.dicom import scp

log = structlog.get_logger(__name__)

# TLS 1.2 suites: ephemeral ECDH key exchange with an AEAD cipher, the kind RFC 9325 4.2
# recommends (ChaCha20-Poly1305 too, for peers without AES hardware). No RSA key transport
# (no forward secrecy), no finite-field DHE (dropped from RFC 9325's list, Appendix A), no
# CBC or SHA-1. DCMTK 3.6.7's BCP 195 profiles (+py, +px, +pz) all offer ECDHE-RSA-AES-GCM.
# TLS 1.3 suites are all AEAD with ephemeral key exchange: OpenSSL's defaults stay.
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


class _DeferredHandshakeContext(ssl.SSLContext):
    """A server context whose sockets shake hands in the association's thread.

    pynetdicom's ``AssociationServer.get_request`` wraps each accepted socket with the
    default ``do_handshake_on_connect=True``, in the one thread that accepts connections
    and with no timeout: a single peer that connected and then stayed silent would hold
    every other TLS peer at the door. ``complete_handshake`` does it instead.
    """

    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        return super().wrap_socket(
            sock,
            server_side=server_side,
            do_handshake_on_connect=False,
            suppress_ragged_eofs=suppress_ragged_eofs,
            server_hostname=server_hostname,
            session=session,
        )


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """The listener's TLS context, or None when ``dicom_tls_port`` is 0.

    TLS 1.2 is the floor (RFC 9325 3.1.1, PS3.15 B.9): TLS 1.0 and 1.1 peers are refused,
    not downgraded to (RFC 8996). With ``dicom_tls_ca`` the peer's certificate is required
    and checked against that CA only, not the system's web CAs. Raises ``SettingsError``
    at start when the certificate, key or CA cannot be loaded.
    """
    if not settings.dicom_tls_port:
        return None
    context = _DeferredHandshakeContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(CIPHERS)
    context.options |= ssl.OP_NO_RENEGOTIATION  # RFC 9325 3.5: no client renegotiation
    try:
        context.load_cert_chain(settings.dicom_tls_cert, settings.dicom_tls_key)
    except OSError as exc:  # ssl.SSLError is an OSError
        raise SettingsError(
            f"dicom_tls_cert/dicom_tls_key: cannot load {settings.dicom_tls_cert} with "
            f"{settings.dicom_tls_key}: {_reason(exc)}"
        ) from exc
    if settings.dicom_tls_ca:
        try:
            context.load_verify_locations(cafile=settings.dicom_tls_ca)
        except OSError as exc:
            raise SettingsError(
                f"dicom_tls_ca: cannot load {settings.dicom_tls_ca}: {_reason(exc)}"
            ) from exc
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def complete_handshake(event: Event, timeout: float) -> None:
    """Shake hands on a newly accepted connection, within ``timeout`` seconds.

    A peer that fails (an untrusted or missing certificate, TLS below 1.2, no common
    cipher suite) or times out is logged with its reason and address and disconnected
    before any DICOM is read.
    """
    assoc: Any = event.assoc
    sock = assoc.dul.socket.socket
    if not isinstance(sock, ssl.SSLSocket):
        return
    sock.settimeout(timeout)
    try:
        sock.do_handshake()
    except OSError as exc:  # ssl.SSLError and TimeoutError are OSErrors
        log.warning("dicom tls handshake failed", peer=assoc.requestor.address, reason=_reason(exc))
        assoc.dul.socket.close()
        # Not 30 s waiting for an A-ASSOCIATE-RQ that cannot come, holding one of the
        # max_associations places: pynetdicom ends an acceptor whose ACSE wait times out.
        assoc.acse_timeout = 0
        return
    sock.settimeout(None)  # as pynetdicom leaves accepted sockets: the DUL polls them


def start_tls(archive: Archive) -> ThreadedAssociationServer | None:
    """Start the TLS listener without blocking, or return None when it is not configured.

    Called after ``scp.start``, which quiets pynetdicom's PHI logging and sets the socket
    polling both listeners share; ``shutdown()`` stops it.
    """
    settings = archive.settings
    context = server_context(settings)
    if context is None:
        return None
    handlers = [
        *scp.handlers(archive),
        (evt.EVT_CONN_OPEN, partial(complete_handshake, timeout=settings.dicom_timeout)),
    ]
    server = scp.build_ae(archive).start_server(
        (settings.dicom_host, settings.dicom_tls_port),
        block=False,
        evt_handlers=handlers,
        ssl_context=context,
    )
    assert server is not None
    log.info(
        "dicom tls listening",
        host=settings.dicom_host,
        port=settings.dicom_tls_port,
        ae_title=settings.ae_title,
        client_certificates="required" if settings.dicom_tls_ca else "not requested",
    )
    return server


def _reason(exc: OSError) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc.strerror or type(exc).__name__)
