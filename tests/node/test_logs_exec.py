"""`kubectl logs` and `kubectl exec` through a real apiserver to a real kubelet on Docker.

The apiserver proxies pods/log and pods/exec to the kubelet's HTTPS port (published in the
Node's status); kubectl 1.32 execs over WebSocket (v5.channel.k8s.io). Pinned here: logs
with -f, --tail, -c and --previous, the errors kubectl prints, exec exit codes and stdin,
authorization at the apiserver (403 for a user without RBAC) and at the kubelet (only
CA-signed callers, only the apiserver or cluster admins), and the tutorial's
`kubectl run` / logs / delete. Pure decisions are pinned by tables at the end.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from apiserver.routes import podproxy
from kubelet import exec as kexec
from kubelet import server as kserver
from storagelab import images
from tests.conftest import REPO, ApiServer, free_port, kubectl_available, require_real
from tests.node.harness import KubeletProcess, require_node_env, wait_for, wait_phase

NODE = "node-l"


class ServingKubelet(KubeletProcess):
    """The harness's kubelet, on a kubelet port of its own."""

    def __init__(self, server: ApiServer, node: str, root: Path, port: int) -> None:
        super().__init__(server, node, root, backoff=1.0)
        self.port = port

    def start(self) -> ServingKubelet:
        self.root.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "storagelab.cli", "-v", "kubelet", "--node", self.node,
                "--data-dir", str(self.server.data_dir), "--root-dir", str(self.root),
                "--restart-backoff", "1", "--kubelet-port", str(self.port)]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=log)
        return self


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, ServingKubelet]]:
    require_node_env()
    require_real(kubectl_available(), "kubectl is not installed")
    images.build_busybox()
    base = tmp_path_factory.mktemp("logs")
    server = ApiServer(base / "api").start()
    kubelet = ServingKubelet(server, NODE, base / "root", free_port()).start()
    try:
        with server.client() as api:
            wait_for("kubelet endpoint in node status", lambda: _kubelet_port(api), 30)
        yield server, kubelet
    finally:
        with server.client() as api:
            for pod in api.get("/api/v1/pods").json().get("items", []):
                api.delete(f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods/"
                           f"{pod['metadata']['name']}", params={"gracePeriodSeconds": 0})
            wait_for("pods gone", lambda: not api.get("/api/v1/pods").json()["items"], 30)
        # Pods deleted with grace 0 vanish from the API at once; give the kubelet the time to
        # stop their containers, then remove any it could not, so no test leaks a container.
        try:
            wait_for("no container left", lambda: not _containers(kubelet.root), 30)
        finally:
            kubelet.stop()
            server.stop()
            _remove_containers(kubelet.root)


def _containers(root: Path) -> list[Any]:
    import docker
    # sparse: no inspect per container, which races with the kubelet removing them.
    return list(docker.from_env().containers.list(
        all=True, sparse=True, filters={"label": f"io.storagelab.kubelet.root={root}"}))


def _remove_containers(root: Path) -> None:
    import docker
    for leftover in _containers(root):
        try:
            leftover.remove(force=True)
        except docker.errors.NotFound:
            pass  # the kubelet got there first


def _kubelet_port(api: httpx.Client) -> int:
    r = api.get(f"/api/v1/nodes/{NODE}")
    node = r.json() if r.status_code == 200 else {}
    return int(((node.get("status") or {}).get("daemonEndpoints") or {})
               .get("kubeletEndpoint", {}).get("Port") or 0)


@pytest.fixture(scope="module")
def ns(cluster: tuple[ApiServer, ServingKubelet]) -> str:
    name = f"logs-{uuid.uuid4().hex[:6]}"
    with cluster[0].client() as api:
        assert api.post("/api/v1/namespaces", json={"metadata": {"name": name}}).status_code \
            == 201
    return name


def container(name: str, script: str) -> dict[str, Any]:
    return {"name": name, "image": "busybox:latest", "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", script]}


def make_pod(server: ApiServer, ns: str, name: str, containers: list[dict[str, Any]],
             restart: str = "Always", **spec: Any) -> None:
    body = {"metadata": {"name": name}, "spec": {
        "nodeName": NODE, "restartPolicy": restart, "terminationGracePeriodSeconds": 0,
        "containers": containers, **spec}}
    with server.client() as api:
        r = api.post(f"/api/v1/namespaces/{ns}/pods", json=body)
        assert r.status_code == 201, r.text


def running(server: ApiServer, ns: str, name: str) -> dict[str, Any]:
    with server.client() as api:
        return wait_phase(api, ns, name, "Running")


def kubectl(server: ApiServer, ns: str, *args: str, check: bool = False,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return server.kubectl("-n", ns, *args, check=check, input=stdin, timeout=60)


@pytest.fixture(scope="module")
def sleeper(cluster: tuple[ApiServer, ServingKubelet], ns: str) -> str:
    make_pod(cluster[0], ns, "sleeper", [container("main", "echo one; echo two; echo three; "
                                                           "exec sleep 3600")])
    running(cluster[0], ns, "sleeper")
    return "sleeper"


# --- logs -----------------------------------------------------------------------------------

def test_logs_tail_and_node_endpoint(cluster: tuple[ApiServer, ServingKubelet], ns: str,
                                     sleeper: str) -> None:
    server, kubelet = cluster
    with server.client() as api:
        node = api.get(f"/api/v1/nodes/{NODE}").json()
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == kubelet.port
    assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"]
    out = wait_for("logs", lambda: kubectl(server, ns, "logs", sleeper).stdout, 10)
    assert out == "one\ntwo\nthree\n"
    assert kubectl(server, ns, "logs", sleeper, "--tail=2").stdout == "two\nthree\n"
    stamped = kubectl(server, ns, "logs", sleeper, "--timestamps", "--limit-bytes=40").stdout
    assert stamped.startswith(time.strftime("%Y-", time.gmtime())) and len(stamped) == 40


def test_logs_follow_sees_new_lines_and_ends_with_the_container(
        cluster: tuple[ApiServer, ServingKubelet], ns: str) -> None:
    server = cluster[0]
    make_pod(server, ns, "ticker", [container("t", "for i in 1 2 3 4 5 6; do echo tick $i; "
                                                   "sleep 0.5; done")], restart="Never")
    running(server, ns, "ticker")
    started = time.monotonic()
    follow = kubectl(server, ns, "logs", "-f", "ticker")
    assert follow.returncode == 0, follow.stderr
    assert follow.stdout == "".join(f"tick {i}\n" for i in range(1, 7))
    assert time.monotonic() - started < 10  # it ended when the container did


def test_logs_container_choice(cluster: tuple[ApiServer, ServingKubelet], ns: str) -> None:
    server = cluster[0]
    make_pod(server, ns, "duo", [container("a", "echo from-a; exec sleep 3600"),
                                 container("b", "echo from-b; exec sleep 3600")])
    running(server, ns, "duo")
    wait_for("b logs", lambda: kubectl(server, ns, "logs", "duo", "-c", "b").stdout, 10)
    assert kubectl(server, ns, "logs", "duo", "-c", "b").stdout == "from-b\n"
    defaulted = kubectl(server, ns, "logs", "duo")
    assert defaulted.stdout == "from-a\n"
    assert 'Defaulted container "a" out of: a, b' in defaulted.stderr
    with server.client() as api:
        r = api.get(f"/api/v1/namespaces/{ns}/pods/duo/log")
        assert (r.status_code, r.json()["reason"], r.json()["message"]) == (
            400, "BadRequest", ("a container name must be specified for pod duo, choose one "
                                "of: [a b]"))
        r = api.get(f"/api/v1/namespaces/{ns}/pods/duo/log", params={"container": "zz"})
        assert r.json()["message"] == "container zz is not valid for pod duo"
        r = api.get(f"/api/v1/namespaces/{ns}/pods/nope/log")
        assert (r.status_code, r.json()["message"]) == (404, 'pods "nope" not found')
        r = api.get(f"/api/v1/namespaces/{ns}/pods/duo/log",
                    params={"container": "a", "tailLines": "-1"})
        assert r.status_code == 422 and "tailLines" in r.json()["message"]


def test_logs_previous_after_restart(cluster: tuple[ApiServer, ServingKubelet],
                                     ns: str, sleeper: str) -> None:
    server = cluster[0]
    make_pod(server, ns, "crash", [container("c", "echo run $(cat /proc/uptime); sleep 1; "
                                                  "exit 1")])

    def restarted() -> bool:
        with server.client() as api:
            pod = api.get(f"/api/v1/namespaces/{ns}/pods/crash").json()
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        return bool(statuses) and statuses[0].get("restartCount", 0) >= 1 and \
            "running" in statuses[0]["state"]
    wait_for("a restart", restarted, 30)
    current = kubectl(server, ns, "logs", "crash").stdout
    previous = kubectl(server, ns, "logs", "crash", "--previous").stdout
    assert previous.startswith("run ") and current.startswith("run ") and previous != current
    none = kubectl(server, ns, "logs", sleeper, "--previous")
    assert none.returncode == 1
    assert none.stderr.strip() == ('Error from server (BadRequest): previous terminated '
                                   'container "main" in pod "sleeper" not found')


def test_logs_of_a_waiting_container(cluster: tuple[ApiServer, ServingKubelet],
                                     ns: str) -> None:
    server = cluster[0]
    make_pod(server, ns, "stuck", [{**container("w", "true"), "volumeMounts": [
        {"name": "cfg", "mountPath": "/cfg"}]}],
        volumes=[{"name": "cfg", "configMap": {"name": "absent"}}])

    def refused() -> str:
        result = kubectl(server, ns, "logs", "stuck")
        return result.stderr.strip() if "waiting to start" in result.stderr else ""
    message = wait_for("waiting error", refused, 20)
    assert message == ('Error from server (BadRequest): container "w" in pod "stuck" is '
                       'waiting to start: ContainerCreating')


# --- exec -----------------------------------------------------------------------------------

def test_exec_exit_code_and_websocket(cluster: tuple[ApiServer, ServingKubelet], ns: str,
                                      sleeper: str) -> None:
    server = cluster[0]
    result = kubectl(server, ns, "-v=8", "exec", sleeper, "--", "sh", "-c",
                     "echo hi; echo oops >&2; exit 3")
    assert result.returncode == 3
    assert result.stdout == "hi\n"
    assert "oops" in result.stderr
    assert "command terminated with exit code 3" in result.stderr
    assert "The subprotocol is v5.channel.k8s.io" in result.stderr  # no SPDY fallback
    ok = kubectl(server, ns, "exec", sleeper, "--", "cat", "/proc/1/cmdline")
    assert ok.returncode == 0 and ok.stdout.replace("\0", " ").strip() == "sleep 3600"


def test_exec_with_stdin(cluster: tuple[ApiServer, ServingKubelet], ns: str,
                         sleeper: str) -> None:
    result = kubectl(cluster[0], ns, "exec", "-i", sleeper, "--", "sh", "-c",
                     "tr a-z A-Z; echo done", stdin="hello\nworld\n")
    assert (result.returncode, result.stdout) == (0, "HELLO\nWORLD\ndone\n"), result.stderr


def test_exec_errors(cluster: tuple[ApiServer, ServingKubelet], ns: str, sleeper: str) -> None:
    server = cluster[0]
    missing = kubectl(server, ns, "exec", sleeper, "-c", "zz", "--", "true")
    assert missing.returncode == 1
    assert "container zz is not valid for pod sleeper" in missing.stderr
    gone = kubectl(server, ns, "exec", "nope", "--", "true")
    assert 'pods "nope" not found' in gone.stderr


def test_users_without_rbac_are_forbidden(cluster: tuple[ApiServer, ServingKubelet], ns: str,
                                          sleeper: str, tmp_path: Path) -> None:
    server = cluster[0]
    config = tmp_path / "eve.kubeconfig"
    config.write_text(subprocess.run(
        [sys.executable, "-m", "storagelab.cli", "kubeconfig", "--data-dir",
         str(server.data_dir), "--user", "eve"], capture_output=True, text=True, check=True,
        cwd=REPO).stdout)
    as_eve = ["kubectl", "--kubeconfig", str(config), "-n", ns]
    logs = subprocess.run([*as_eve, "logs", sleeper], capture_output=True, text=True,
                          check=False)
    assert 'User "eve" cannot get resource "pods" in API group' in logs.stderr
    # With `get pods` (kubectl reads the pod first) but nothing on the subresources:
    _grant(server, ns, "eve", ["pods"], ["get"])
    logs = subprocess.run([*as_eve, "logs", sleeper], capture_output=True, text=True,
                          check=False)
    assert logs.returncode == 1
    assert logs.stderr.strip() == (
        f'Error from server (Forbidden): pods "{sleeper}" is forbidden: User "eve" cannot '
        f'get resource "pods/log" in API group "" in the namespace "{ns}"')
    execd = subprocess.run([*as_eve, "exec", sleeper, "--", "true"], capture_output=True,
                           text=True, check=False)
    assert execd.returncode == 1
    assert f'User "eve" cannot create resource "pods/exec" in API group "" in the namespace ' \
           f'"{ns}"' in execd.stderr
    # Kubernetes 1.32 authorizes a WebSocket exec (a GET) with `get` on pods/exec.
    _grant(server, ns, "eve", ["pods/exec"], ["get"])
    execd = subprocess.run([*as_eve, "exec", sleeper, "--", "echo", "hi"], capture_output=True,
                           text=True, check=False)
    assert (execd.returncode, execd.stdout) == (0, "hi\n"), execd.stderr


def _grant(server: ApiServer, ns: str, user: str, resources: list[str],
           verbs: list[str]) -> None:
    name = f"{user}-{'-'.join(resources).replace('/', '-')}"
    with server.client() as api:
        assert api.post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles", json={
            "metadata": {"name": name}, "rules": [
                {"apiGroups": [""], "resources": resources, "verbs": verbs}]}).status_code == 201
        assert api.post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
                        json={"metadata": {"name": name},
                              "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                          "kind": "Role", "name": name},
                              "subjects": [{"apiGroup": "rbac.authorization.k8s.io",
                                            "kind": "User", "name": user}]}).status_code == 201
    # RBAC changes reach the authorizer through a watch: give it a moment.
    time.sleep(0.5)


def test_kubelet_port_requires_ca_signed_callers(cluster: tuple[ApiServer, ServingKubelet],
                                                 tmp_path: Path) -> None:
    server, kubelet = cluster
    url = f"https://127.0.0.1:{kubelet.port}/healthz"
    ca = str(server.pki / "ca.crt")
    with pytest.raises((httpx.HTTPError, ssl.SSLError, OSError)):
        httpx.get(url, verify=ssl.create_default_context(cafile=ca), timeout=5)
    own = _self_signed(tmp_path)
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(*own)
    with pytest.raises((httpx.HTTPError, ssl.SSLError, OSError)):
        httpx.get(url, verify=ctx, timeout=5)
    user = _user_cert(server, tmp_path, "eve")
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(*user)
    r = httpx.get(url, verify=ctx, timeout=5)
    assert (r.status_code, r.text) == (
        403, "Forbidden (user=eve, verb=get, resource=nodes, subresource=proxy)")
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(str(server.pki / "admin.crt"), str(server.pki / "admin.key"))
    assert httpx.get(url, verify=ctx, timeout=5).status_code == 200


def _self_signed(tmp_path: Path) -> tuple[str, str]:
    from apiserver import pki
    other = pki.ensure_pki(tmp_path / "other-ca")
    return str(other.admin.cert), str(other.admin.key)


def _user_cert(server: ApiServer, tmp_path: Path, user: str) -> tuple[str, str]:
    from apiserver import pki
    cert, key = pki.issue_client_cert(pki.ensure_pki(server.pki), user)
    (tmp_path / "u.crt").write_bytes(cert)
    (tmp_path / "u.key").write_bytes(key)
    return str(tmp_path / "u.crt"), str(tmp_path / "u.key")


def test_kubectl_run_logs_delete(cluster: tuple[ApiServer, ServingKubelet], ns: str) -> None:
    server = cluster[0]
    overrides = json.dumps({"spec": {"nodeName": NODE}})
    created = kubectl(server, ns, "run", "nginx", "--image=busybox", "--port=80",
                      f"--overrides={overrides}", "--", "sh", "-c",
                      "echo serving on 80; exec sleep 3600")
    assert created.returncode == 0 and "pod/nginx created" in created.stdout, created.stderr
    running(server, ns, "nginx")
    assert wait_for("run logs", lambda: kubectl(server, ns, "logs", "nginx").stdout, 10) == \
        "serving on 80\n"
    deleted = kubectl(server, ns, "delete", "pod", "nginx", "--grace-period=1")
    assert deleted.returncode == 0 and 'pod "nginx" deleted' in deleted.stdout
    gone = kubectl(server, ns, "logs", "nginx")
    assert gone.stderr.strip() == ('error: error from server (NotFound): pods "nginx" not '
                                   f'found in namespace "{ns}"')


# --- pure decisions -------------------------------------------------------------------------

def _pod(*names: str, init: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": n} for n in names],
        "initContainers": [{"name": n} for n in init]}}


@pytest.mark.parametrize(("pod", "requested", "expected"), [
    (_pod("a"), "", "a"),
    (_pod("a", "b"), "b", "b"),
    (_pod("a", init=("setup",)), "setup", "setup"),
    (_pod("a", "b"), "", "a container name must be specified for pod p, choose one of: [a b]"),
    (_pod("a", "b", init=("i",)), "", ("a container name must be specified for pod p, "
                                       "choose one of: [i a b]")),
    (_pod(), "", "a container name must be specified for pod p"),
    (_pod("a"), "x", "container x is not valid for pod p"),
])
def test_choose_container(pod: dict[str, Any], requested: str, expected: str) -> None:
    from apimachinery import errors
    try:
        assert podproxy.choose_container(pod, requested) == expected
    except errors.APIError as e:
        assert (e.code, str(e)) == (400, expected)


@pytest.mark.parametrize(("status", "expected"), [
    ({"addresses": [{"type": "Hostname", "address": "h"},
                    {"type": "InternalIP", "address": "10.1.2.3"}],
      "daemonEndpoints": {"kubeletEndpoint": {"Port": 4321}}}, ("10.1.2.3", 4321)),
    ({"addresses": [{"type": "Hostname", "address": "h"}]}, ("h", 10250)),
])
def test_kubelet_endpoint(status: dict[str, Any], expected: tuple[str, int]) -> None:
    assert podproxy.kubelet_endpoint({"status": status}) == expected


def _status(state: dict[str, Any], last: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "status": {"containerStatuses": [
        {"name": "c", "containerID": "docker://cur", "state": state, "lastState": last or {}}]}}


OLD = {"terminated": {"exitCode": 1, "containerID": "docker://old"}}


@pytest.mark.parametrize(("pod", "previous", "expected"), [
    (_status({"running": {}}), False, "cur"),
    (_status({"running": {}}, OLD), True, "old"),
    (_status({"running": {}}), True,
     'previous terminated container "c" in pod "p" not found'),
    (_status({"waiting": {"reason": "CrashLoopBackOff"}}, OLD), False, "old"),
    (_status({"terminated": {"exitCode": 0, "containerID": "docker://cur"}}), False, "cur"),
    (_status({"waiting": {"reason": "ContainerCreating"}}), False,
     'container "c" in pod "p" is waiting to start: ContainerCreating'),
    (_status({"waiting": {"reason": "ErrImagePull"}}), False,
     'container "c" in pod "p" is waiting to start: image can\'t be pulled'),
    ({"metadata": {"name": "p"}, "status": {}}, False,
     'container "c" in pod "p" is not available'),
])
def test_log_container_id(pod: dict[str, Any], previous: bool, expected: str) -> None:
    try:
        assert kserver.log_container_id(pod, "c", previous) == expected
    except kserver.LookupFailed as e:
        assert (e.code, str(e)) == (400, expected)


@pytest.mark.parametrize(("user", "groups", "ok"), [
    ("kube-apiserver-kubelet-client", (), True),
    ("kubernetes-admin", ("system:masters",), True),
    ("system:node:node-l", ("system:nodes",), False),
    ("eve", (), False),
])
def test_kubelet_authorizes_only_the_apiserver_and_admins(user: str, groups: tuple[str, ...],
                                                          ok: bool) -> None:
    assert kserver.allowed(user, groups) is ok


def test_docker_frames_split_anywhere() -> None:
    stream = b"\x01\0\0\0\0\0\0\x03out" + b"\x02\0\0\0\0\0\0\x04err!" + b"\x01\0\0\0\0\0\0\x01x"
    demuxer = kexec.DockerDemuxer()
    pieces = [p for i in range(0, len(stream), 5) for p in demuxer.feed(stream[i:i + 5])]
    assert pieces == [(1, b"out"), (2, b"err!"), (1, b"x")]


@pytest.mark.parametrize(("code", "expected"), [
    (0, {"metadata": {}, "status": "Success"}),
    (3, {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
         "message": "command terminated with non-zero exit code: exit status 3",
         "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}),
])
def test_exit_status(code: int, expected: dict[str, Any]) -> None:
    assert kexec.exit_status(code) == expected


@pytest.mark.parametrize(("query", "commands", "expected"), [
    ({"output": "1", "error": "1"}, ["ls"], kexec.ExecOptions(("ls",), False, True, True, False)),
    ({"input": "1", "output": "1", "error": "1", "tty": "1"}, ["sh"],
     kexec.ExecOptions(("sh",), True, True, False, True)),
    ({}, ["ls"], "you must specify at least 1 of stdin, stdout, stderr"),
    ({"output": "1"}, [], "you must specify at least 1 command"),
])
def test_exec_options(query: dict[str, str], commands: list[str], expected: Any) -> None:
    try:
        assert kexec.parse_options(query, commands) == expected
    except kexec.ExecOptionsError as e:
        assert str(e) == expected


def test_a_taken_kubelet_port_falls_back_to_a_free_one() -> None:
    """Kubelets sharing a machine must not collide: the second takes another port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        cfg = kserver.ServingConfig("127.0.0.1", port, Path("/x"), Path("/y"), Path("/z"))
        second = kserver.KubeletServer(cfg, None)
        try:
            assert second.port not in (0, port)
        finally:
            second.sock.close()
