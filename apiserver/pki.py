"""The control plane's own certificate authority and the certificates it signs.

A real cluster trusts clients by their X.509 certificates (CN is the user, O are the groups)
and serves HTTPS with a certificate whose SANs name every address it is reached at. On first
start storagelab makes the same set kubeadm does: a CA, the apiserver's serving certificate,
an admin client certificate in `system:masters`, one for the controllers, one per kubelet.
`ensure_pki` is idempotent: it keeps what is still valid and reissues what is missing,
expiring, signed by another CA or lacking a newly configured hostname. Keys are written 0600.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_COMMON_NAME = "kubernetes"
APISERVER_COMMON_NAME = "kube-apiserver"
ADMIN_COMMON_NAME = "kubernetes-admin"
MASTERS_GROUP = "system:masters"
CONTROLLERS_COMMON_NAME = "system:kube-controller-manager"
NODES_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"

CA_DAYS = 3650
LEAF_DAYS = 365
# Reissue a leaf this long before it expires, so a restart renews it in time.
RENEW_BEFORE = dt.timedelta(days=30)
# Backdate certificates a little: a client whose clock runs slightly behind still accepts them.
CLOCK_SKEW = dt.timedelta(minutes=5)

# The names a Service-based client would use, as kubeadm puts them in the serving certificate.
DEFAULT_SERVING_NAMES = (
    "kubernetes", "kubernetes.default", "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local", "localhost", "127.0.0.1", "::1",
)

_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

PrivateKey = ec.EllipticCurvePrivateKey


class PkiError(Exception):
    """The PKI directory holds something we must not silently replace (e.g. a broken CA)."""


@dataclass(frozen=True)
class CertFiles:
    """Where one certificate and its private key live on disk."""

    cert: Path
    key: Path

    def cert_pem(self) -> bytes:
        return self.cert.read_bytes()

    def key_pem(self) -> bytes:
        return self.key.read_bytes()


@dataclass(frozen=True)
class Pki:
    """The loaded CA plus the files of every certificate made at start."""

    directory: Path
    ca_cert: x509.Certificate
    ca_key: PrivateKey
    ca: CertFiles
    apiserver: CertFiles
    admin: CertFiles
    controllers: CertFiles

    @property
    def ca_pem(self) -> bytes:
        return self.ca_cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class _LeafSpec:
    """What a leaf certificate must say; an existing file that says less is reissued."""

    common_name: str
    groups: tuple[str, ...] = ()
    client: bool = True
    server_names: tuple[str, ...] = ()
    days: int = LEAF_DAYS


def ensure_pki(directory: Path, *, hostnames: Sequence[str] = (),
               now: dt.datetime | None = None) -> Pki:
    """Create or refresh the PKI in `directory` and return it (safe to call on every start)."""
    now = now or _utcnow()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _locked(directory):
        ca_cert, ca_key = _ensure_ca(directory, now)
        names = _serving_names(hostnames)
        specs = {
            "apiserver": _LeafSpec(APISERVER_COMMON_NAME, client=False, server_names=names),
            "admin": _LeafSpec(ADMIN_COMMON_NAME, (MASTERS_GROUP,)),
            "controller-manager": _LeafSpec(CONTROLLERS_COMMON_NAME),
        }
        files = {stem: _ensure_leaf(directory, stem, spec, ca_cert, ca_key, now)
                 for stem, spec in specs.items()}
    return Pki(directory=directory, ca_cert=ca_cert, ca_key=ca_key,
               ca=CertFiles(directory / "ca.crt", directory / "ca.key"),
               apiserver=files["apiserver"], admin=files["admin"],
               controllers=files["controller-manager"])


def issue_client_cert(pki: Pki, common_name: str, groups: Sequence[str] = (),
                      days: int = LEAF_DAYS, *, now: dt.datetime | None = None
                      ) -> tuple[bytes, bytes]:
    """Sign a client certificate for user `common_name` in `groups`; returns PEM (cert, key)."""
    if not common_name:
        raise PkiError("a client certificate needs a non-empty common name (the user name)")
    spec = _LeafSpec(common_name, tuple(groups), days=days)
    return _issue(spec, pki.ca_cert, pki.ca_key, now or _utcnow())


def serving_cert_for(pki: Pki, names: Sequence[str], *, common_name: str | None = None,
                     days: int = LEAF_DAYS, now: dt.datetime | None = None
                     ) -> tuple[bytes, bytes]:
    """Sign a serving certificate for DNS names and IP addresses (a kubelet's, for instance)."""
    if not names:
        raise PkiError("a serving certificate needs at least one DNS name or IP address")
    spec = _LeafSpec(common_name or names[0], client=False, server_names=tuple(names), days=days)
    return _issue(spec, pki.ca_cert, pki.ca_key, now or _utcnow())


def node_cert(pki: Pki, node: str, *, now: dt.datetime | None = None) -> CertFiles:
    """The kubelet client certificate of `node` (CN=system:node:<node>, O=system:nodes).

    Written once under the PKI directory as `kubelet-<node>.crt/.key` and reused after.
    """
    if not _NODE_NAME.match(node) or len(node) > 253:
        raise PkiError(f"invalid node name {node!r}: must be a lowercase DNS-1123 subdomain")
    spec = _LeafSpec(NODE_USER_PREFIX + node, (NODES_GROUP,))
    with _locked(pki.directory):
        return _ensure_leaf(pki.directory, f"kubelet-{node}", spec, pki.ca_cert, pki.ca_key,
                            now or _utcnow())


def load_certificate(pem: bytes, *, source: str = "certificate") -> x509.Certificate:
    """Parse one PEM certificate, raising PkiError that names `source` when it is garbage."""
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as e:
        raise PkiError(f"{source} is not a valid PEM certificate: {e}") from e


def load_private_key(pem: bytes, *, source: str = "private key") -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise PkiError(f"{source} is not a valid unencrypted PEM private key: {e}") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{source} is not an EC private key")
    return key


# --- the CA -------------------------------------------------------------------------------

def _ensure_ca(directory: Path, now: dt.datetime) -> tuple[x509.Certificate, PrivateKey]:
    cert_path, key_path = directory / "ca.crt", directory / "ca.key"
    if not cert_path.exists() and not key_path.exists():
        cert, key = _new_ca(now)
        _write(key_path, _key_pem(key), 0o600)
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return cert, key
    # A broken or expired CA is never replaced silently: every kubeconfig trusts it.
    if not cert_path.exists() or not key_path.exists():
        missing = cert_path if not cert_path.exists() else key_path
        raise PkiError(f"{missing} is missing while its pair exists; restore it or remove "
                       f"{directory} to create a new cluster CA")
    cert = load_certificate(cert_path.read_bytes(), source=str(cert_path))
    key = load_private_key(key_path.read_bytes(), source=str(key_path))
    if cert.public_key() != key.public_key():
        raise PkiError(f"{key_path} does not belong to {cert_path}")
    if cert.not_valid_after_utc <= now:
        raise PkiError(f"{cert_path} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} "
                       f"UTC; remove {directory} to create a new cluster CA")
    return cert, key


def _new_ca(now: dt.datetime) -> tuple[x509.Certificate, PrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
    )
    return builder.sign(key, hashes.SHA256()), key


# --- leaves -------------------------------------------------------------------------------

def _ensure_leaf(directory: Path, stem: str, spec: _LeafSpec, ca_cert: x509.Certificate,
                 ca_key: PrivateKey, now: dt.datetime) -> CertFiles:
    files = CertFiles(directory / f"{stem}.crt", directory / f"{stem}.key")
    if not _leaf_is_current(files, spec, ca_cert, now):
        cert_pem, key_pem = _issue(spec, ca_cert, ca_key, now)
        _write(files.key, key_pem, 0o600)
        _write(files.cert, cert_pem, 0o644)
    return files


def _leaf_is_current(files: CertFiles, spec: _LeafSpec, ca_cert: x509.Certificate,
                     now: dt.datetime) -> bool:
    """True when the existing pair can be kept; anything doubtful means reissue."""
    try:
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
        cert.verify_directly_issued_by(ca_cert)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    return (cert.public_key() == key.public_key()
            and cert.not_valid_after_utc - RENEW_BEFORE > now
            and _subject_of(cert) == (spec.common_name, tuple(sorted(spec.groups)))
            and set(_normalise_names(spec.server_names)) <= set(_san_names(cert)))


def _issue(spec: _LeafSpec, ca_cert: x509.Certificate, ca_key: PrivateKey,
           now: dt.datetime) -> tuple[bytes, bytes]:
    if spec.days <= 0:
        raise PkiError(f"certificate lifetime must be positive, got {spec.days} days")
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_subject(spec.common_name, spec.groups))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(min(now + dt.timedelta(days=spec.days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([_usage(spec)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_id(ca_cert), critical=False)
    )
    if spec.server_names:
        builder = builder.add_extension(_san(spec.server_names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _usage(spec: _LeafSpec) -> x509.ObjectIdentifier:
    return ExtendedKeyUsageOID.CLIENT_AUTH if spec.client else ExtendedKeyUsageOID.SERVER_AUTH


def _subject(common_name: str, groups: Sequence[str]) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in sorted(groups)]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _subject_of(cert: x509.Certificate) -> tuple[str, tuple[str, ...]]:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    cn = str(cns[0].value) if cns else ""
    return cn, tuple(sorted(str(o.value) for o in orgs))


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False,
                         decipher_only=False)


def _authority_key_id(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    general: list[x509.GeneralName] = []
    for name in _normalise_names(names):
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(general)


def _san_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return [n.lower() for n in san.get_values_for_type(x509.DNSName)] + ips


def _normalise_names(names: Sequence[str]) -> list[str]:
    """Lowercase DNS names, canonical IPs, no duplicates, order kept."""
    out: list[str] = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        try:
            name = str(ipaddress.ip_address(name))
        except ValueError:
            name = name.lower()
        if name not in out:
            out.append(name)
    return out


def _serving_names(hostnames: Sequence[str]) -> tuple[str, ...]:
    return tuple(_normalise_names([*DEFAULT_SERVING_NAMES, *hostnames]))


# --- files --------------------------------------------------------------------------------

def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically with the final mode from the start, so a key is never world-readable."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed or (for 0644) not mattered
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise PKI changes between processes (apiserver start vs `storagelab kubeconfig`)."""
    fd = os.open(directory / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
