"""Authentication and authorization of a real apiserver over real HTTPS.

One server with a `--token-auth-file`; clients present certificates issued by the cluster CA
(users, kubelets), self-signed or expired ones, bearer tokens, or nothing. Checks the
401/403 `Status` bodies against Kubernetes', the node authorizer's confinement of each
kubelet to the objects its pods use, and that every refused request changed nothing.
"""

from __future__ import annotations

import datetime as dt
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from apiserver import kubeconfig, pki
from tests.conftest import ApiServer, kubectl_available, require_real
from tests.support import eventually

ALICE_TOKEN = "alice-token-0123456789abcdef"
ROOT_TOKEN = "root-token-0123456789abcdef"
UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


# --- helpers ------------------------------------------------------------------------------

def tls_client(server: ApiServer, cert: tuple[Path, Path] | None = None,
               token: str | None = None) -> httpx.Client:
    """A client that verifies the server against the cluster CA, with the given credential."""
    context = ssl.create_default_context(cafile=str(server.pki / "ca.crt"))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.url, verify=context, headers=headers, timeout=30)


def write_pair(directory: Path, stem: str, cert_pem: bytes, key_pem: bytes) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    return cert, key


def user_cert(server: ApiServer, tmp: Path, name: str, groups: tuple[str, ...] = (),
              **kwargs: Any) -> tuple[Path, Path]:
    issued = pki.ensure_pki(server.pki)
    return write_pair(tmp, name.replace(":", "_"), *pki.issue_client_cert(issued, name, groups,
                                                                          **kwargs))


def self_signed(name: str, groups: tuple[str, ...]) -> tuple[bytes, bytes]:
    """A well-formed client certificate that the cluster CA never signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups),
                         x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def forbidden(message: str, kind: str, name: str = "") -> dict[str, Any]:
    details: dict[str, Any] = {"kind": kind}
    if name:
        details["name"] = name
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": "Forbidden", "details": details, "code": 403}


def configmap(namespace: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace}, "data": {"k": "v"}}


# --- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    data = tmp_path_factory.mktemp("secure")
    tokens = data / "tokens.csv"
    tokens.write_text(f'{ALICE_TOKEN},alice,uid-alice,"devs,qa"\n'
                      f"{ROOT_TOKEN},root,uid-root,system:masters\n")
    server = ApiServer(data / "srv", extra_args=("--token-auth-file", str(tokens))).start()
    server.token_file = tokens  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin(secure: ApiServer) -> Iterator[httpx.Client]:
    with tls_client(secure, (secure.pki / "admin.crt", secure.pki / "admin.key")) as client:
        yield client


@pytest.fixture()
def ns(admin: httpx.Client) -> Iterator[str]:
    name = f"sec-{uuid.uuid4().hex[:8]}"
    created = admin.post("/api/v1/namespaces", json={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    assert created.status_code == 201, created.text
    yield name
    admin.delete(f"/api/v1/namespaces/{name}")


# --- authentication -----------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz", "/version"])
def test_health_and_version_need_no_credential(secure: ApiServer, path: str) -> None:
    with tls_client(secure) as anonymous:
        assert anonymous.get(path).status_code == 200


@pytest.mark.parametrize("method,path", [
    ("GET", "/api"), ("GET", "/apis"), ("GET", "/api/v1/namespaces"),
    ("GET", "/api/v1/namespaces/default/secrets"), ("GET", "/metrics"),
    ("GET", "/openapi/v2"), ("POST", "/api/v1/namespaces/default/configmaps"),
    ("GET", "/healthz/extra"),
])
def test_no_credential_is_401_status(secure: ApiServer, method: str, path: str) -> None:
    with tls_client(secure) as anonymous:
        response = anonymous.request(method, path, json=configmap("default", "x"))
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_admin_certificate_is_cluster_admin(admin: httpx.Client) -> None:
    assert admin.get("/api/v1/secrets").status_code == 200


def test_bearer_token_from_token_file(secure: ApiServer) -> None:
    with tls_client(secure, token=ROOT_TOKEN) as root:
        assert root.get("/api/v1/secrets").status_code == 200  # groups column: system:masters
    with tls_client(secure, token=ALICE_TOKEN) as alice:
        review = alice.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json={
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": "list", "resource": "secrets",
                                            "namespace": "default"}}})
        assert review.status_code == 201, review.text
        assert review.json()["status"]["allowed"] is False
        assert alice.get("/api/v1/namespaces/default/secrets").status_code == 403


@pytest.mark.parametrize("header", ["Bearer not-a-known-token", "Bearer", "Basic YTpi"])
def test_bad_authorization_header_is_401(secure: ApiServer, header: str) -> None:
    with tls_client(secure) as client:
        response = client.get("/api/v1/namespaces", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_token_of_removed_user_is_401_and_changes_nothing(
        secure: ApiServer, admin: httpx.Client, ns: str) -> None:
    token_file: Path = secure.token_file  # type: ignore[attr-defined]
    gone = "temp-token-0123456789abcdef"
    original = token_file.read_text()
    token_file.write_text(original + f"{gone},temp,uid-temp,system:masters\n")
    try:
        with tls_client(secure, token=gone) as temp:
            assert temp.get("/api/v1/secrets").status_code == 200
            token_file.write_text(original)  # the user is removed from the file
            response = temp.post(f"/api/v1/namespaces/{ns}/configmaps",
                                 json=configmap(ns, "from-removed-user"))
        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert admin.get(f"/api/v1/namespaces/{ns}/configmaps/from-removed-user"
                         ).status_code == 404
    finally:
        token_file.write_text(original)


def test_expired_certificate_is_401_and_changes_nothing(
        secure: ApiServer, admin: httpx.Client, ns: str, tmp_path: Path) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    cert = user_cert(secure, tmp_path, "old-admin", ("system:masters",), days=1, now=past)
    with tls_client(secure, cert) as expired:
        response = expired.post(f"/api/v1/namespaces/{ns}/configmaps",
                                json=configmap(ns, "from-expired"))
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert admin.get(f"/api/v1/namespaces/{ns}/configmaps/from-expired").status_code == 404
    assert "the client certificate has expired" in secure.log.read_text()


def test_certificate_from_another_ca_is_refused_and_changes_nothing(
        secure: ApiServer, admin: httpx.Client, ns: str, tmp_path: Path) -> None:
    # It claims system:masters; the TLS layer refuses a chain it cannot verify (no request
    # reaches the API, where kube-apiserver would answer 401).
    cert = write_pair(tmp_path, "mallory", *self_signed("mallory", ("system:masters",)))
    with tls_client(secure, cert) as mallory, pytest.raises(httpx.TransportError):
        mallory.post(f"/api/v1/namespaces/{ns}/configmaps", json=configmap(ns, "from-mallory"))
    assert admin.get(f"/api/v1/namespaces/{ns}/configmaps/from-mallory").status_code == 404


def test_certificate_without_user_name_is_401(secure: ApiServer, tmp_path: Path) -> None:
    # Signed by the cluster CA, so TLS accepts it; it names no user (no CN) and says
    # system:masters: the authenticator must refuse it rather than guess.
    issued = pki.ensure_pki(secure.pki)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                        "system:masters")]))
            .issuer_name(issued.ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(issued.ca_key, hashes.SHA256()))
    files = write_pair(tmp_path, "nameless", cert.public_bytes(serialization.Encoding.PEM),
                       key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    with tls_client(secure, files) as nameless:
        response = nameless.get("/api/v1/secrets")
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert "no common name (CN)" in secure.log.read_text()


def test_kubectl_with_expired_or_garbage_certificate(secure: ApiServer, tmp_path: Path) -> None:
    require_real(kubectl_available(), "kubectl is not installed")
    issued = pki.ensure_pki(secure.pki)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    cert, key = pki.issue_client_cert(issued, "old-admin", ("system:masters",), days=1, now=past)
    cases = {
        "expired": (cert, key, "You must be logged in to the server"),
        "garbage": (b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
                    key, "x509: malformed certificate"),
    }
    for label, (cert_pem, key_pem, expected) in cases.items():
        path = tmp_path / f"{label}.kubeconfig"
        kubeconfig.write_kubeconfig(path, kubeconfig.build_kubeconfig(
            secure.url, issued.ca_pem, cert_pem, key_pem))
        result = secure.kubectl("--kubeconfig", str(path), "get", "namespaces", check=False)
        assert result.returncode != 0, label
        assert expected in result.stderr, (label, result.stderr)


# --- RBAC ---------------------------------------------------------------------------------

def test_rbac_denials_are_kubernetes_403_status(secure: ApiServer, ns: str,
                                                 tmp_path: Path) -> None:
    with tls_client(secure, user_cert(secure, tmp_path, "carol", ("devs",))) as carol:
        listed = carol.get(f"/api/v1/namespaces/{ns}/secrets")
        got = carol.get(f"/api/v1/namespaces/{ns}/secrets/db")
        nodes = carol.get("/api/v1/nodes")
        roles = carol.post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles", json={})
    prefix = 'User "carol" cannot'
    assert listed.status_code == 403
    assert listed.json() == forbidden(
        f'secrets is forbidden: {prefix} list resource "secrets" in API group "" in the '
        f'namespace "{ns}"', "secrets")
    assert got.json() == forbidden(
        f'secrets "db" is forbidden: {prefix} get resource "secrets" in API group "" in the '
        f'namespace "{ns}"', "secrets", "db")
    assert nodes.json() == forbidden(
        f'nodes is forbidden: {prefix} list resource "nodes" in API group "" at the cluster '
        f"scope", "nodes")
    assert roles.status_code == 403
    assert roles.json()["message"] == (
        f'roles.rbac.authorization.k8s.io is forbidden: {prefix} create resource "roles" in '
        f'API group "rbac.authorization.k8s.io" in the namespace "{ns}"')
    assert roles.json()["details"] == {"kind": "roles", "group": "rbac.authorization.k8s.io"}


def test_rolebinding_grants_then_revocation_denies(secure: ApiServer, admin: httpx.Client,
                                                   ns: str, tmp_path: Path) -> None:
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}"
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "secret-reader"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "devs-read-secrets"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                           "name": "secret-reader"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                             "name": "devs"}]}
    assert admin.post(f"{rbac}/roles", json=role).status_code == 201
    assert admin.post(f"{rbac}/rolebindings", json=binding).status_code == 201
    with tls_client(secure, user_cert(secure, tmp_path, "dan", ("devs",))) as dan:
        # The policy cache follows the store's watch: grants take effect a moment later.
        eventually(lambda: dan.get(f"/api/v1/namespaces/{ns}/secrets").status_code == 200, 10)
        assert dan.get("/api/v1/namespaces/default/secrets").status_code == 403
        assert dan.delete(f"/api/v1/namespaces/{ns}/secrets/x").status_code == 403
        assert admin.delete(f"{rbac}/rolebindings/devs-read-secrets").status_code == 200
        eventually(lambda: dan.get(f"/api/v1/namespaces/{ns}/secrets").status_code == 403, 10)


def test_kubectl_auth_can_i_and_forbidden_message(secure: ApiServer, admin: httpx.Client,
                                                  ns: str, tmp_path: Path) -> None:
    require_real(kubectl_available(), "kubectl is not installed")
    path = tmp_path / "erin.kubeconfig"
    kubeconfig.write_kubeconfig(path, kubeconfig.user_kubeconfig(
        pki.ensure_pki(secure.pki), secure.url, "erin", ["auditors"]))
    as_erin = ("--kubeconfig", str(path))
    no = secure.kubectl(*as_erin, "auth", "can-i", "get", "secrets", "-n", ns, check=False)
    assert (no.returncode, no.stdout.strip()) == (1, "no")
    denied = secure.kubectl(*as_erin, "get", "secrets", "-n", ns, check=False)
    assert denied.returncode == 1
    assert denied.stderr.strip() == (
        f'Error from server (Forbidden): secrets is forbidden: User "erin" cannot list resource '
        f'"secrets" in API group "" in the namespace "{ns}"')
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "auditors-view"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "edit"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                             "name": "auditors"}]}
    assert admin.post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
                      json=binding).status_code == 201
    eventually(lambda: secure.kubectl(*as_erin, "auth", "can-i", "get", "secrets", "-n", ns,
                                      check=False).stdout.strip() == "yes", 10)
    elsewhere = secure.kubectl(*as_erin, "auth", "can-i", "get", "secrets", "-n", "default",
                               check=False)
    assert elsewhere.stdout.strip() == "no"
    admin_can = secure.kubectl("auth", "can-i", "*", "*")
    assert admin_can.stdout.strip() == "yes"


# --- the node authorizer ------------------------------------------------------------------

def _pod(ns: str, name: str, node: str, secret: str, cm: str = "", claim: str = "") -> Any:
    volumes: list[dict[str, Any]] = [{"name": "s", "secret": {"secretName": secret}}]
    if cm:
        volumes.append({"name": "c", "configMap": {"name": cm}})
    if claim:
        volumes.append({"name": "d", "persistentVolumeClaim": {"claimName": claim}})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"nodeName": node, "volumes": volumes,
                     "containers": [{"name": "c", "image": "busybox"}]}}


@pytest.fixture()
def kubelets(secure: ApiServer, admin: httpx.Client, ns: str
             ) -> Iterator[dict[str, httpx.Client]]:
    """Pods on node-a use secret sa, configmap ca and claim ca (bound to a PV); node-b, sb."""
    pv_name = f"pv-{ns}"
    objects = [
        ("/api/v1/namespaces/{ns}/secrets", {"apiVersion": "v1", "kind": "Secret",
                                             "metadata": {"name": "sa"}, "data": {"k": "YQ=="}}),
        ("/api/v1/namespaces/{ns}/secrets", {"apiVersion": "v1", "kind": "Secret",
                                             "metadata": {"name": "sb"}, "data": {"k": "Yg=="}}),
        ("/api/v1/namespaces/{ns}/configmaps", configmap(ns, "ca")),
        ("/api/v1/persistentvolumes", {
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                     "hostPath": {"path": "/tmp/pv"}}}),
        ("/api/v1/namespaces/{ns}/persistentvolumeclaims", {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "ca"},
            "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": pv_name,
                     "resources": {"requests": {"storage": "1Gi"}}}}),
        ("/api/v1/namespaces/{ns}/pods", _pod(ns, "pa", "node-a", "sa", "ca", "ca")),
        ("/api/v1/namespaces/{ns}/pods", _pod(ns, "pb", "node-b", "sb")),
    ]
    for path, body in objects:
        response = admin.post(path.format(ns=ns), json=body)
        assert response.status_code == 201, response.text
    issued = pki.ensure_pki(secure.pki)
    clients = {}
    for node in ("node-a", "node-b"):
        files = pki.node_cert(issued, node)
        clients[node] = tls_client(secure, (files.cert, files.key))
    eventually(lambda: clients["node-a"].get(f"/api/v1/namespaces/{ns}/secrets/sa"
                                             ).status_code == 200, 10)
    yield clients
    for client in clients.values():
        client.close()
    admin.delete(f"/api/v1/persistentvolumes/{pv_name}")


def test_kubelet_reads_only_what_its_pods_use(kubelets: dict[str, httpx.Client],
                                              ns: str) -> None:
    a, b = kubelets["node-a"], kubelets["node-b"]
    base = f"/api/v1/namespaces/{ns}"
    for path in ("secrets/sa", "configmaps/ca", "persistentvolumeclaims/ca"):
        assert a.get(f"{base}/{path}").status_code == 200, path
    assert a.get(f"/api/v1/persistentvolumes/pv-{ns}").status_code == 200
    assert b.get(f"{base}/secrets/sb").status_code == 200
    for client, path in ((b, f"{base}/secrets/sa"), (a, f"{base}/secrets/sb"),
                         (b, f"{base}/configmaps/ca"), (b, f"{base}/persistentvolumeclaims/ca"),
                         (b, f"/api/v1/persistentvolumes/pv-{ns}")):
        assert client.get(path).status_code == 403, path
    denied = b.get(f"{base}/secrets/sa")
    assert denied.json() == forbidden(
        f'secrets "sa" is forbidden: User "system:node:node-b" cannot get resource "secrets" '
        f'in API group "" in the namespace "{ns}": no relationship found between node '
        f"'node-b' and this object", "secrets", "sa")
    assert a.get(f"{base}/secrets").status_code == 403  # no listing every Secret
    assert a.get("/api/v1/secrets").status_code == 403


def test_kubelet_writes_only_its_own_objects(kubelets: dict[str, httpx.Client],
                                             admin: httpx.Client, ns: str) -> None:
    a = kubelets["node-a"]
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-b"}}
    stolen = a.post("/api/v1/nodes", json=node)
    assert stolen.status_code == 403
    assert 'node "node-a" is not allowed to modify node "node-b"' in stolen.json()["message"]
    mine = a.post("/api/v1/nodes", json={**node, "metadata": {"name": "node-a"}})
    assert mine.status_code in (201, 409), mine.text
    assert a.patch("/api/v1/nodes/node-a/status", json={"status": {"phase": "Running"}},
                   headers={"Content-Type": "application/merge-patch+json"}
                   ).status_code == 200
    leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"

    def lease(name: str) -> dict[str, Any]:
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name}, "spec": {"holderIdentity": name}}
    assert a.post(leases, json=lease("node-b")).status_code == 403
    assert a.post(leases, json=lease("node-a")).status_code in (201, 409)
    status_patch = {"status": {"message": "from node-a"}}
    merge = {"Content-Type": "application/merge-patch+json"}
    base = f"/api/v1/namespaces/{ns}/pods"
    assert a.patch(f"{base}/pa/status", json=status_patch, headers=merge).status_code == 200
    assert a.patch(f"{base}/pb/status", json=status_patch, headers=merge).status_code == 403
    assert a.patch(f"{base}/pa", json={"metadata": {"labels": {"x": "y"}}},
                   headers=merge).status_code == 403  # status only, never the spec
    assert a.post(f"/api/v1/namespaces/{ns}/secrets", json={
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "planted"}}
    ).status_code == 403
    assert admin.get(f"{base}/pb").json()["status"].get("message") != "from node-a"
    assert admin.get(f"/api/v1/namespaces/{ns}/secrets/planted").status_code == 404
