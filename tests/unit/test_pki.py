"""The cluster PKI: what ensure_pki makes, what it keeps, what it reissues, what it refuses."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from apiserver import kubeconfig, pki

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> pki.Pki:
    return pki.ensure_pki(tmp_path_factory.mktemp("pki"), hostnames=["cp.example", "10.1.2.3"],
                          now=NOW)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _subject(cert: x509.Certificate) -> tuple[str, list[str]]:
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    orgs = [str(o.value) for o in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return str(cn), sorted(orgs)


def _usages(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_files_and_modes(cluster: pki.Pki) -> None:
    d = cluster.directory
    for stem in ("ca", "apiserver", "admin", "controller-manager"):
        assert stat.S_IMODE((d / f"{stem}.key").stat().st_mode) == 0o600
        assert stat.S_IMODE((d / f"{stem}.crt").stat().st_mode) == 0o644


@pytest.mark.parametrize("which,cn,groups,usage", [
    ("admin", "kubernetes-admin", ["system:masters"], ExtendedKeyUsageOID.CLIENT_AUTH),
    ("controllers", "system:kube-controller-manager", [], ExtendedKeyUsageOID.CLIENT_AUTH),
    ("apiserver", "kube-apiserver", [], ExtendedKeyUsageOID.SERVER_AUTH),
])
def test_leaf_subjects_and_usages(cluster: pki.Pki, which: str, cn: str, groups: list[str],
                                  usage: x509.ObjectIdentifier) -> None:
    cert = _cert(getattr(cluster, which).cert)
    assert _subject(cert) == (cn, groups)
    assert _usages(cert) == [usage]
    cert.verify_directly_issued_by(cluster.ca_cert)


def test_ca_is_a_ca(cluster: pki.Pki) -> None:
    constraints = cluster.ca_cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.value.ca and constraints.critical
    assert cluster.ca_cert.not_valid_after_utc > NOW + dt.timedelta(days=3000)


def test_serving_sans(cluster: pki.Pki) -> None:
    san = _cert(cluster.apiserver.cert).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    dns = san.get_values_for_type(x509.DNSName)
    ips = san.get_values_for_type(x509.IPAddress)
    assert {"localhost", "kubernetes.default.svc", "cp.example"} <= set(dns)
    assert {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.1.2.3")} <= set(ips)
    assert "127.0.0.1" not in dns  # IPs must be IP SANs or Go clients reject them


def test_second_start_keeps_everything(tmp_path: Path) -> None:
    first = pki.ensure_pki(tmp_path, hostnames=["a.example"], now=NOW)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    pki.ensure_pki(tmp_path, hostnames=["a.example"], now=NOW + dt.timedelta(days=1))
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert before == after
    assert first.ca_pem == (tmp_path / "ca.crt").read_bytes()


def test_new_hostname_reissues_only_the_serving_cert(tmp_path: Path) -> None:
    pki.ensure_pki(tmp_path, now=NOW)
    admin, ca = (tmp_path / "admin.crt").read_bytes(), (tmp_path / "ca.crt").read_bytes()
    serving = (tmp_path / "apiserver.crt").read_bytes()
    pki.ensure_pki(tmp_path, hostnames=["new.example"], now=NOW)
    assert (tmp_path / "apiserver.crt").read_bytes() != serving
    assert (tmp_path / "admin.crt").read_bytes() == admin
    assert (tmp_path / "ca.crt").read_bytes() == ca


def test_leaf_close_to_expiry_is_renewed(tmp_path: Path) -> None:
    pki.ensure_pki(tmp_path, now=NOW)
    old = _cert(tmp_path / "admin.crt")
    pki.ensure_pki(tmp_path, now=NOW + dt.timedelta(days=350))
    new = _cert(tmp_path / "admin.crt")
    assert new.serial_number != old.serial_number
    assert new.not_valid_after_utc > old.not_valid_after_utc


def test_garbage_leaf_is_reissued(tmp_path: Path) -> None:
    pki.ensure_pki(tmp_path, now=NOW)
    (tmp_path / "admin.crt").write_bytes(b"not a certificate")
    pki.ensure_pki(tmp_path, now=NOW)
    assert _subject(_cert(tmp_path / "admin.crt"))[0] == "kubernetes-admin"


def test_leaf_from_another_ca_is_reissued(tmp_path: Path) -> None:
    mine, other = tmp_path / "mine", tmp_path / "other"
    cluster = pki.ensure_pki(mine, now=NOW)
    pki.ensure_pki(other, now=NOW)
    for suffix in ("crt", "key"):
        shutil.copy(other / f"admin.{suffix}", mine / f"admin.{suffix}")
    pki.ensure_pki(mine, now=NOW)
    _cert(mine / "admin.crt").verify_directly_issued_by(cluster.ca_cert)


def test_mismatched_leaf_key_is_reissued(tmp_path: Path) -> None:
    pki.ensure_pki(tmp_path, now=NOW)
    shutil.copy(tmp_path / "controller-manager.key", tmp_path / "admin.key")
    pki.ensure_pki(tmp_path, now=NOW)
    cert = _cert(tmp_path / "admin.crt")
    key = pki.load_private_key((tmp_path / "admin.key").read_bytes())
    assert cert.public_key() == key.public_key()


@pytest.mark.parametrize("damage,message", [
    (lambda d: (d / "ca.crt").write_bytes(b"garbage"), "ca.crt is not a valid PEM certificate"),
    (lambda d: (d / "ca.key").write_bytes(b"garbage"), "ca.key is not a valid unencrypted PEM"),
    (lambda d: (d / "ca.key").unlink(), "ca.key is missing"),
    (lambda d: shutil.copy(d / "admin.key", d / "ca.key"), "ca.key does not belong to"),
])
def test_broken_ca_is_refused_not_replaced(tmp_path: Path, damage, message: str) -> None:
    pki.ensure_pki(tmp_path, now=NOW)
    damage(tmp_path)
    with pytest.raises(pki.PkiError, match=message):
        pki.ensure_pki(tmp_path, now=NOW)


def test_expired_ca_is_refused(tmp_path: Path) -> None:
    pki.ensure_pki(tmp_path, now=NOW)
    with pytest.raises(pki.PkiError, match="ca.crt expired on"):
        pki.ensure_pki(tmp_path, now=NOW + dt.timedelta(days=3651))


def test_node_cert(cluster: pki.Pki) -> None:
    files = pki.node_cert(cluster, "node-1", now=NOW)
    assert files.cert.name == "kubelet-node-1.crt"
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    assert _subject(_cert(files.cert)) == ("system:node:node-1", ["system:nodes"])
    again = pki.node_cert(cluster, "node-1", now=NOW)
    assert again.cert_pem() == files.cert_pem()


@pytest.mark.parametrize("bad", ["../etc", "Node1", "", "a/b", "-x"])
def test_node_cert_rejects_bad_names(cluster: pki.Pki, bad: str) -> None:
    with pytest.raises(pki.PkiError, match="invalid node name"):
        pki.node_cert(cluster, bad)


def test_issue_client_cert(cluster: pki.Pki) -> None:
    cert_pem, key_pem = pki.issue_client_cert(cluster, "alice", ["dev", "ops"], 7, now=NOW)
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert _subject(cert) == ("alice", ["dev", "ops"])
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=7)
    assert b"PRIVATE KEY" in key_pem
    with pytest.raises(pki.PkiError, match="non-empty common name"):
        pki.issue_client_cert(cluster, "", [])
    with pytest.raises(pki.PkiError, match="lifetime must be positive"):
        pki.issue_client_cert(cluster, "bob", [], 0)


def test_serving_cert_for_kubelet(cluster: pki.Pki) -> None:
    cert_pem, _ = pki.serving_cert_for(cluster, ["node-1", "192.168.5.5"], now=NOW)
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["node-1"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.168.5.5")]
    assert _usages(cert) == [ExtendedKeyUsageOID.SERVER_AUTH]


# --- kubeconfig ---------------------------------------------------------------------------

def test_build_kubeconfig_shape(cluster: pki.Pki) -> None:
    config = kubeconfig.build_kubeconfig("https://127.0.0.1:6443", cluster.ca_pem, b"CERT",
                                         b"KEY", user="alice")
    assert config["current-context"] == "alice@storagelab"
    assert config["contexts"] == [{"name": "alice@storagelab",
                                   "context": {"cluster": "storagelab", "user": "alice"}}]
    cluster_entry = config["clusters"][0]["cluster"]
    assert cluster_entry["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster_entry["certificate-authority-data"]) == cluster.ca_pem
    assert config["users"][0]["user"] == {"client-certificate-data": "Q0VSVA==",
                                          "client-key-data": "S0VZ"}


def test_build_kubeconfig_errors(cluster: pki.Pki) -> None:
    with pytest.raises(kubeconfig.KubeconfigError, match="https"):
        kubeconfig.build_kubeconfig("http://x", cluster.ca_pem, b"c", b"k")
    with pytest.raises(kubeconfig.KubeconfigError, match="both"):
        kubeconfig.build_kubeconfig("https://x", cluster.ca_pem, b"c", None)
    token = kubeconfig.build_kubeconfig("https://x", cluster.ca_pem, token="t0k")
    assert token["users"][0]["user"] == {"token": "t0k"}


def test_user_kubeconfig_written_0600_and_read_by_kubectl(cluster: pki.Pki,
                                                          tmp_path: Path) -> None:
    config = kubeconfig.user_kubeconfig(cluster, "https://127.0.0.1:6443", "carol", ["qa"])
    path = tmp_path / "sub" / "kubeconfig"
    kubeconfig.write_kubeconfig(path, config)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert yaml.safe_load(path.read_text()) == config
    cert = x509.load_pem_x509_certificate(
        base64.b64decode(config["users"][0]["user"]["client-certificate-data"]))
    assert _subject(cert) == ("carol", ["qa"])
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    shown = subprocess.run([kubectl, "config", "view", "--raw", "-o", "json",
                            "--kubeconfig", str(path)], check=True, capture_output=True)
    assert json.loads(shown.stdout)["current-context"] == "carol@storagelab"


def test_admin_kubeconfig_loads_in_the_official_client(cluster: pki.Pki,
                                                       tmp_path: Path) -> None:
    k8s_config = pytest.importorskip("kubernetes.config")
    client = pytest.importorskip("kubernetes.client")
    path = tmp_path / "admin.conf"
    kubeconfig.write_kubeconfig(path, kubeconfig.admin_kubeconfig(cluster, "https://h:6443"))
    configuration = client.Configuration()
    k8s_config.load_kube_config(config_file=str(path), client_configuration=configuration)
    assert configuration.host == "https://h:6443"
    assert Path(configuration.cert_file).read_bytes() == cluster.admin.cert_pem()
