"""Who is calling: users from client certificates and from bearer tokens, as Kubernetes does.

A client certificate names the user in its CN and the groups in its O fields; a bearer token
is looked up in a file in kube-apiserver's `--token-auth-file` CSV format
(`token,user,uid,"group1,group2"`). Every authenticated user also gets the group
`system:authenticated`; a request with no credentials is `system:anonymous` in
`system:unauthenticated`. Failures are exceptions the server turns into 401 responses.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

AUTHENTICATED_GROUP = "system:authenticated"
UNAUTHENTICATED_GROUP = "system:unauthenticated"
ANONYMOUS_USER = "system:anonymous"


class AuthenticationError(Exception):
    """The request carried credentials that do not identify anyone (HTTP 401)."""


class InvalidToken(AuthenticationError):
    """A bearer token that no user has (never issued, or the user was removed)."""


class CertificateError(AuthenticationError):
    """A client certificate that cannot be used to identify its holder."""


class MalformedCertificate(CertificateError):
    """Not a parseable certificate, or one without a user name (CN)."""


class CertificateExpired(CertificateError):
    pass


class CertificateNotYetValid(CertificateError):
    pass


class UntrustedCertificate(CertificateError):
    """Not signed by the cluster CA, or not meant for client authentication."""


class TokenFileError(ValueError):
    """The token file is malformed; the message names the file and line."""


@dataclass(frozen=True)
class UserInfo:
    """Kubernetes' user.Info: name, uid, groups and extra attributes."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)

    @property
    def is_anonymous(self) -> bool:
        return self.name == ANONYMOUS_USER


def anonymous_user() -> UserInfo:
    return UserInfo(ANONYMOUS_USER, (UNAUTHENTICATED_GROUP,))


def with_authenticated_group(user: UserInfo) -> UserInfo:
    """Add `system:authenticated` unless the user already has it or is unauthenticated."""
    if AUTHENTICATED_GROUP in user.groups or UNAUTHENTICATED_GROUP in user.groups:
        return user
    return replace(user, groups=(*user.groups, AUTHENTICATED_GROUP))


# --- bearer tokens ------------------------------------------------------------------------

def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None when there is none."""
    parts = (authorization or "").strip().split(" ")
    if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
        return None
    return parts[1]


@dataclass(frozen=True)
class TokenFile:
    """The users of a `--token-auth-file`, keyed by a digest of their token."""

    path: Path
    users: Mapping[str, UserInfo] = field(hash=False)

    @classmethod
    def load(cls, path: Path) -> TokenFile:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise TokenFileError(f"token file '{path}' cannot be read: {e}") from e
        return cls(path=path, users=_parse_tokens(path, text))

    def lookup(self, token: str) -> UserInfo | None:
        return self.users.get(_digest(token))

    def authenticate(self, token: str) -> UserInfo:
        user = self.lookup(token)
        if user is None:
            raise InvalidToken("invalid bearer token")
        return with_authenticated_group(user)


class ReloadingTokenFile:
    """A TokenFile re-read whenever the file changes, so removing a line revokes that token.

    A malformed edit keeps the last good contents (the server keeps running) and is kept in
    `last_error` for the server to log.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = _stamp(path)
        self._tokens = TokenFile.load(path)
        self.last_error: TokenFileError | None = None

    def authenticate(self, token: str) -> UserInfo:
        self._reload_if_changed()
        return self._tokens.authenticate(token)

    def _reload_if_changed(self) -> None:
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self._tokens = TokenFile.load(self.path)
            self.last_error = None
        except TokenFileError as e:
            self.last_error = e


def _stamp(path: Path) -> tuple[int, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0, 0)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _parse_tokens(path: Path, text: str) -> dict[str, UserInfo]:
    users: dict[str, UserInfo] = {}
    reader = csv.reader(io.StringIO(text), strict=True)
    try:
        for record in reader:
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # blank lines, as Go's csv reader skips them
            token, user = _parse_record(path, reader.line_num, record)
            if token:
                users[_digest(token)] = user
    except csv.Error as e:
        raise TokenFileError(f"token file '{path}' line {reader.line_num}: {e}") from e
    return users


def _parse_record(path: Path, line: int, record: list[str]) -> tuple[str, UserInfo]:
    if len(record) < 3:
        raise TokenFileError(
            f"token file '{path}' line {line}: must have at least 3 columns "
            f"(token, user name, user uid), found {len(record)}")
    token, name, uid = record[0], record[1], record[2]
    if token and not name:
        raise TokenFileError(f"token file '{path}' line {line}: the user name is empty")
    groups = tuple(g for g in record[3].split(",") if g) if len(record) > 3 else ()
    return token, UserInfo(name=name, uid=uid, groups=groups)


def _digest(token: str) -> str:
    # Keyed by digest so lookups do not compare secret strings byte by byte.
    return hashlib.sha256(token.encode()).hexdigest()


# --- client certificates ------------------------------------------------------------------

PeerCert = x509.Certificate | bytes | Mapping[str, Any]


def user_from_certificate(cert: PeerCert, now: dt.datetime | None = None, *,
                          ca: x509.Certificate | None = None) -> UserInfo:
    """The user a client certificate names: CN is the user, each O a group.

    `cert` is a parsed certificate, PEM or DER bytes (`getpeercert(binary_form=True)`), or
    the dict of `ssl.SSLSocket.getpeercert()` (already verified by the TLS layer). With `ca`,
    the chain and the clientAuth usage are verified as well.
    """
    now = now or dt.datetime.now(dt.UTC)
    if isinstance(cert, Mapping):
        return _user_from_peercert_dict(cert, now)
    parsed = cert if isinstance(cert, x509.Certificate) else _parse_certificate(cert)
    _check_validity(parsed.not_valid_before_utc, parsed.not_valid_after_utc, now)
    if ca is not None:
        _verify_chain(parsed, ca, now)
    return _user(_names(parsed, NameOID.COMMON_NAME), _names(parsed, NameOID.ORGANIZATION_NAME))


def _parse_certificate(data: bytes) -> x509.Certificate:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as e:
        raise MalformedCertificate(f"the client certificate cannot be parsed: {e}") from e


def _names(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(oid)]


def _verify_chain(cert: x509.Certificate, ca: x509.Certificate, now: dt.datetime) -> None:
    """Signed directly by the cluster CA (which is itself valid) and usable for clientAuth.

    Checked by hand: the web-PKI verifier in `cryptography` demands a subjectAltName, which
    Kubernetes client certificates do not carry.
    """
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as e:
        raise UntrustedCertificate("the client certificate is not trusted by the cluster CA: "
                                   f"it was not signed by it ({e or type(e).__name__})") from e
    if not ca.not_valid_before_utc <= now <= ca.not_valid_after_utc:
        raise UntrustedCertificate("the cluster CA certificate is not valid at this time")
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return  # no EKU means any usage, as Go's verifier treats it
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usages and \
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in usages:
        raise UntrustedCertificate("the certificate is not meant for client authentication "
                                   "(its extended key usage lacks clientAuth)")


def _user_from_peercert_dict(peer: Mapping[str, Any], now: dt.datetime) -> UserInfo:
    if not peer or "subject" not in peer:
        raise MalformedCertificate("no client certificate was presented, or it was not verified")
    try:
        not_before = _peercert_time(peer["notBefore"])
        not_after = _peercert_time(peer["notAfter"])
        pairs = [pair for rdn in peer["subject"] for pair in rdn]
    except (KeyError, TypeError, ValueError) as e:
        raise MalformedCertificate(f"the client certificate cannot be read: {e}") from e
    _check_validity(not_before, not_after, now)
    common = [str(v) for k, v in pairs if k == "commonName"]
    orgs = [str(v) for k, v in pairs if k == "organizationName"]
    return _user(common, orgs)


def _peercert_time(value: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(value), dt.UTC)


def _check_validity(not_before: dt.datetime, not_after: dt.datetime, now: dt.datetime) -> None:
    if now > not_after:
        raise CertificateExpired(
            f"the client certificate has expired: current time {_iso(now)} is after "
            f"{_iso(not_after)}")
    if now < not_before:
        raise CertificateNotYetValid(
            f"the client certificate is not yet valid: current time {_iso(now)} is before "
            f"{_iso(not_before)}")


def _user(common_names: list[str], organizations: list[str]) -> UserInfo:
    if not common_names or not common_names[0]:
        raise MalformedCertificate("the client certificate has no common name (CN) to use "
                                   "as the user name")
    return with_authenticated_group(UserInfo(common_names[0], tuple(organizations)))


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
