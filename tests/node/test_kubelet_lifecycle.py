"""The kubelet's pod lifecycle beyond starting containers, against a real apiserver and real
Docker: an emptyDir outgrowing its sizeLimit evicts its pod with Kubernetes' words,
subPathExpr expands from the container's environment, a ReadWriteOncePod claim admits one
pod per node at a time, and init containers run in order before the app containers."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import ApiServer
from tests.node.harness import (
    KubeletProcess,
    bound_claim,
    busybox,
    create,
    delete_pod,
    docker_exec,
    events_of,
    get_pod,
    one_node_fixtures,
    pod_containers,
    wait_for,
    wait_phase,
    waiting_state,
)

NODE = "node-life"


cluster, server = one_node_fixtures(NODE)


def pod_body(name: str, containers: list[dict], **spec: object) -> dict:
    return {"metadata": {"name": name}, "spec": {
        "nodeName": NODE, "terminationGracePeriodSeconds": 0, "containers": containers,
        **spec}}


def condition(pod: dict, kind: str) -> dict:
    return next(c for c in pod["status"]["conditions"] if c["type"] == kind)


# --- emptyDir sizeLimit eviction ------------------------------------------------------------

def scratch_pod(name: str, megabytes: int) -> dict:
    return pod_body(name, [busybox(
        "w", f"dd if=/dev/zero of=/scratch/fill bs=1048576 count={megabytes}; exec sleep 3600",
        volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}])],
        volumes=[{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}])


def test_emptydir_over_its_size_limit_evicts_the_pod(
        api: httpx.Client, ns: str, cluster: tuple[ApiServer, KubeletProcess]) -> None:
    create(api, f"/api/v1/namespaces/{ns}/pods", scratch_pod("small", 0))
    small = wait_phase(api, ns, "small", "Running")
    create(api, f"/api/v1/namespaces/{ns}/pods", scratch_pod("hog", 3))
    hog = wait_phase(api, ns, "hog", "Failed", timeout=40)
    message = 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". '
    assert (hog["status"]["reason"], hog["status"]["message"]) == ("Evicted", message)
    event = wait_for("Evicted event", lambda: [
        e for e in events_of(api, ns, "hog") if e["reason"] == "Evicted"])[0]
    assert (event["type"], event["message"]) == ("Warning", message)
    assert event["source"] == {"component": "kubelet", "host": NODE}
    # The containers were stopped (not restarted, whatever restartPolicy Always says), the
    # pod's volumes given back, and the pod stays as evidence, as on a real node.
    state = hog["status"]["containerStatuses"][0]["state"]
    assert "terminated" in state, state
    assert condition(hog, "Ready")["status"] == "False"
    assert condition(hog, "Ready")["reason"] == "PodFailed"
    assert all(c["State"] == "exited" for c in pod_containers(hog))
    root = cluster[1].root
    wait_for("hog's volumes released",
             lambda: not (root / "pods" / hog["metadata"]["uid"]).exists())
    # A pod under its limit is left alone.
    assert get_pod(api, ns, "small")["status"]["phase"] == "Running"  # type: ignore[index]
    assert docker_exec(small, "w", "ls", "/scratch") == "fill\n"
    assert not [e for e in events_of(api, ns, "small") if e["reason"] == "Evicted"]
    assert get_pod(api, ns, "hog")["status"]["phase"] == "Failed"  # type: ignore[index]
    delete_pod(api, ns, "hog")
    delete_pod(api, ns, "small")


# --- subPathExpr ------------------------------------------------------------------------------

POD_NAME_ENV = {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}


def test_subpath_expr_expands_from_the_container_env(api: httpx.Client, ns: str,
                                                     tmp_path: Path) -> None:
    host = tmp_path / "logs"
    host.mkdir()
    create(api, f"/api/v1/namespaces/{ns}/pods", pod_body("web-0", [busybox(
        "c", "echo hello > /logs/out; exec sleep 3600", env=[POD_NAME_ENV],
        volumeMounts=[{"name": "logs", "mountPath": "/logs", "subPathExpr": "$(POD_NAME)"}])],
        volumes=[{"name": "logs", "hostPath": {"path": str(host)}}]))
    wait_phase(api, ns, "web-0", "Running")
    wait_for("file in the pod's own directory",
             lambda: (host / "web-0" / "out").exists()
             and (host / "web-0" / "out").read_text() == "hello\n")
    delete_pod(api, ns, "web-0")


@pytest.mark.parametrize("env,expr,message", [
    ([], "$(POD_NAME)/x", "missing value for POD_NAME"),
    ([{"name": "EMPTY", "value": ""}, {"name": "B", "value": "b"}], "$(EMPTY)$(B)$(A)",
     "missing value for A, EMPTY"),
    ([{"name": "ROOT", "value": "/etc"}], "$(ROOT)",
     "error SubPath `/etc` must not be an absolute path"),
    ([{"name": "UP", "value": ".."}], "a/$(UP)/b",
     "unable to provision SubPath `a/../b`: must not contain '..'"),
])
def test_bad_subpath_expr_is_a_config_error(api: httpx.Client, ns: str, tmp_path: Path,
                                            env: list, expr: str, message: str) -> None:
    create(api, f"/api/v1/namespaces/{ns}/pods", pod_body("bad", [busybox(
        "c", "sleep 3600", env=env,
        volumeMounts=[{"name": "v", "mountPath": "/v", "subPathExpr": expr}])],
        volumes=[{"name": "v", "hostPath": {"path": str(tmp_path)}}]))
    state = wait_for("CreateContainerConfigError", lambda: waiting_state(api, ns, "bad"))
    assert state == {"reason": "CreateContainerConfigError", "message": message}
    failed = wait_for("Failed event", lambda: [
        e for e in events_of(api, ns, "bad") if e["reason"] == "Failed"])[0]
    assert failed["message"] == f"Error: {message}"
    assert list(tmp_path.iterdir()) == []  # nothing was created, inside or outside
    delete_pod(api, ns, "bad")


# --- ReadWriteOncePod -------------------------------------------------------------------------

def claim_pod(name: str, claim: str, script: str = "exec sleep 3600",
              policy: str = "Always") -> dict:
    return pod_body(name, [busybox("c", script, volumeMounts=[
        {"name": "data", "mountPath": "/data"}])], restartPolicy=policy,
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": claim}}])


def test_read_write_once_pod_admits_one_pod_at_a_time(api: httpx.Client, ns: str,
                                                      tmp_path: Path) -> None:
    pv = bound_claim(api, ns, "solo", tmp_path / "pv", ("ReadWriteOncePod",))
    create(api, f"/api/v1/namespaces/{ns}/pods", claim_pod("first", "solo"))
    wait_phase(api, ns, "first", "Running")
    create(api, f"/api/v1/namespaces/{ns}/pods", claim_pod("second", "solo"))
    event = wait_for("FailedMount", lambda: [
        e for e in events_of(api, ns, "second") if e["reason"] == "FailedMount"])[0]
    assert event["type"] == "Warning"
    assert event["message"] == (
        f'MountVolume.SetUp failed for volume "{pv}" : volume uses the ReadWriteOncePod '
        f'access mode and is already in use by another pod')
    second = get_pod(api, ns, "second")
    assert second is not None and second["status"]["phase"] == "Pending"
    assert second["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == (
        "ContainerCreating")
    assert not pod_containers(second)
    delete_pod(api, ns, "first")
    wait_phase(api, ns, "second", "Running")
    delete_pod(api, ns, "second")


def test_read_write_once_pod_is_released_when_the_pod_finishes(api: httpx.Client, ns: str,
                                                               tmp_path: Path) -> None:
    """A finished pod gives its volumes back (as Kubernetes unmounts a terminated pod's
    volumes), so the next pod on the claim starts while the first is still listed."""
    bound_claim(api, ns, "job", tmp_path / "pv", ("ReadWriteOncePod",))
    create(api, f"/api/v1/namespaces/{ns}/pods",
           claim_pod("step-1", "job", "echo one > /data/log", "Never"))
    wait_phase(api, ns, "step-1", "Succeeded")
    create(api, f"/api/v1/namespaces/{ns}/pods",
           claim_pod("step-2", "job", "cat /data/log; exec sleep 3600"))
    step2 = wait_phase(api, ns, "step-2", "Running")
    assert docker_exec(step2, "c", "cat", "/data/log") == "one\n"
    assert get_pod(api, ns, "step-1")["status"]["phase"] == "Succeeded"  # type: ignore[index]
    delete_pod(api, ns, "step-2")
    delete_pod(api, ns, "step-1")


# --- init containers --------------------------------------------------------------------------

def init_pod(name: str, first: str, policy: str = "Always") -> dict:
    mounts = [{"name": "work", "mountPath": "/work"}]
    return pod_body(name, [busybox("app", "cat /work/log; exec sleep 3600",
                                   volumeMounts=mounts)],
                    restartPolicy=policy,
                    initContainers=[busybox("first", first, volumeMounts=mounts),
                                    busybox("second", "echo second >> /work/log",
                                            volumeMounts=mounts)],
                    volumes=[{"name": "work", "emptyDir": {}}])


def test_init_containers_run_in_order_before_the_app(api: httpx.Client, ns: str,
                                                     tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    body = init_pod("ordered", "echo first >> /work/log; "
                               "while [ ! -e /gate/open ]; do sleep 0.1; done")
    body["spec"]["initContainers"][0]["volumeMounts"].append(
        {"name": "gate", "mountPath": "/gate"})
    body["spec"]["volumes"].append({"name": "gate", "hostPath": {"path": str(gate)}})
    create(api, f"/api/v1/namespaces/{ns}/pods", body)

    def first_running() -> dict | None:
        pod = get_pod(api, ns, "ordered") or {}
        statuses = (pod.get("status") or {}).get("initContainerStatuses") or []
        return pod if statuses and "running" in statuses[0]["state"] else None
    pod = wait_for("first init container running", first_running)
    st = pod["status"]
    assert st["phase"] == "Pending"
    assert [s["state"].get("waiting", {}).get("reason") for s in st["initContainerStatuses"]
            ] == [None, "PodInitializing"]
    assert st["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    initialized = condition(pod, "Initialized")
    assert (initialized["status"], initialized["reason"], initialized["message"]) == (
        "False", "ContainersNotInitialized", "containers with incomplete status: [first second]")
    assert condition(pod, "Ready")["message"] == "containers with unready status: [app]"

    (gate / "open").touch()
    pod = wait_phase(api, ns, "ordered", "Running")
    assert docker_exec(pod, "app", "cat", "/work/log") == "first\nsecond\n"
    for s in pod["status"]["initContainerStatuses"]:
        assert s["state"]["terminated"]["reason"] == "Completed" and s["ready"] is True
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]} == {
        "PodScheduled": "True", "Initialized": "True", "ContainersReady": "True",
        "Ready": "True"}
    started = [e["involvedObject"].get("fieldPath") for e in events_of(api, ns, "ordered")
               if e["reason"] == "Started"]
    assert sorted(started) == ["spec.containers{app}", "spec.initContainers{first}",
                               "spec.initContainers{second}"]
    delete_pod(api, ns, "ordered")


def test_failed_init_container_fails_a_never_pod(api: httpx.Client, ns: str) -> None:
    create(api, f"/api/v1/namespaces/{ns}/pods", init_pod("broken", "exit 3", "Never"))
    pod = wait_phase(api, ns, "broken", "Failed")
    first, second = pod["status"]["initContainerStatuses"]
    assert first["state"]["terminated"]["exitCode"] == 3 and first["ready"] is False
    assert second["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert pod["status"]["containerStatuses"][0]["state"] == {
        "waiting": {"reason": "PodInitializing"}}
    assert condition(pod, "Initialized")["message"] == (
        "containers with incomplete status: [first second]")
    names = {c["Labels"]["io.kubernetes.container.name"] for c in pod_containers(pod)}
    assert names == {"first"}  # neither the second init container nor the app ever ran
    delete_pod(api, ns, "broken")


def test_failed_init_container_restarts_under_always(api: httpx.Client, ns: str) -> None:
    create(api, f"/api/v1/namespaces/{ns}/pods", init_pod("retry", "exit 1"))

    def restarted() -> dict | None:
        pod = get_pod(api, ns, "retry") or {}
        statuses = (pod.get("status") or {}).get("initContainerStatuses") or [{}]
        return pod if statuses[0].get("restartCount", 0) >= 2 else None
    pod = wait_for("init container restarts", restarted, timeout=40)
    assert pod["status"]["phase"] == "Pending"
    first = pod["status"]["initContainerStatuses"][0]
    assert first["lastState"]["terminated"]["exitCode"] == 1
    backoff = wait_for("BackOff", lambda: [e for e in events_of(api, ns, "retry")
                                           if e["reason"] == "BackOff"])[0]
    assert backoff["involvedObject"]["fieldPath"] == "spec.initContainers{first}"
    names = {c["Labels"]["io.kubernetes.container.name"] for c in pod_containers(pod)}
    assert names == {"first"}
    delete_pod(api, ns, "retry")


# --- one network namespace per pod ------------------------------------------------------------

def test_containers_of_a_pod_share_its_network(api: httpx.Client, ns: str) -> None:
    """As in Kubernetes: one IP per pod, containers reach each other on localhost, and the
    pod's hostname is its name; the namespace is held by a sandbox container."""
    create(api, f"/api/v1/namespaces/{ns}/pods", pod_body("net", [
        busybox("server", "mkdir -p /www && echo from-server > /www/index.html && "
                          "exec httpd -f -p 8080 -h /www"),
        busybox("client", "exec sleep 3600")]))
    pod = wait_phase(api, ns, "net", "Running")
    answer = wait_for("localhost answer", lambda: _wget(pod))
    assert answer == "from-server\n"
    assert docker_exec(pod, "client", "hostname").strip() == "net"
    addresses = docker_exec(pod, "client", "ip", "-4", "-o", "addr", "show", "eth0")
    assert f" {pod['status']['podIP']}/" in addresses
    assert docker_exec(pod, "server", "ip", "-4", "-o", "addr", "show", "eth0") == addresses
    sandbox = pod_containers(pod, "podsandbox")
    assert len(sandbox) == 1 and sandbox[0]["State"] == "running"
    assert sandbox[0]["Names"][0].startswith("/k8s_POD_net_")
    delete_pod(api, ns, "net")
    wait_for("sandbox and containers removed",
             lambda: not pod_containers(pod, "podsandbox") and not pod_containers(pod))


def _wget(pod: dict) -> str | None:
    import docker
    found = docker.from_env().containers.list(filters={"label": [
        f"io.kubernetes.pod.uid={pod['metadata']['uid']}", "io.kubernetes.container.name=client"]})
    code, out = found[0].exec_run(["wget", "-qO-", "http://localhost:8080/"])
    return out.decode() if code == 0 else None
