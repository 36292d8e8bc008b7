"""Authentication: token files, bearer headers, client certificates (parsed and over real TLS)."""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from apiserver import authn, pki
from apiserver.authn import UserInfo

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
AUTH = "system:authenticated"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> pki.Pki:
    return pki.ensure_pki(tmp_path_factory.mktemp("pki"), now=NOW)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tokens.csv"
    path.write_text(text)
    return path


# --- users and groups ---------------------------------------------------------------------

def test_anonymous_user() -> None:
    user = authn.anonymous_user()
    assert (user.name, user.groups) == ("system:anonymous", ("system:unauthenticated",))
    assert user.is_anonymous


@pytest.mark.parametrize("groups,expected", [
    ((), (AUTH,)),
    (("dev",), ("dev", AUTH)),
    ((AUTH, "dev"), (AUTH, "dev")),
    (("system:unauthenticated",), ("system:unauthenticated",)),
])
def test_with_authenticated_group(groups: tuple[str, ...], expected: tuple[str, ...]) -> None:
    assert authn.with_authenticated_group(UserInfo("u", groups)).groups == expected


def test_user_info_is_hashable_and_frozen() -> None:
    user = UserInfo("u", ("g",), "1", {"k": ("v",)})
    assert hash(user) == hash(UserInfo("u", ("g",), "1", {}))
    with pytest.raises(AttributeError):
        user.name = "x"  # type: ignore[misc]


# --- bearer tokens ------------------------------------------------------------------------

@pytest.mark.parametrize("header,token", [
    ("Bearer abc", "abc"), ("bearer abc", "abc"), ("  Bearer abc  ", "abc"),
    ("Bearer", None), ("Bearer ", None), ("Basic abc", None), ("", None), (None, None),
    ("Bearer  abc", None),  # an empty token between two spaces, as kube-apiserver sees it
])
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert authn.bearer_token(header) == token


def test_token_file(tmp_path: Path) -> None:
    path = _write(tmp_path, 'tok1,alice,1001,"dev,ops"\n\ntok2,bob,1002\n,ghost,1003\n'
                            'tok3,carol,1004,\n')
    tokens = authn.TokenFile.load(path)
    assert tokens.authenticate("tok1") == UserInfo("alice", ("dev", "ops", AUTH), "1001")
    assert tokens.authenticate("tok2") == UserInfo("bob", (AUTH,), "1002")
    assert tokens.authenticate("tok3").groups == (AUTH,)
    assert tokens.lookup("") is None  # an empty token in the file is skipped, not a login
    with pytest.raises(authn.InvalidToken, match="invalid bearer token"):
        tokens.authenticate("nope")


def test_duplicate_token_last_wins(tmp_path: Path) -> None:
    tokens = authn.TokenFile.load(_write(tmp_path, "t,first,1\nt,second,2\n"))
    assert tokens.authenticate("t").name == "second"


@pytest.mark.parametrize("text,message", [
    ("tok,alice\n", "line 1: must have at least 3 columns (token, user name, user uid), found 2"),
    ("a,b,c\ntok\n", "line 2: must have at least 3 columns"),
    ('a,b,c\nt,"unclosed,1\n', "line 2: unexpected end of data"),
    ("tok,,1\n", "line 1: the user name is empty"),
])
def test_malformed_token_file_names_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(authn.TokenFileError) as caught:
        authn.TokenFile.load(path)
    assert str(path) in str(caught.value) and message in str(caught.value)


def test_missing_token_file(tmp_path: Path) -> None:
    with pytest.raises(authn.TokenFileError, match="cannot be read"):
        authn.TokenFile.load(tmp_path / "absent.csv")


def test_removed_user_loses_access(tmp_path: Path) -> None:
    path = _write(tmp_path, "tok1,alice,1\ntok2,bob,2\n")
    tokens = authn.ReloadingTokenFile(path)
    assert tokens.authenticate("tok2").name == "bob"
    path.write_text("tok1,alice,1\n")
    os.utime(path, ns=(1, 1))  # a distinct mtime even on coarse-grained filesystems
    with pytest.raises(authn.InvalidToken):
        tokens.authenticate("tok2")
    assert tokens.authenticate("tok1").name == "alice"


def test_malformed_edit_keeps_last_good_tokens(tmp_path: Path) -> None:
    path = _write(tmp_path, "tok1,alice,1\n")
    tokens = authn.ReloadingTokenFile(path)
    path.write_text("tok1\n")
    os.utime(path, ns=(2, 2))
    assert tokens.authenticate("tok1").name == "alice"
    assert tokens.last_error is not None and "line 1" in str(tokens.last_error)


# --- client certificates ------------------------------------------------------------------

def test_user_from_certificate_forms(cluster: pki.Pki) -> None:
    cert_pem, _ = pki.issue_client_cert(cluster, "alice", ["dev", "ops"], now=NOW)
    cert = x509.load_pem_x509_certificate(cert_pem)
    der = cert.public_bytes(serialization.Encoding.DER)
    expected = UserInfo("alice", ("dev", "ops", AUTH))
    for form in (cert, cert_pem, der):
        assert authn.user_from_certificate(form, NOW, ca=cluster.ca_cert) == expected


def test_node_identity_from_certificate(cluster: pki.Pki) -> None:
    files = pki.node_cert(cluster, "n1", now=NOW)
    user = authn.user_from_certificate(files.cert_pem(), NOW, ca=cluster.ca_cert)
    assert (user.name, user.groups) == ("system:node:n1", ("system:nodes", AUTH))


@pytest.mark.parametrize("garbage", [b"", b"hello", (b"-----BEGIN CERTIFICATE-----\nAAAA\n"
                                                   b"-----END CERTIFICATE-----\n"), b"\x30\x03"])
def test_garbage_certificate(garbage: bytes) -> None:
    with pytest.raises(authn.MalformedCertificate, match="cannot be parsed"):
        authn.user_from_certificate(garbage, NOW)


def test_expired_and_not_yet_valid(cluster: pki.Pki) -> None:
    cert_pem, _ = pki.issue_client_cert(cluster, "alice", [], 1, now=NOW)
    with pytest.raises(authn.CertificateExpired,
                       match="has expired: current time 2030-01-03T00:00:00Z is after "
                             "2030-01-02T00:00:00Z"):
        authn.user_from_certificate(cert_pem, NOW + dt.timedelta(days=2))
    with pytest.raises(authn.CertificateNotYetValid, match="not yet valid"):
        authn.user_from_certificate(cert_pem, NOW - dt.timedelta(days=1))


def test_certificate_of_another_ca_is_untrusted(cluster: pki.Pki, tmp_path: Path) -> None:
    other = pki.ensure_pki(tmp_path, now=NOW)
    cert_pem, _ = pki.issue_client_cert(other, "mallory", ["system:masters"], now=NOW)
    assert authn.user_from_certificate(cert_pem, NOW).name == "mallory"  # no CA: not checked
    with pytest.raises(authn.UntrustedCertificate, match="not trusted by the cluster CA"):
        authn.user_from_certificate(cert_pem, NOW, ca=cluster.ca_cert)


def test_expired_ca_is_untrusted(cluster: pki.Pki) -> None:
    # A leaf never outlives its CA (pki caps it), so check the chain step on its own.
    own, _ = pki.issue_client_cert(cluster, "alice", [], now=NOW)
    with pytest.raises(authn.UntrustedCertificate, match="CA certificate is not valid"):
        authn._verify_chain(x509.load_pem_x509_certificate(own), cluster.ca_cert,
                            NOW + dt.timedelta(days=4000))


def test_serving_certificate_is_not_a_client_certificate(cluster: pki.Pki) -> None:
    with pytest.raises(authn.UntrustedCertificate, match="lacks clientAuth"):
        authn.user_from_certificate(cluster.apiserver.cert_pem(), NOW, ca=cluster.ca_cert)


def test_certificate_without_common_name(cluster: pki.Pki) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dev")]))
            .issuer_name(cluster.ca_cert.subject).public_key(key.public_key())
            .serial_number(1).not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=1))
            .sign(cluster.ca_key, hashes.SHA256()))
    with pytest.raises(authn.MalformedCertificate, match="no common name"):
        authn.user_from_certificate(cert, NOW)
    peer = {"subject": ((("organizationName", "dev"),),),
            "notBefore": "Jan  1 00:00:00 2029 GMT", "notAfter": "Jan  1 00:00:00 2031 GMT"}
    with pytest.raises(authn.MalformedCertificate, match="no common name"):
        authn.user_from_certificate(peer, NOW)


@pytest.mark.parametrize("peer,error", [
    ({}, authn.MalformedCertificate),
    ({"subject": ((("commonName", "a"),),), "notBefore": "garbage",
      "notAfter": "Jan  1 00:00:00 2031 GMT"}, authn.MalformedCertificate),
    ({"subject": ((("commonName", "a"),),), "notBefore": "Jan  1 00:00:00 2020 GMT",
      "notAfter": "Jan  1 00:00:00 2021 GMT"}, authn.CertificateExpired),
])
def test_peercert_dict_errors(peer: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        authn.user_from_certificate(peer, NOW)


def _tls_exchange(cluster: pki.Pki, cert_pem: bytes, key_pem: bytes,
                  tmp_path: Path) -> dict[str, Any]:
    """A real TLS handshake on loopback: our serving cert, our CA, a client cert."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cluster.apiserver.cert, cluster.apiserver.key)
    server_ctx.load_verify_locations(cadata=cluster.ca_pem.decode())
    server_ctx.verify_mode = ssl.CERT_OPTIONAL
    (tmp_path / "c.crt").write_bytes(cert_pem)
    (tmp_path / "c.key").write_bytes(key_pem)
    client_ctx = ssl.create_default_context(cadata=cluster.ca_pem.decode())
    client_ctx.load_cert_chain(tmp_path / "c.crt", tmp_path / "c.key")
    listener = socket.create_server(("127.0.0.1", 0))
    result: dict[str, Any] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            result["peer"] = tls.getpeercert()
            tls.sendall(b"ok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with (socket.create_connection(listener.getsockname(), timeout=10) as raw,
          client_ctx.wrap_socket(raw, server_hostname="localhost") as tls):
        assert tls.recv(2) == b"ok"
    thread.join(timeout=10)
    listener.close()
    return result["peer"]


def test_real_tls_handshake_identifies_the_admin(tmp_path: Path) -> None:
    cluster = pki.ensure_pki(tmp_path / "pki")  # valid now: OpenSSL checks the real clock
    peer = _tls_exchange(cluster, cluster.admin.cert_pem(), cluster.admin.key_pem(), tmp_path)
    user = authn.user_from_certificate(peer)
    assert (user.name, user.groups) == ("kubernetes-admin", ("system:masters", AUTH))


def test_real_tls_handshake_with_a_user_certificate(tmp_path: Path) -> None:
    cluster = pki.ensure_pki(tmp_path / "pki")
    cert_pem, key_pem = pki.issue_client_cert(cluster, "dana", ["qa"])
    user = authn.user_from_certificate(_tls_exchange(cluster, cert_pem, key_pem, tmp_path))
    assert (user.name, user.groups) == ("dana", ("qa", AUTH))
