"""The `storagelab kubeconfig` and `storagelab secrets` commands, run as a user runs them.

Kubeconfigs are checked by what real kubectl does with them (full TLS verification, the
user named by the issued certificate); the secrets commands by their output, exit status
and the mistakes they must refuse with a clear message.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from storagelab import cli
from tests.conftest import REPO, ApiServer, create_namespace, kubectl_available, require_real
from tests.support import running_apiserver


def storagelab(*args: str, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "storagelab.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, **(env or {})})


def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args],
                          capture_output=True, text=True, timeout=60, check=False)


def subject(cert_b64: str) -> tuple[str, list[str]]:
    cert = x509.load_pem_x509_certificate(base64.b64decode(cert_b64))
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    orgs = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return str(cn), sorted(orgs)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("cli")) as server:
        yield server


# --- storagelab kubeconfig ----------------------------------------------------------------

def test_admin_kubeconfig_is_shaped_like_a_real_clusters(cluster: ApiServer,
                                                         tmp_path: Path) -> None:
    result = storagelab("kubeconfig", "--data-dir", str(cluster.data_dir))
    assert result.returncode == 0, result.stderr
    doc: dict[str, Any] = yaml.safe_load(result.stdout)
    assert (doc["apiVersion"], doc["kind"]) == ("v1", "Config")
    context = next(c for c in doc["contexts"] if c["name"] == doc["current-context"])
    cluster_entry = next(c for c in doc["clusters"] if c["name"] == context["context"]["cluster"])
    user = next(u for u in doc["users"] if u["name"] == context["context"]["user"])
    assert cluster_entry["cluster"] == {
        "server": cluster.url,
        "certificate-authority-data": base64.b64encode(
            (cluster.pki / "ca.crt").read_bytes()).decode()}  # no insecure-skip-tls-verify
    assert set(user["user"]) == {"client-certificate-data", "client-key-data"}
    assert subject(user["user"]["client-certificate-data"]) == (
        "kubernetes-admin", ["system:masters"])
    assert yaml.safe_load(cluster.kubeconfig.read_text())["clusters"] == doc["clusters"]


def test_kubectl_verifies_the_server_by_ip_and_by_name(cluster: ApiServer,
                                                       tmp_path: Path) -> None:
    require_real(kubectl_available(), "kubectl is not installed")
    for server_url in (cluster.url, cluster.url.replace("127.0.0.1", "localhost")):
        result = storagelab("kubeconfig", "--data-dir", str(cluster.data_dir),
                            "--server", server_url)
        path = tmp_path / "admin.kubeconfig"
        path.write_text(result.stdout)
        listed = kubectl(path, "get", "namespaces", "-o", "name")
        assert listed.returncode == 0, listed.stderr
        assert "namespace/kube-system" in listed.stdout.split()
    # A name the serving certificate does not carry must fail verification.
    refused = kubectl(path, "--tls-server-name", "not-the-apiserver.example", "get",
                      "namespaces")
    assert refused.returncode != 0
    assert "x509: certificate is valid for" in refused.stderr


def test_kubeconfig_for_a_new_user(cluster: ApiServer, tmp_path: Path) -> None:
    require_real(kubectl_available(), "kubectl is not installed")
    result = storagelab("kubeconfig", "--data-dir", str(cluster.data_dir), "--user", "frank",
                        "--group", "devs", "--group", "qa")
    assert result.returncode == 0, result.stderr
    doc = yaml.safe_load(result.stdout)
    assert doc["users"][0]["name"] == "frank"
    assert subject(doc["users"][0]["user"]["client-certificate-data"]) == ("frank",
                                                                           ["devs", "qa"])
    path = tmp_path / "frank.kubeconfig"
    path.write_text(result.stdout)
    can_i = kubectl(path, "auth", "can-i", "list", "secrets")
    assert (can_i.returncode, can_i.stdout.strip()) == (1, "no")
    denied = kubectl(path, "get", "secrets")
    assert denied.returncode == 1
    assert denied.stderr.strip() == (
        'Error from server (Forbidden): secrets is forbidden: User "frank" cannot list resource '
        '"secrets" in API group "" in the namespace "default"')
    whoami = kubectl(path, "auth", "can-i", "create",
                     "selfsubjectaccessreviews.authorization.k8s.io")
    assert whoami.stdout.strip() == "yes"  # system:basic-user, via system:authenticated


def test_kubeconfig_without_a_cluster_is_a_clear_error(tmp_path: Path) -> None:
    result = storagelab("kubeconfig", "--data-dir", str(tmp_path / "nothing"))
    assert result.returncode == 2
    assert result.stderr.startswith("storagelab: no cluster in ")
    assert result.stdout == ""


# --- storagelab secrets -------------------------------------------------------------------

def test_secrets_status_and_rewrite(cluster: ApiServer) -> None:
    ns = f"cli-{uuid.uuid4().hex[:8]}"
    with cluster.client() as api:
        create_namespace(api, ns)
        for name in ("alpha", "beta"):
            assert api.post(f"/api/v1/namespaces/{ns}/secrets", json={
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                "stringData": {"k": name}}).status_code == 201
        before = api.get(f"/api/v1/namespaces/{ns}/secrets/alpha").json()
    status = storagelab("secrets", "status", "--data-dir", str(cluster.data_dir))
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "KEY", "STATE"]
    assert [ns, "alpha", "secretbox:key1", "current"] in [line.split() for line in lines]
    assert "under the writing key secretbox:key1" in lines[-1]
    assert "0 stale" in lines[-1] and "0 unreadable" in lines[-1]
    rewrite = storagelab("secrets", "rewrite", "--data-dir", str(cluster.data_dir))
    assert rewrite.returncode == 0, rewrite.stderr
    count = int(rewrite.stdout.split()[1])
    assert rewrite.stdout == f"rewrote {count} secrets\n" and count >= 2
    with cluster.client() as api:
        after = api.get(f"/api/v1/namespaces/{ns}/secrets/alpha").json()
    # Nothing was stale: an unchanged PUT is a no-op, exactly as in Kubernetes.
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["data"] == before["data"]


def run_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_secrets_commands_refuse_what_they_cannot_do(
        cluster: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_in_process(capsys, "secrets", "status", "--data-dir", str(empty))
    assert code == 2 and err.startswith("storagelab: no EncryptionConfiguration at ")
    config_text = (cluster.data_dir / "encryption-config.yaml").read_text()
    (empty / "encryption-config.yaml").write_text(config_text)
    code, _, err = run_in_process(capsys, "secrets", "status", "--data-dir", str(empty))
    assert code == 2 and "no store at" in err and "--database-url" in err
    monkeypatch.setenv("STORAGELAB_DATABASE_URL",
                       "postgresql+psycopg://nobody:pw@127.0.0.1:1/none")
    code, _, err = run_in_process(capsys, "secrets", "status", "--data-dir", str(empty))
    assert code == 2 and "cannot read the store at" in err
    assert ":pw@" not in err  # the password is not echoed
    code, _, err = run_in_process(capsys, "secrets", "rewrite", "--data-dir", str(empty))
    assert code == 2 and "cannot use kubeconfig" in err
    (empty / "encryption-config.yaml.rotation.json").write_text("garbage")
    code, _, err = run_in_process(capsys, "secrets", "rotate", "--data-dir", str(empty))
    assert code == 2 and "is not a rotation record; remove it to start over" in err
    assert (empty / "encryption-config.yaml").read_text() == config_text  # nothing changed
    (empty / "encryption-config.yaml").write_text(config_text.replace("secret: ", "secret: x"))
    code, _, err = run_in_process(capsys, "secrets", "rotate", "--data-dir", str(empty))
    assert code == 2 and "secretbox.keys[0].secret" in err


def test_secrets_rewrite_against_a_stopped_server_is_a_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = ApiServer(tmp_path / "stopped").start()
    server.kill()
    code, _, err = run_in_process(capsys, "secrets", "rewrite", "--data-dir",
                                  str(server.data_dir))
    assert code == 2
    assert err.startswith(f"storagelab: cannot reach the apiserver at {server.url}")
