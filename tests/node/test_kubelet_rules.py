"""The kubelet's rules as tables, without Docker: pod phase and conditions with init
containers, emptyDir usage and the eviction decision, subPathExpr expansion and checks,
restart decisions, pod workers, and the ReadWriteOncePod in-use check on real bind mounts."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from kubelet import (
    agent,
    containers,
    envvars,
    eviction,
    mount,
    runtime,
    server,
    status,
    volumes,
)
from tests.node.harness import require_node_env


def st(name: str, state: dict, last: dict | None = None, ready: bool = False) -> dict:
    return {"name": name, "state": state, "lastState": last or {}, "ready": ready}


RUNNING: dict = {"running": {}}
DONE = {"terminated": {"exitCode": 0}}
FAILED = {"terminated": {"exitCode": 1}}
WAIT = {"waiting": {"reason": "PodInitializing"}}
BACKOFF = {"waiting": {"reason": "CrashLoopBackOff"}}


@pytest.mark.parametrize("policy,inits,apps,expected", [
    # an init container running or not started keeps the pod Pending
    ("Always", [st("i", RUNNING)], [st("a", WAIT)], "Pending"),
    ("Always", [st("i", DONE), st("j", WAIT)], [st("a", WAIT)], "Pending"),
    # a failed init container fails a Never pod at once
    ("Never", [st("i", FAILED), st("j", WAIT)], [st("a", WAIT)], "Failed"),
    # ... and only waits to be restarted under the other policies
    ("Always", [st("i", BACKOFF, FAILED)], [st("a", WAIT)], "Pending"),
    ("OnFailure", [st("i", FAILED)], [st("a", WAIT)], "Pending"),
    # initialized: the app containers decide
    ("Always", [st("i", DONE)], [st("a", RUNNING)], "Running"),
    ("Never", [st("i", DONE)], [st("a", DONE)], "Succeeded"),
    ("Never", [st("i", DONE)], [st("a", FAILED)], "Failed"),
])
def test_phase_with_init_containers(policy: str, inits: list, apps: list,
                                    expected: str) -> None:
    assert status.phase(policy, apps, len(apps), inits, len(inits)) == expected


def test_phase_counts_init_containers_without_status_as_pending() -> None:
    assert status.phase("Always", [st("a", RUNNING)], 1, [], 1) == "Pending"


@pytest.mark.parametrize("inits,apps,phase,expected", [
    ([st("i", RUNNING), st("j", WAIT)], [st("a", WAIT)], "Pending",
     ("False", "ContainersNotInitialized", "containers with incomplete status: [i j]")),
    ([st("i", DONE, ready=True)], [st("a", WAIT)], "Pending", ("True", None, None)),
    ([st("i", DONE, ready=True)], [st("a", DONE)], "Succeeded", ("True", "PodCompleted", None)),
    ([], [st("a", RUNNING)], "Running", ("True", None, None)),
    # once an app container has run, the pod stays initialized
    ([st("i", WAIT)], [st("a", BACKOFF, FAILED)], "Running", ("True", None, None)),
])
def test_initialized_condition(inits: list, apps: list, phase: str, expected: tuple) -> None:
    c = status.initialized([s["name"] for s in inits], inits, apps, phase)
    assert (c["status"], c.get("reason"), c.get("message")) == expected


def test_initialized_condition_names_unknown_init_containers() -> None:
    c = status.initialized(["i", "j"], [st("i", DONE, ready=True)], [], "Pending")
    assert c["message"] == "containers with unknown status: [j]"


@pytest.mark.parametrize("phase,reason", [("Failed", "PodFailed"),
                                          ("Succeeded", "PodCompleted")])
def test_terminal_pods_are_not_ready(phase: str, reason: str) -> None:
    got = status.conditions([], phase, [st("a", FAILED)], ["a"], "T")
    ready = {c["type"]: c for c in got}["Ready"]
    assert (ready["status"], ready["reason"], ready.get("message")) == ("False", reason, None)


@pytest.mark.parametrize("kind,policy,code,expected", [
    (containers.INIT, "Always", 0, False), (containers.INIT, "Always", 1, True),
    (containers.INIT, "OnFailure", 1, True), (containers.INIT, "Never", 1, False),
    (containers.APP, "Always", 0, True), (containers.APP, "OnFailure", 0, False),
    (containers.APP, "OnFailure", 2, True), (containers.APP, "Never", 2, False),
])
def test_restart_rules(kind: str, policy: str, code: int, expected: bool) -> None:
    assert containers.should_restart(kind, policy, code) is expected


# --- subPathExpr ------------------------------------------------------------------------------

@pytest.mark.parametrize("mount_spec,env,expected", [
    ({"subPath": "plain"}, {}, "plain"),
    ({"subPathExpr": "$(POD)/logs"}, {"POD": "web-0"}, "web-0/logs"),
    ({"subPathExpr": "$$(POD)"}, {"POD": "web-0"}, "$(POD)"),
    ({"subPathExpr": "a$(X)b$(Y)"}, {"X": "1", "Y": "2"}, "a1b2"),
    ({}, {}, ""),
])
def test_sub_path_expr(mount_spec: dict, env: dict, expected: str) -> None:
    assert containers.mount_sub_path(mount_spec, env) == expected


@pytest.mark.parametrize("mount_spec,env,message", [
    ({"subPathExpr": "$(A)/$(B)"}, {"A": "x"}, "missing value for B"),
    ({"subPathExpr": "$(Z)$(A)"}, {"A": ""}, "missing value for A, Z"),
    ({"subPathExpr": "$(R)"}, {"R": "/etc"}, "error SubPath `/etc` must not be an absolute path"),
    ({"subPathExpr": "$(U)/x"}, {"U": ".."},
     "unable to provision SubPath `../x`: must not contain '..'"),
    ({"subPath": "a/../../b"}, {}, "unable to provision SubPath `a/../../b`: must not contain '..'"),
])
def test_bad_sub_path_expr(mount_spec: dict, env: dict, message: str) -> None:
    with pytest.raises(envvars.ContainerConfigError) as e:
        containers.mount_sub_path(mount_spec, env)
    assert str(e.value) == message


# --- emptyDir usage and the eviction decision -----------------------------------------------

def test_disk_usage_counts_allocated_blocks_once(tmp_path: Path) -> None:
    base = tmp_path / "vol"
    (base / "sub").mkdir(parents=True)
    (base / "sub" / "data").write_bytes(os.urandom(300_000))
    os.link(base / "sub" / "data", base / "hardlink")  # the same blocks, counted once
    (base / "link").symlink_to("/usr")  # never followed
    with open(base / "sparse", "wb") as f:
        f.truncate(50_000_000)  # no blocks allocated: du counts nothing
    used = eviction.disk_usage(base)
    assert 300_000 <= used < 400_000
    assert eviction.disk_usage(tmp_path / "missing") == 0


def empty_dir_pod(**source: object) -> dict:
    return {"metadata": {"uid": "u", "name": "p"}, "spec": {"volumes": [
        {"name": "cfg", "configMap": {"name": "x"}},
        {"name": "scratch", "emptyDir": source}]}}


def over(limit: str) -> str:
    return f'Usage of EmptyDir volume "scratch" exceeds the limit "{limit}". '


@pytest.mark.parametrize("source,used,expected", [
    ({"sizeLimit": "1Mi"}, 1024 * 1024, None),  # at the limit is not over it
    ({"sizeLimit": "1Mi"}, 1024 * 1024 + 1, over("1Mi")),
    # the limit as Quantity.String() writes it: a decimal number stays decimal
    ({"sizeLimit": "1048576"}, 2 * 1024 * 1024, over("1048576")),
    ({"sizeLimit": "1024Ki"}, 2 * 1024 * 1024, over("1Mi")),
    ({}, 10**12, None),  # no limit
    ({"sizeLimit": "1Mi", "medium": "Memory"}, 10**12, None),  # a tmpfs cannot overflow
])
def test_eviction_decision(source: dict, used: int, expected: str | None) -> None:
    found = eviction.over_limit(empty_dir_pod(**source), lambda name: used)
    assert (found.message if found else None) == expected


def test_monitor_records_the_pod_over_its_limit(tmp_path: Path) -> None:
    pods = [empty_dir_pod(sizeLimit="100Ki")]
    (tmp_path / "u" / "scratch").mkdir(parents=True)
    woken: list[bool] = []
    monitor = eviction.EmptyDirMonitor(lambda: pods, lambda uid, name: tmp_path / uid / name,
                                       1.0, lambda: woken.append(True))
    monitor.check_all()
    assert monitor.pending("u") is None and not woken
    (tmp_path / "u" / "scratch" / "big").write_bytes(os.urandom(200 * 1024))
    monitor.check_all()
    found = monitor.pending("u")
    assert found == eviction.Eviction("scratch", "100Ki") and woken == [True]
    monitor.forget("u")
    assert monitor.pending("u") is None


# --- pod workers --------------------------------------------------------------------------------

def test_pod_workers_never_run_one_pod_twice_at_once() -> None:
    workers = agent.PodWorkers(4)
    active, runs, overlap = [0], [0], []
    lock = threading.Lock()
    release = threading.Event()

    def work() -> None:
        with lock:
            active[0] += 1
            runs[0] += 1
            overlap.append(active[0])
        release.wait(5)
        with lock:
            active[0] -= 1
    workers.dispatch("a", work)
    time.sleep(0.1)
    for _ in range(5):
        workers.dispatch("a", work)  # coalesced into one more run
    assert workers.busy("a")
    release.set()
    deadline = time.monotonic() + 5
    while workers.busy("a") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runs[0] == 2 and max(overlap) == 1 and not workers.busy("a")


# --- ReadWriteOncePod: what is mounted for whom ----------------------------------------------

def test_mounted_elsewhere_reads_the_mount_table(tmp_path: Path) -> None:
    require_node_env()
    manager = volumes.VolumeManager(tmp_path / "root", objects=_NoObjects())
    source = tmp_path / "pv-data"
    source.mkdir()
    target = manager.volumes_dir("pod-a", volumes.HOST_PATH, "pv-1")
    csi_target = manager.volumes_dir("pod-a", "kubernetes.io~csi", "pv-2") / "mount"
    try:
        mount.bind_mount(source, target)
        mount.bind_mount(source, csi_target)
        assert manager.mounted_elsewhere("pv-1", "pod-b")
        assert manager.mounted_elsewhere("pv-2", "pod-b")
        assert not manager.mounted_elsewhere("pv-1", "pod-a")  # its own mount
        assert not manager.mounted_elsewhere("pv-3", "pod-b")
    finally:
        manager.teardown_pod("pod-a")
    assert not manager.mounted_elsewhere("pv-1", "pod-b")


class _NoObjects:
    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        return None


# --- the pod sandbox on real Docker -------------------------------------------------------------

def sandbox_pod() -> dict:
    return {"metadata": {"uid": f"rules-{os.getpid()}-{time.monotonic_ns()}", "name": "sbx",
                         "namespace": "ns"}, "spec": {"containers": []}}


def test_sandbox_is_made_once_and_replaced_when_it_stopped(tmp_path: Path) -> None:
    require_node_env()
    docker_runtime = runtime.DockerRuntime(str(tmp_path))
    pod = sandbox_pod()
    ids: list[str] = []
    try:
        first = docker_runtime.ensure_sandbox(pod, {}, ids.append)
        assert ids == [first.id] and first.status == "running"
        assert first.attrs["Config"]["Hostname"] == "sbx"
        assert first.name == f"k8s_POD_sbx_ns_{pod['metadata']['uid']}_0"
        assert runtime.address_of(first).count(".") == 3
        assert docker_runtime.ensure_sandbox(pod, {}).id == first.id  # adopted, not remade
        docker_runtime.stop(first, 0)
        second = docker_runtime.ensure_sandbox(pod, {})
        assert second.id != first.id and second.name.endswith("_1")
        assert [c.id for c in docker_runtime.sandboxes(pod["metadata"]["uid"])] == [second.id]
    finally:
        for c in docker_runtime.listing(pod["metadata"]["uid"]):
            docker_runtime.stop_and_remove(c, 0)


def test_sandbox_image_that_cannot_be_pulled(tmp_path: Path) -> None:
    require_node_env()
    missing = "storagelab-no-such-image:never"
    docker_runtime = runtime.DockerRuntime(str(tmp_path),
                                           runtime.SandboxConfig(missing, ("sleep", "1")))
    with pytest.raises(runtime.ImageMissing) as e:
        docker_runtime.ensure_sandbox(sandbox_pod(), {})
    assert str(e.value).startswith(f'failed to pull image "{missing}": ')


def test_logs_and_exec_find_init_containers() -> None:
    """`kubectl logs -c <init container>` answers from initContainerStatuses."""
    pod = {"metadata": {"name": "p"}, "spec": {"initContainers": [{"name": "init"}],
                                               "containers": [{"name": "app"}]},
           "status": {"initContainerStatuses": [{"name": "init", "containerID": "docker://i1",
                                                 "state": {"terminated": {
                                                     "exitCode": 0, "containerID": "docker://i1"}}}],
                      "containerStatuses": [{"name": "app", "containerID": "docker://a1",
                                             "state": {"running": {}}}]}}
    assert server.find_spec_container(pod, "init")
    assert server.log_container_id(pod, "init", previous=False) == "i1"
    assert server.running_container_id(pod, "app") == "a1"
    with pytest.raises(server.LookupFailed):
        server.running_container_id(pod, "init")  # finished: nothing to exec into
