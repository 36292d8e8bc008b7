"""The kubelet against a real apiserver and real Docker: node registration, a pod whose
containers see emptyDir, configMap, secret, hostPath and PVC volumes with the right modes
and filesystems, live configMap updates, data outliving its pod, subPath escapes refused,
deletion confirmed, and no mount leaked."""

from __future__ import annotations

import functools
import uuid
from pathlib import Path

import httpx

from tests.conftest import ApiServer
from tests.node.harness import (
    KubeletProcess,
    b64,
    bound_claim,
    busybox,
    create,
    docker_exec,
    events_of,
    get_pod,
    kubelet_containers,
    mounts_under,
    one_node_fixtures,
    wait_for,
    wait_phase,
)

NODE = "node-a"


cluster, server = one_node_fixtures(NODE)


def test_node_registers_with_lease(api: httpx.Client) -> None:
    def ready_node() -> dict | None:
        r = api.get(f"/api/v1/nodes/{NODE}")
        return r.json() if r.status_code == 200 and "conditions" in r.json().get(
            "status", {}) else None
    node = wait_for("node", ready_node)
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == NODE
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True" and ready[0]["reason"] == "KubeletReady"
    assert int(node["status"]["capacity"]["pods"]) == 110
    path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{NODE}"
    lease = wait_for("lease", lambda: api.get(path).json()
                     if api.get(path).status_code == 200 else None)
    assert lease["spec"]["holderIdentity"] == NODE
    assert lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]


def test_kubelet_restores_ready_after_the_controller_marked_it_unknown(
        api: httpx.Client) -> None:
    """What the node lifecycle controller writes after missed heartbeats; a live kubelet
    must put Ready=True back within a heartbeat, not after its 60 s status period."""
    wait_for("node", lambda: api.get(f"/api/v1/nodes/{NODE}").status_code == 200 or None)
    for _ in range(10):
        node = api.get(f"/api/v1/nodes/{NODE}").json()
        for condition in node["status"]["conditions"]:
            if condition["type"] == "Ready":
                condition.update(status="Unknown", reason="NodeStatusUnknown",
                                 message="Kubelet stopped posting node status.")
        if api.put(f"/api/v1/nodes/{NODE}/status", json=node).status_code == 200:
            break

    def ready_again() -> bool | None:
        conditions = api.get(f"/api/v1/nodes/{NODE}").json()["status"]["conditions"]
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) or None
    wait_for("Ready=True again", ready_again, 30)


def full_pod(ns: str, name: str, claim: str, host_dir: Path) -> dict:
    mounts = [{"name": "shared", "mountPath": "/shared"},
              {"name": "cfg", "mountPath": "/etc/cfg"},
              {"name": "sec", "mountPath": "/etc/sec"},
              {"name": "host", "mountPath": "/host"},
              {"name": "data", "mountPath": "/data"}]
    env = [{"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "color"}}},
           {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds",
                                                               "key": "password"}}},
           {"name": "MISSING", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "x",
                                                              "optional": True}}},
           {"name": "GREETING", "value": "hello-$(COLOR)"}]
    return {"metadata": {"name": name, "namespace": ns}, "spec": {
        "nodeName": NODE, "restartPolicy": "Always", "terminationGracePeriodSeconds": 1,
        "containers": [
            busybox("writer", "echo from-writer > /shared/note; exec sleep 3600",
                    volumeMounts=mounts, env=env, envFrom=[{"configMapRef": {"name": "app"},
                                                            "prefix": "CM_"}],
                    workingDir="/shared", resources={"limits": {"memory": "64Mi"}}),
            busybox("reader", "exec sleep 3600",
                    volumeMounts=[{"name": "shared", "mountPath": "/in"}])],
        "volumes": [
            {"name": "shared", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "app", "defaultMode": 0o640,
                                          "items": [{"key": "color", "path": "color"},
                                                    {"key": "conf", "path": "sub/app.conf",
                                                     "mode": 0o600}]}},
            {"name": "sec", "secret": {"secretName": "creds", "defaultMode": 0o400}},
            {"name": "host", "hostPath": {"path": str(host_dir / "host"),
                                          "type": "DirectoryOrCreate"}},
            {"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}}


def test_pod_with_every_volume(api: httpx.Client, ns: str,
                               cluster: tuple[ApiServer, KubeletProcess], tmp_path: Path) -> None:
    create(api, f"/api/v1/namespaces/{ns}/configmaps", {
        "metadata": {"name": "app"}, "data": {"color": "blue", "conf": "a=1"}})
    create(api, f"/api/v1/namespaces/{ns}/secrets", {
        "metadata": {"name": "creds"}, "data": {"password": b64("s3cret")}})
    bound_claim(api, ns, "data", tmp_path / "pv")
    create(api, f"/api/v1/namespaces/{ns}/pods", full_pod(ns, "app", "data", tmp_path))
    pod = wait_phase(api, ns, "app", "Running")
    assert pod["status"]["podIP"].count(".") == 3 and pod["status"]["hostIP"] == "127.0.0.1"
    conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conditions == {"PodScheduled": "True", "Initialized": "True",
                          "ContainersReady": "True", "Ready": "True"}
    assert {s["name"]: s["restartCount"] for s in pod["status"]["containerStatuses"]} == {
        "writer": 0, "reader": 0}

    env = docker_exec(pod, "writer", "env")
    assert "COLOR=blue" in env and "PASSWORD=s3cret" in env and "GREETING=hello-blue" in env
    assert "CM_conf=a=1" in env and "MISSING" not in env
    assert docker_exec(pod, "writer", "pwd").strip() == "/shared"
    wait_for("shared note", lambda: "from-writer" in docker_exec(pod, "reader", "cat",
                                                                  "/in/note"))
    assert docker_exec(pod, "writer", "cat", "/etc/cfg/color") == "blue"
    modes = docker_exec(pod, "writer", "stat", "-L", "-c", "%a %n", "/etc/cfg/color",
                        "/etc/cfg/sub/app.conf", "/etc/sec/password")
    assert modes.split("\n")[:3] == ["640 /etc/cfg/color", "600 /etc/cfg/sub/app.conf",
                                     "400 /etc/sec/password"]
    assert docker_exec(pod, "writer", "cat", "/etc/sec/password") == "s3cret"
    mounts = docker_exec(pod, "writer", "cat", "/proc/mounts")
    assert any(line.split()[1] == "/etc/sec" and line.split()[2] == "tmpfs"
               for line in mounts.splitlines()), mounts
    docker_exec(pod, "writer", "sh", "-c", "echo h > /host/h; echo kept > /data/kept")
    assert (tmp_path / "host" / "h").read_text() == "h\n"
    assert (tmp_path / "pv" / "kept").read_text() == "kept\n"
    memory = docker_exec(pod, "writer", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert int(memory) == 64 * 1024 * 1024

    # A configMap update reaches the mounted file, all at once, through ..data.
    r = api.patch(f"/api/v1/namespaces/{ns}/configmaps/app", json={"data": {"color": "red"}},
                  headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200
    wait_for("configMap update", lambda: docker_exec(pod, "writer", "cat",
                                                     "/etc/cfg/color") == "red", timeout=20)
    link = docker_exec(pod, "writer", "readlink", "/etc/cfg/color").strip()
    assert link == "..data/color"

    # Deleting the pod stops it, unmounts, removes its directory, and confirms deletion.
    root = cluster[1].root
    uid = pod["metadata"]["uid"]
    assert api.delete(f"/api/v1/namespaces/{ns}/pods/app").status_code in (200, 202)
    wait_for("pod gone", lambda: get_pod(api, ns, "app") is None, timeout=30)
    def killing() -> list[tuple[str, str]] | None:
        found = sorted((e["involvedObject"]["fieldPath"], e["message"])
                       for e in events_of(api, ns, "app") if e["reason"] == "Killing")
        return found if len(found) >= 2 else None
    stopping = wait_for("Killing events", killing)
    assert stopping == [("spec.containers{reader}", "Stopping container reader"),
                        ("spec.containers{writer}", "Stopping container writer")]
    wait_for("pod dir removed", lambda: not (root / "pods" / uid).exists())
    assert not mounts_under(root)
    assert (tmp_path / "pv" / "kept").read_text() == "kept\n"  # the PV's data is untouched

    # Recreated, the pod finds its data on the claim.
    create(api, f"/api/v1/namespaces/{ns}/pods", full_pod(ns, "app", "data", tmp_path))
    pod = wait_phase(api, ns, "app", "Running")
    assert docker_exec(pod, "writer", "cat", "/data/kept") == "kept\n"
    api.delete(f"/api/v1/namespaces/{ns}/pods/app")
    wait_for("pod gone", lambda: get_pod(api, ns, "app") is None, timeout=30)
    assert not mounts_under(root)


def test_subpath_escape_is_refused(api: httpx.Client, ns: str, tmp_path: Path,
                                   cluster: tuple[ApiServer, KubeletProcess]) -> None:
    host = tmp_path / "vol"
    host.mkdir()
    (host / "escape").symlink_to("/etc")
    secret_file = Path("/etc/hostname")
    create(api, f"/api/v1/namespaces/{ns}/pods", {
        "metadata": {"name": "sneaky"}, "spec": {
            "nodeName": NODE, "terminationGracePeriodSeconds": 0,
            "containers": [busybox("c", "sleep 3600", volumeMounts=[
                {"name": "v", "mountPath": "/x", "subPath": "escape"}])],
            "volumes": [{"name": "v", "hostPath": {"path": str(host)}}]}})

    def waiting_reason() -> dict | None:
        pod = get_pod(api, ns, "sneaky") or {}
        for s in (pod.get("status") or {}).get("containerStatuses") or []:
            if "waiting" in s["state"] and s["state"]["waiting"]["reason"] != "ContainerCreating":
                return dict(s["state"]["waiting"])
        return None
    state = wait_for("config error", waiting_reason)
    assert state["reason"] == "CreateContainerConfigError"
    assert "subPath" in state["message"]
    assert secret_file.exists()
    assert not [m for m in mounts_under(cluster[1].root) if "volume-subpaths" in m]
    api.delete(f"/api/v1/namespaces/{ns}/pods/sneaky")
    wait_for("pod gone", lambda: get_pod(api, ns, "sneaky") is None, timeout=30)


def test_restart_policies(api: httpx.Client, ns: str) -> None:
    base = {"nodeName": NODE, "terminationGracePeriodSeconds": 0}
    create(api, f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": "never"}, "spec": {
        **base, "restartPolicy": "Never", "containers": [busybox("c", "exit 3")]}})
    create(api, f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": "done"}, "spec": {
        **base, "restartPolicy": "OnFailure", "containers": [busybox("c", "exit 0")]}})
    create(api, f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": "crash"}, "spec": {
        **base, "restartPolicy": "Always", "containers": [busybox("c", "exit 1")]}})
    failed = wait_phase(api, ns, "never", "Failed")
    term = failed["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (3, "Error")
    done = wait_phase(api, ns, "done", "Succeeded")
    assert done["status"]["containerStatuses"][0]["restartCount"] == 0

    def restarted() -> dict | None:
        pod = get_pod(api, ns, "crash") or {}
        statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
        return pod if statuses[0].get("restartCount", 0) >= 2 else None
    crash = wait_for("restarts", restarted, timeout=30)
    status = crash["status"]["containerStatuses"][0]
    assert status["lastState"]["terminated"]["exitCode"] == 1
    wanted = {"Pulled", "Created", "Started", "BackOff"}
    wait_for("events", lambda: wanted <= {e["reason"] for e in events_of(api, ns, "crash")})
    backoff = next(e for e in events_of(api, ns, "crash") if e["reason"] == "BackOff")
    assert backoff["type"] == "Warning"
    assert backoff["involvedObject"]["fieldPath"] == "spec.containers{c}"
    assert backoff["message"] == (f"Back-off restarting failed container c in pod crash_{ns}"
                                  f"({crash['metadata']['uid']})")
    # Each restart repeats Started: one event whose count grows, as kubectl describe shows.
    started = wait_for("Started counted again", lambda: [
        e for e in events_of(api, ns, "crash") if e["reason"] == "Started"
        and e.get("count", 1) >= 2])
    assert [e["reason"] for e in events_of(api, ns, "crash")].count("Started") == 1
    assert started[0]["lastTimestamp"] >= started[0]["firstTimestamp"]


def test_restarted_kubelet_adopts_and_cleans(api: httpx.Client, ns: str,
                                             cluster: tuple[ApiServer, KubeletProcess]) -> None:
    kubelet = cluster[1]
    for name in ("keep", "gone"):
        create(api, f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": name}, "spec": {
            "nodeName": NODE, "terminationGracePeriodSeconds": 0,
            "containers": [busybox("c", "sleep 3600")],
            "volumes": [{"name": "scratch", "emptyDir": {"medium": "Memory",
                                                         "sizeLimit": "8Mi"}}]}})
    keep = wait_phase(api, ns, "keep", "Running")
    gone = wait_phase(api, ns, "gone", "Running")
    kept_id = keep["status"]["containerStatuses"][0]["containerID"]
    gone_dir = kubelet.root / "pods" / gone["metadata"]["uid"]
    assert any("size=8192k" in m for m in mounts_under(gone_dir))  # sizeLimit honoured
    kubelet.stop()
    r = api.delete(f"/api/v1/namespaces/{ns}/pods/gone", params={"gracePeriodSeconds": "0"})
    assert r.status_code in (200, 202), r.text
    kubelet.start()
    wait_for("orphan removed", lambda: not gone_dir.exists(), timeout=30)
    assert not mounts_under(gone_dir)
    # Removal of orphaned containers may wait a little while other pods start.
    wait_for("orphaned containers removed",
             lambda: not [n for n in kubelet_containers(kubelet.root) if "_gone_" in n])
    keep = wait_phase(api, ns, "keep", "Running")
    status = keep["status"]["containerStatuses"][0]
    assert (status["containerID"], status["restartCount"]) == (kept_id, 0)


def test_failed_mount_then_recovers(api: httpx.Client, ns: str) -> None:
    create(api, f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": "waits"}, "spec": {
        "nodeName": NODE, "terminationGracePeriodSeconds": 0,
        "containers": [busybox("c", "cat /cfg/k; sleep 3600",
                               volumeMounts=[{"name": "cfg", "mountPath": "/cfg"},
                                             {"name": "opt", "mountPath": "/opt"}])],
        "volumes": [{"name": "cfg", "configMap": {"name": "later"}},
                    {"name": "opt", "configMap": {"name": "absent", "optional": True}}]}})
    event = wait_for("FailedMount", lambda: [e for e in events_of(api, ns, "waits")
                                             if e["reason"] == "FailedMount"])[0]
    assert event["type"] == "Warning"
    assert event["message"] == ('MountVolume.SetUp failed for volume "cfg" : '
                                'configmap "later" not found')
    assert event["source"] == {"component": "kubelet", "host": NODE}
    # The event and the status leave separately: wait for the status too.
    pod = wait_for("status", lambda: (get_pod(api, ns, "waits") or {}).get("status", {})
                   .get("containerStatuses") and get_pod(api, ns, "waits"))
    assert pod["status"]["phase"] == "Pending"
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "ContainerCreating"
    create(api, f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "later"},
                                                        "data": {"k": "v"}})
    pod = wait_phase(api, ns, "waits", "Running")
    # Optional and absent: no files, only the atomic writer's own ..data entries.
    assert docker_exec(pod, "c", "ls", "/opt") == ""
    assert docker_exec(pod, "c", "cat", "/cfg/k") == "v"


def test_unbound_claim_and_wrong_hostpath_type(api: httpx.Client, ns: str,
                                               tmp_path: Path) -> None:
    create(api, f"/api/v1/namespaces/{ns}/persistentvolumeclaims", {
        "metadata": {"name": "pending"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    (tmp_path / "file").write_text("x")
    for name, volume in (("claim", {"persistentVolumeClaim": {"claimName": "pending"}}),
                         ("typed", {"hostPath": {"path": str(tmp_path / "file"),
                                                 "type": "Directory"}})):
        create(api, f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": name}, "spec": {
            "nodeName": NODE, "terminationGracePeriodSeconds": 0,
            "containers": [busybox("c", "sleep 3600",
                                   volumeMounts=[{"name": "v", "mountPath": "/v"}])],
            "volumes": [{"name": "v", **volume}]}})
    expected = {
        "claim": f'MountVolume.SetUp failed for volume "v" : PVC {ns}/pending has non-bound '
                 f'phase ("Pending") or empty pvc.Spec.VolumeName ("")',
        "typed": f'MountVolume.SetUp failed for volume "v" : hostPath type check failed: '
                 f'{tmp_path / "file"} is not a directory'}
    for name, message in expected.items():
        found = wait_for(f"FailedMount of {name}", functools.partial(
            failed_mounts, api, ns, name))
        assert found[0] == message


def failed_mounts(api: httpx.Client, ns: str, name: str) -> list[str]:
    return [e["message"] for e in events_of(api, ns, name) if e["reason"] == "FailedMount"]


def test_read_only_claim_and_config_errors(api: httpx.Client, ns: str, tmp_path: Path) -> None:
    bound_claim(api, ns, "ro", tmp_path / "pv")
    create(api, f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "cm"},
                                                        "data": {"k": "v"}})
    create(api, f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": "reader"}, "spec": {
        "nodeName": NODE, "terminationGracePeriodSeconds": 0,
        "containers": [busybox("c", "sleep 3600",
                               volumeMounts=[{"name": "v", "mountPath": "/v"}])],
        "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "ro",
                                                            "readOnly": True}}]}})
    create(api, f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": "badenv"}, "spec": {
        "nodeName": NODE, "terminationGracePeriodSeconds": 0,
        "containers": [busybox("c", "sleep 3600", env=[{"name": "X", "valueFrom": {
            "configMapKeyRef": {"name": "cm", "key": "missing"}}}])]}})
    pod = wait_phase(api, ns, "reader", "Running")
    assert "/v" in [line.split()[1] for line in docker_exec(
        pod, "c", "cat", "/proc/mounts").splitlines() if " ro," in line]
    import docker
    container = docker.from_env().containers.list(filters={"label": [
        f"io.kubernetes.pod.uid={pod['metadata']['uid']}",
        "io.kubernetes.container.name=c"]})[0]
    code, _ = container.exec_run(["touch", "/v/x"])
    assert code != 0 and not (tmp_path / "pv" / "x").exists()

    def config_error() -> dict | None:
        found = get_pod(api, ns, "badenv") or {}
        for s in (found.get("status") or {}).get("containerStatuses") or []:
            return dict(s["state"].get("waiting") or {}) or None
        return None
    waiting = wait_for("CreateContainerConfigError", config_error)
    assert waiting == {"reason": "CreateContainerConfigError",
                       "message": f"couldn't find key missing in ConfigMap {ns}/cm"}


def test_two_kubelets_share_the_machine(api: httpx.Client, ns: str,
                                        cluster: tuple[ApiServer, KubeletProcess]) -> None:
    server, kubelet_a = cluster
    kubelet_b = KubeletProcess(server, "node-b", kubelet_a.root.parent / "root-b").start()
    try:
        create(api, f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": "on-b"}, "spec": {
            "nodeName": "node-b", "terminationGracePeriodSeconds": 0,
            "containers": [busybox("c", "sleep 3600")],
            "volumes": [{"name": "e", "emptyDir": {}}]}})
        pod = wait_phase(api, ns, "on-b", "Running")
        uid = pod["metadata"]["uid"]
        assert (kubelet_b.root / "pods" / uid / "volumes" / "kubernetes.io~empty-dir"
                / "e").is_dir()
        assert not (kubelet_a.root / "pods" / uid).exists()
        assert [n for n in kubelet_containers(kubelet_b.root) if "_on-b_" in n]
        assert not [n for n in kubelet_containers(kubelet_a.root) if "_on-b_" in n]
        assert api.get("/api/v1/nodes/node-b").status_code == 200
        api.delete(f"/api/v1/namespaces/{ns}/pods/on-b")
        wait_for("b cleaned", lambda: not kubelet_containers(kubelet_b.root), timeout=30)
        wait_for("b dir removed", lambda: not (kubelet_b.root / "pods" / uid).exists())
    finally:
        kubelet_b.stop()


def test_subpath_inside_volumes(api: httpx.Client, ns: str) -> None:
    create(api, f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "files"},
                                                        "data": {"app.conf": "x=1"}})
    create(api, f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": "sub"}, "spec": {
        "nodeName": NODE, "terminationGracePeriodSeconds": 0,
        "containers": [busybox("c", "sleep 3600", volumeMounts=[
            {"name": "scratch", "mountPath": "/deep", "subPath": "a/b"},
            {"name": "scratch", "mountPath": "/all"},
            {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf"}])],
        "volumes": [{"name": "scratch", "emptyDir": {}},
                    {"name": "cfg", "configMap": {"name": "files"}}]}})
    pod = wait_phase(api, ns, "sub", "Running")
    docker_exec(pod, "c", "sh", "-c", "echo deep > /deep/f")
    assert docker_exec(pod, "c", "cat", "/all/a/b/f") == "deep\n"
    assert docker_exec(pod, "c", "cat", "/etc/app.conf") == "x=1"


def test_graceful_pod_deletion_answers_200(sqlite_server: ApiServer) -> None:
    with sqlite_server.client() as api:
        ns = f"t-{uuid.uuid4().hex[:8]}"
        create(api, "/api/v1/namespaces", {"metadata": {"name": ns}})
        create(api, f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": "p"}, "spec": {
            "nodeName": "no-kubelet-here", "terminationGracePeriodSeconds": 30,
            "containers": [busybox("c", "sleep 1")]}})
        r = api.delete(f"/api/v1/namespaces/{ns}/pods/p")
        body = r.json()
        assert body["kind"] == "Pod" and body["metadata"]["deletionTimestamp"]
        assert body["metadata"]["deletionGracePeriodSeconds"] == 30
        assert r.status_code == 200
