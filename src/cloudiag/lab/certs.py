"""The lab's certificate authority and the web server's certificates, made at `lab up`.

In ``<state>/tls``: the lab CA, the server's certificate for web.lab.test and its address
(served on 443), an expired one from the same CA (9443) and a self-signed one no VM trusts
(8443), so that the http check meets a good, an expired and an unknown certificate for
real. The CA is put where the http check looks for extra trust anchors on a VM
(``cloudiag.sysvm.probes.http.EXTRA_CA_DIR``), named for the lab, and taken away at
`lab down`.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cloudiag.lab.topology import DNS_DOMAIN, WEB
from cloudiag.sysvm.probes.http import EXTRA_CA_DIR

#: The web server's HTTPS ports: the good certificate, a stranger's, an expired one.
HTTPS_PORT = 443
UNTRUSTED_PORT = 8443
EXPIRED_PORT = 9443
WEB_NAME = f"web.{DNS_DOMAIN}"


@dataclass(frozen=True)
class ServerCert:
    """A certificate and its key, as PEM files."""

    cert: Path
    key: Path


def tls_dir(state: Path) -> Path:
    """Where a lab keeps its CA and certificates."""
    return state / "tls"


def ca_file(state: Path) -> Path:
    """The lab CA's certificate (PEM)."""
    return tls_dir(state) / "ca.pem"


def server_certs(state: Path) -> dict[int, ServerCert]:
    """The certificate each HTTPS port serves."""
    d = tls_dir(state)
    return {
        port: ServerCert(d / f"{name}.pem", d / f"{name}.key")
        for port, name in (
            (HTTPS_PORT, "web"),
            (UNTRUSTED_PORT, "stranger"),
            (EXPIRED_PORT, "expired"),
        )
    }


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cloudiag lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = path.with_suffix(".key")
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    signer: ec.EllipticCurvePrivateKey,
    *,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    ca: bool,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
    else:
        names = [x509.DNSName(WEB_NAME), x509.IPAddress(ipaddress.ip_address(WEB))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signer, hashes.SHA256())


def make(state: Path) -> None:
    """Make the CA and the server certificates (new ones every `lab up`)."""
    d = tls_dir(state)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    day = datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    # A name of its own: several labs' CAs sit side by side where the VMs look, and a
    # verifier that finds another one of the same name would take it for the issuer.
    ca_name = _name(f"cloudiag lab CA {secrets.token_hex(4)}")
    ca = _certificate(
        ca_name, ca_key, ca_name, ca_key, not_before=now - day, not_after=now + 3650 * day, ca=True
    )
    _write(ca_file(state), ca_key, ca)
    certs = server_certs(state)
    for port, (not_before, not_after, self_signed) in {
        HTTPS_PORT: (now - day, now + 365 * day, False),
        EXPIRED_PORT: (now - 30 * day, now - 2 * day, False),
        UNTRUSTED_PORT: (now - day, now + 365 * day, True),
    }.items():
        key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(WEB_NAME)
        issuer, signer = (subject, key) if self_signed else (ca_name, ca_key)
        cert = _certificate(
            subject, key, issuer, signer, not_before=not_before, not_after=not_after, ca=False
        )
        _write(certs[port].cert, key, cert)


def trusted_ca_file(prefix: str) -> Path:
    """Where the VMs of lab ``prefix`` find its CA."""
    return Path(EXTRA_CA_DIR) / f"cloudiag-lab-{prefix}.pem"


def install_ca(prefix: str, state: Path) -> None:
    """Let the lab's VMs trust its CA (they see this machine's files)."""
    target = trusted_ca_file(prefix)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(ca_file(state).read_bytes())


def remove_ca(prefix: str) -> None:
    """Take the lab's CA away again (and the folders, once empty: no lab's CA is left)."""
    target = trusted_ca_file(prefix)
    with contextlib.suppress(OSError):
        target.unlink()
    for folder in (target.parent, target.parent.parent):
        with contextlib.suppress(OSError):
            folder.rmdir()
