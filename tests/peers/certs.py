"""A throw-away PKI for DICOM TLS tests, made with ``cryptography``: never real keys.

A trusted CA signs the server's certificate (SAN IP 127.0.0.1) and one client's; a second,
untrusted CA signs a rogue client's. RSA 2048 keys with SHA-256 signatures, the smallest
BCP 195 (RFC 9325 4.3) accepts, as the RSA suites of PS3.15 B.9 authenticate with RSA.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class Pki:
    ca: Path  # the CA rix trusts for client certificates, and clients trust for rix
    server: Identity
    client: Identity  # signed by ``ca``
    rogue: Identity  # signed by another CA that rix does not trust


@dataclass(frozen=True, slots=True, kw_only=True)
class _Issuer:
    name: x509.Name
    key: rsa.RSAPrivateKey


def write_pki(folder: Path) -> Pki:
    """Write a CA, a server, a trusted client and a rogue client into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = _new_ca("rix test CA", folder / "ca.pem")
    other_ca = _new_ca("untrusted test CA", folder / "other-ca.pem")
    server_usage = [ExtendedKeyUsageOID.SERVER_AUTH]
    client_usage = [ExtendedKeyUsageOID.CLIENT_AUTH]
    return Pki(
        ca=folder / "ca.pem",
        server=_new_leaf(folder, "server", ca, server_usage, ip=ipaddress.ip_address(HOST)),
        client=_new_leaf(folder, "client", ca, client_usage),
        rogue=_new_leaf(folder, "rogue", other_ca, client_usage),
    )


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name, issuer: x509.Name, key: rsa.RSAPrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def _new_ca(common_name: str, path: Path) -> _Issuer:
    key = _new_key()
    name = _name(common_name)
    cert = (
        _builder(name, name, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return _Issuer(name=name, key=key)


def _new_leaf(
    folder: Path,
    common_name: str,
    issuer: _Issuer,
    usage: list[x509.ObjectIdentifier],
    *,
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None,
) -> Identity:
    key = _new_key()
    builder = (
        _builder(_name(common_name), issuer.name, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    if ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ip)]), critical=False
        )
    cert = builder.sign(issuer.key, hashes.SHA256())
    identity = Identity(cert=folder / f"{common_name}.pem", key=folder / f"{common_name}.key")
    identity.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    identity.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return identity


def client_context(ca: Path, identity: Identity | None = None) -> ssl.SSLContext:
    """A TLS client that trusts ``ca`` for the server and presents ``identity``, if any."""
    context = ssl.create_default_context(cafile=ca)
    if identity is not None:
        context.load_cert_chain(identity.cert, identity.key)
    return context
