"""The kubelet mounts NFS into pods, against a real apiserver, two kubelet processes, Docker
and a real NFS-Ganesha on loopback: a ReadWriteMany volume shared across nodes (one
reference-counted mount per export per node, adopted by a restarted kubelet), a SQLite
database in WAL mode that outlives its pod and moves to the other node, the e2e volume_io
checksums, a server restart under fsync'd writes, a server down at mount time, and bad input
refused before anything runs. Pure pieces of the plugin are table-tested first."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from csi_like import contract
from csi_like import nfs as nfs_driver
from kubelet import nfs_volumes
from kubelet.mounters import nfs
from storagelab import images
from tests.conftest import REPO, ApiServer
from tests.node.harness import (
    KubeletProcess,
    docker_exec,
    get_pod,
    require_node_env,
    wait_for,
    wait_phase,
)

from .conftest import GaneshaServer

NODE_A, NODE_B = "nfs-node-a", "nfs-node-b"
SQLITE_IMAGE = "storagelab-test-sqlite:latest"


# ---------------------------------------------------------------- pure pieces

@pytest.mark.parametrize("options,node,expected", [
    ([], "auto", ("auto", ())),
    (["vers=3", "mounter=userspace"], "auto", ("userspace", ("vers=3",))),
    (["mounter=kernel,port=2049"], "userspace", ("kernel", ("port=2049",))),
    (["hard"], "kernel", ("kernel", ("hard",))),
])
def test_mounter_option_overrides_the_node(options: list[str], node: nfs.Preference,
                                           expected: tuple[str, tuple[str, ...]]) -> None:
    assert nfs_volumes.split_mounter(options, node) == expected


def test_unknown_mounter_is_refused() -> None:
    with pytest.raises(nfs_volumes.NfsVolumeError, match="mounter must be"):
        nfs_volumes.split_mounter(["mounter=fuse"], "auto")


@pytest.mark.parametrize("defaults,own,expected", [
    (("port=1", "vers=3"), ("port=2",), ("vers=3", "port=2")),
    (("timeo=20",), (), ("timeo=20",)),
    ((), ("ro",), ("ro",)),
])
def test_volume_options_win_over_node_defaults(defaults: tuple[str, ...], own: tuple[str, ...],
                                               expected: tuple[str, ...]) -> None:
    assert nfs_volumes.merge_options(defaults, own) == expected


def test_sources_from_inline_nfs_and_csi_volumes() -> None:
    inline = nfs_volumes.inline_source({"name": "v", "nfs": {"server": "s", "path": "/e",
                                                             "readOnly": True}},
                                       ("vers=3",), "userspace")
    assert inline == nfs_volumes.NfsSource("s", "/e", ("vers=3",), "", True, "userspace")
    pv = {"spec": {"nfs": {"server": "s", "path": "/e"}, "mountOptions": ["mounter=kernel"]}}
    assert nfs_volumes.is_nfs_pv(pv)
    assert nfs_volumes.pv_source(pv).preference == "kernel"
    cls = nfs_driver.parse_class({"server": "10.0.0.9", "share": "/srv/share"})
    volume_id = nfs_driver.volume_id(cls, nfs_driver.Record("pv-1", "pv-1", 1, 0))
    csi = {"spec": {"csi": {"driver": "nfs.storagelab.io", "volumeHandle": volume_id},
                    "mountOptions": ["vers=3"]}}
    assert nfs_volumes.is_nfs_pv(csi)
    assert nfs_volumes.is_nfs_pv({"spec": {"csi": {"driver": "storagelab.io/nfs"}}})
    assert nfs_volumes.pv_source(csi, read_only=True) == nfs_volumes.NfsSource(
        "10.0.0.9", "/srv/share", ("vers=3",), "pv-1", True, "auto")
    assert not nfs_volumes.is_nfs_pv({"spec": {"csi": {"driver": "other"}}})
    with pytest.raises(nfs_volumes.NfsVolumeError):
        nfs_volumes.pv_source({"spec": {"csi": {"driver": "storagelab.io/nfs",
                                                "volumeHandle": "garbage"}}})


class NoMounter:
    """A mounter that must never be asked to mount: validation comes first."""

    def mount(self, server: str, export_path: str, target: str, options: list[str]) -> None:
        raise AssertionError(f"mount ran for {server}:{export_path}")

    def unmount(self, target: str, lazy: bool = True) -> None:
        raise AssertionError("unmount ran")

    def is_mounted(self, target: str) -> bool:
        return False


@pytest.mark.parametrize("server,path,options,fragment", [
    ("srv;touch /tmp/pwned", "/e", ("vers=3",), "invalid NFS server"),
    ("$(reboot)", "/e", ("vers=3",), "invalid NFS server"),
    ("srv", "relative/e", ("vers=3",), "must be an absolute path"),
    ("srv", "/e;rm -rf /", ("vers=3",), "invalid NFS export path"),
    ("srv", "/e", ("vers=3", "evil"), "invalid NFS mount option 'evil'"),
    ("srv", "/e", ("vers=4",), "NFSv3 only"),  # the userspace client cannot write over v4
])
def test_bad_input_is_refused_before_anything_runs(tmp_path: Path, server: str, path: str,
                                                   options: tuple[str, ...],
                                                   fragment: str) -> None:
    never: nfs.NfsMounter = NoMounter()
    plugin = nfs_volumes.NfsVolumes(tmp_path, "userspace", mounters={"userspace": never})
    pod = {"metadata": {"uid": "u1", "name": "p", "namespace": "n"}}
    source = nfs_volumes.NfsSource(server, path, options, preference="userspace")
    with pytest.raises(nfs_volumes.NfsVolumeError, match=fragment.replace("(", r"\(")):
        plugin.setup(pod, tmp_path / "pods" / "u1" / "v", source)
    assert not (tmp_path / "mounts").exists()
    assert not Path("/tmp/pwned").exists()


# ---------------------------------------------------------------- the cluster

class NfsKubelet(KubeletProcess):
    """A kubelet process started with NFS flags."""

    def __init__(self, server: ApiServer, node: str, root: Path, flags: list[str]) -> None:
        super().__init__(server, node, root)
        self.flags = flags

    def start(self) -> NfsKubelet:
        self.root.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "storagelab.cli", "-v", "kubelet", "--node", self.node,
                "--data-dir", str(self.server.data_dir), "--root-dir", str(self.root),
                "--restart-backoff", str(self.backoff), *self.flags]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=log)
        return self


@dataclass
class Cluster:
    server: ApiServer
    a: NfsKubelet
    b: NfsKubelet
    nfs: GaneshaServer
    base: Path


def fuse_mounts_under(root: Path) -> list[str]:
    return [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(str(root)) and line.split()[2] == nfs.FUSE_FSTYPE]


def fuse_processes_under(root: Path) -> list[int]:
    """Pids of FUSE clients whose mount point is below `root` (started by our kubelets)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kubelet.mounters.nfs_fuse" in argv and any(
                a.startswith(str(root).encode()) for a in argv):
            found.append(int(entry.name))
    return found


def kubelet_containers(root: Path) -> list[object]:
    import docker
    return list(docker.from_env().containers.list(
        all=True, sparse=True, filters={"label": f"io.storagelab.kubelet.root={root}"}))


def build_sqlite_image() -> None:
    """busybox plus the host's sqlite3 and the libraries it links (no registry needed)."""
    import docker
    binary = shutil.which("sqlite3")
    assert binary is not None
    libs = [line.split("=>")[-1].split("(")[0].strip() for line in subprocess.run(
        ["ldd", binary], capture_output=True, text=True, check=True).stdout.splitlines()]
    with tempfile.TemporaryDirectory() as context:
        rootfs = Path(context) / "rootfs"
        for path in [binary, *[lib for lib in libs if lib.startswith("/")]]:
            real = Path(os.path.realpath(path))
            destination = rootfs / Path(path).relative_to("/")
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(real, destination)
        (Path(context) / "Dockerfile").write_text("FROM busybox:latest\nCOPY rootfs/ /\n")
        docker.from_env(timeout=120).images.build(path=context, tag=SQLITE_IMAGE, rm=True)


@pytest.fixture(scope="module")
def cluster(ganesha_factory: Callable[[], GaneshaServer],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_node_env()
    images.build_busybox()
    base = tmp_path_factory.mktemp("nfs-cluster")
    server_nfs = ganesha_factory()
    server = ApiServer(base / "api").start()
    defaults = f"port={server_nfs.nfs_port},mountport={server_nfs.mount_port},vers=3,timeo=20"
    a = NfsKubelet(server, NODE_A, base / "root-a", ["--nfs-mount-defaults", defaults])
    b = NfsKubelet(server, NODE_B, base / "root-b",
                   ["--nfs-mounter", "userspace", "--nfs-mount-defaults", defaults])
    a.start()
    b.start()
    try:
        yield Cluster(server, a, b, server_nfs, base)
        if server_nfs.process is None:
            server_nfs.start()  # a test failed while the server was down: let pods go
        with server.client() as api:
            for pod in api.get("/api/v1/pods").json()["items"]:
                api.delete(f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods/"
                           f"{pod['metadata']['name']}")
            wait_for("all pods deleted", lambda: not api.get("/api/v1/pods").json()["items"],
                     timeout=60)
        wait_for("NFS mounts released", lambda: not fuse_mounts_under(base), timeout=30)
    finally:
        a.stop()
        b.stop()
        server.stop()
        _leave_nothing_behind(base)
        server_nfs.stop()


def _leave_nothing_behind(base: Path) -> None:
    """Whatever a failed test left: containers, mounts (lazily), FUSE processes (by pid)."""
    for root in (base / "root-a", base / "root-b"):
        for container in kubelet_containers(root):
            container.remove(force=True)  # type: ignore[attr-defined]
    for line in reversed(Path("/proc/mounts").read_text().splitlines()):
        if line.split()[1].startswith(str(base)):
            subprocess.run(["umount", "-l", line.split()[1]], check=False, timeout=30)
    for pid in fuse_processes_under(base):
        os.kill(pid, signal.SIGTERM)


@pytest.fixture()
def api(cluster: Cluster) -> Iterator[httpx.Client]:
    with cluster.server.client() as client:
        yield client


@pytest.fixture()
def ns(api: httpx.Client) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    assert api.post("/api/v1/namespaces", json={"metadata": {"name": name}}).status_code == 201
    return name


def create(api: httpx.Client, path: str, body: dict) -> dict:
    r = api.post(path, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def bind_claim(api: httpx.Client, ns: str, claim: str, pv_spec: dict) -> str:
    """A PV with `pv_spec` (an nfs or csi source) pre-bound to a new claim, both Bound."""
    pv = f"pv-{uuid.uuid4().hex[:8]}"
    create(api, "/api/v1/persistentvolumes", {"metadata": {"name": pv}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"],
        "claimRef": {"namespace": ns, "name": claim},
        "persistentVolumeReclaimPolicy": "Retain", **pv_spec}})
    create(api, f"/api/v1/namespaces/{ns}/persistentvolumeclaims", {
        "metadata": {"name": claim}, "spec": {
            "accessModes": ["ReadWriteMany"], "volumeName": pv,
            "resources": {"requests": {"storage": "1Gi"}}}})
    for path in (f"/api/v1/persistentvolumes/{pv}/status",
                 f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}/status"):
        r = api.patch(path, json={"status": {"phase": "Bound"}},
                      headers={"Content-Type": "application/merge-patch+json"})
        assert r.status_code == 200, r.text
    return pv


def nfs_pv(cluster: Cluster, directory: Path) -> dict:
    """spec.nfs on the test server, its ports given as the PV's own mountOptions."""
    return {"nfs": {"server": "127.0.0.1", "path": str(directory)},
            "mountOptions": [*cluster.nfs.options, "mounter=userspace", "timeo=20"]}


def pod_body(name: str, node: str, script: list[str] | str, volume: dict,
             image: str = "busybox:latest", grace: int = 0) -> dict:
    command = ["sh", "-c", script] if isinstance(script, str) else script
    return {"metadata": {"name": name}, "spec": {
        "nodeName": node, "terminationGracePeriodSeconds": grace,
        "containers": [{"name": "c", "image": image, "imagePullPolicy": "IfNotPresent",
                        "command": command,
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", **volume}]}}


def run_pod(api: httpx.Client, ns: str, body: dict, timeout: float = 60) -> dict:
    create(api, f"/api/v1/namespaces/{ns}/pods", body)
    return wait_phase(api, ns, body["metadata"]["name"], "Running", timeout=timeout)


def delete_pod(api: httpx.Client, ns: str, name: str) -> None:
    api.delete(f"/api/v1/namespaces/{ns}/pods/{name}")
    wait_for(f"pod {name} gone", lambda: get_pod(api, ns, name) is None, timeout=60)


def events_of(api: httpx.Client, ns: str, pod: str, reason: str) -> list[dict]:
    items = api.get(f"/api/v1/namespaces/{ns}/events").json()["items"]
    return [e for e in items if e["involvedObject"]["name"] == pod and e["reason"] == reason]


def records(root: Path) -> list[nfs_volumes.Record]:
    return [nfs_volumes.Record.load(p.read_text())
            for p in (root / "mounts" / "nfs").glob("*/*.json")]


def export_dir(cluster: Cluster, name: str) -> Path:
    directory = cluster.nfs.export_dir / name
    directory.mkdir(exist_ok=True)
    return directory


# ---------------------------------------------------------------- end to end

def test_rwx_volume_shared_by_pods_on_two_nodes(api: httpx.Client, ns: str,
                                                cluster: Cluster) -> None:
    shared = export_dir(cluster, f"rwx-{ns}")
    bind_claim(api, ns, "shared", nfs_pv(cluster, shared))
    claim = {"persistentVolumeClaim": {"claimName": "shared"}}
    a1 = run_pod(api, ns, pod_body("a1", NODE_A, "echo from-a > /data/note; sleep 3600", claim))
    a2 = run_pod(api, ns, pod_body("a2", NODE_A, "sleep 3600", claim))
    b1 = run_pod(api, ns, pod_body("b1", NODE_B, "sleep 3600", claim))
    wait_for("a's write read on b", lambda: docker_exec(b1, "c", "cat", "/data/note")
             == "from-a\n")
    assert (shared / "note").read_text() == "from-a\n"  # on the server's export directory
    docker_exec(b1, "c", "sh", "-c", "echo from-b > /data/reply")
    wait_for("b's write read on a", lambda: docker_exec(a2, "c", "cat", "/data/reply")
             == "from-b\n")
    # An inline volume of the parent export, on node b, through the node's default options.
    inline = {"nfs": {"server": "127.0.0.1", "path": str(cluster.nfs.export_dir)}}
    b2 = run_pod(api, ns, pod_body("b2", NODE_B, "sleep 3600", inline))
    assert docker_exec(b2, "c", "cat", f"/data/{shared.name}/note") == "from-a\n"

    # One mount per export per node, its users recorded; each pod has a bind of it.
    root_a = cluster.a.root
    assert len(fuse_mounts_under(root_a / "mounts")) == 1
    (record,) = [r for r in records(root_a) if r.shared.export == str(shared)]
    assert record.shared.mounter == ("kernel" if nfs.kernel_supports_nfs() else "userspace")
    assert {Path(u).parts[-4] for u in record.users} == {a1["metadata"]["uid"],
                                                         a2["metadata"]["uid"]}
    assert set(fuse_mounts_under(root_a / "pods")) == record.users
    delete_pod(api, ns, "a1")  # gone at once (grace 0); the kubelet then cleans up
    wait_for("a1 released", lambda: [len(r.users) for r in records(root_a)] == [1])
    assert len(fuse_mounts_under(root_a / "mounts")) == 1  # a2 still uses it

    # A restarted kubelet adopts the mount; the pod keeps running undisturbed.
    container = a2["status"]["containerStatuses"][0]["containerID"]
    cluster.a.stop()
    cluster.a.start()
    time.sleep(3)
    a2 = wait_phase(api, ns, "a2", "Running")
    assert a2["status"]["containerStatuses"][0]["containerID"] == container
    assert docker_exec(a2, "c", "cat", "/data/note") == "from-a\n"
    delete_pod(api, ns, "a2")  # the last user releases the shared mount
    wait_for("node a released", lambda: not fuse_mounts_under(root_a), timeout=20)
    assert records(root_a) == []
    wait_for("FUSE client gone", lambda: not fuse_processes_under(root_a), timeout=20)
    assert [p for p in (root_a / "mounts" / "nfs").glob("*/*")
            if p.parent.name != "logs"] == []  # mount points and records removed
    for name in ("b1", "b2"):
        delete_pod(api, ns, name)
    wait_for("node b released", lambda: not fuse_mounts_under(cluster.b.root), timeout=20)


def test_sqlite_in_wal_mode_survives_its_pod_moving_node(api: httpx.Client, ns: str,
                                                         cluster: Cluster) -> None:
    build_sqlite_image()
    share = str(cluster.nfs.export_dir)
    volume = nfs_driver.NfsDriver().create_volume(contract.CreateVolumeRequest(
        name=f"pv-db-{ns}", capacity_bytes=1 << 30,
        parameters={"server": "127.0.0.1", "share": share, "exportLocalPath": share}))
    bind_claim(api, ns, "db", {
        "csi": {"driver": "nfs.storagelab.io", "volumeHandle": volume.volume_id,
                "volumeAttributes": dict(volume.context)},
        "mountOptions": [*cluster.nfs.options]})
    claim = {"persistentVolumeClaim": {"claimName": "db"}}
    # The database process keeps its connection open: the committed rows stay in the WAL,
    # not yet checkpointed, when the pod is killed.
    # (-bail: "committed" is printed only when every statement before it succeeded.)
    script = ["sqlite3", "-bail", "/data/app.db", "PRAGMA journal_mode=WAL;",
              ("PRAGMA wal_autocheckpoint=0; CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT); "
              "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) "
              "INSERT INTO kv SELECT i, 'v' || i FROM n;"),
              ".shell echo committed", ".shell sleep 3600"]
    first = run_pod(api, ns, pod_body("db", NODE_A, script, claim, SQLITE_IMAGE, grace=1))
    wait_for("rows committed", lambda: "committed" in _logs(first), timeout=30)
    on_server = cluster.nfs.export_dir / volume.context["subDir"]
    assert (on_server / "app.db-wal").stat().st_size > 0
    delete_pod(api, ns, "db")
    assert (on_server / "app.db-wal").stat().st_size > 0  # killed: nothing checkpointed
    second = run_pod(api, ns, pod_body("db", NODE_B, "sleep 3600", claim, SQLITE_IMAGE))
    out = docker_exec(second, "c", "sqlite3", "/data/app.db",
                      "PRAGMA integrity_check; SELECT count(*), sum(k) FROM kv;")
    assert out.split() == ["ok", "1000|500500"]
    delete_pod(api, ns, "db")


def _logs(pod: dict) -> str:
    import docker
    found = docker.from_env().containers.list(all=True, filters={"label": [
        f"io.kubernetes.pod.uid={pod['metadata']['uid']}"]})
    return found[0].logs().decode() if found else ""


@pytest.mark.parametrize("mib", [1, 100] + ([1024] if os.environ.get(
    "STORAGELAB_BENCH_NFS_1GIB") == "1" else []))
def test_volume_io_checksums(api: httpx.Client, ns: str, cluster: Cluster, mib: int) -> None:
    directory = export_dir(cluster, f"io-{ns}")
    bind_claim(api, ns, "io", nfs_pv(cluster, directory))
    claim = {"persistentVolumeClaim": {"claimName": "io"}}
    writer = run_pod(api, ns, pod_body("writer", NODE_A, "sleep 3600", claim))
    docker_exec(writer, "c", "dd", "if=/dev/urandom", "of=/data/f", "bs=1048576",
                f"count={mib}")
    docker_exec(writer, "c", "sync")
    written = docker_exec(writer, "c", "md5sum", "/data/f").split()[0]
    reader = run_pod(api, ns, pod_body("reader", NODE_B, "sleep 3600", claim))
    read_back = docker_exec(reader, "c", "md5sum", "/data/f").split()[0]
    with open(directory / "f", "rb") as f:
        on_server = hashlib.file_digest(f, "md5").hexdigest()
    assert written == read_back == on_server
    assert (directory / "f").stat().st_size == mib << 20
    delete_pod(api, ns, "writer")
    delete_pod(api, ns, "reader")


def test_server_restart_while_a_pod_writes(api: httpx.Client, ns: str,
                                           cluster: Cluster) -> None:
    directory = export_dir(cluster, f"w-{ns}")
    bind_claim(api, ns, "w", nfs_pv(cluster, directory))
    # A line is acknowledged only once fdatasync of the file returned.
    script = ('i=0; while true; do if echo "line $i" >> /data/log && sync -d /data/log; '
              'then echo "acked $i"; i=$((i+1)); else echo "failed $i"; sleep 0.2; fi; done')
    pod = run_pod(api, ns, pod_body("w", NODE_A, script,
                                    {"persistentVolumeClaim": {"claimName": "w"}}))
    wait_for("writes", lambda: _acked(pod) >= 20, timeout=30)
    cluster.nfs.stop()
    try:
        at_stop = _acked(pod)
        wait_for("VolumeConditionAbnormal", lambda: events_of(
            api, ns, "w", "VolumeConditionAbnormal"), timeout=30)
    finally:
        cluster.nfs.start()
    assert "failed" in _logs(pod)  # the outage was seen by the writer
    wait_for("writes resumed", lambda: _acked(pod) >= at_stop + 30, timeout=60)
    event = events_of(api, ns, "w", "VolumeConditionAbnormal")[0]
    assert event["type"] == "Warning" and "127.0.0.1" in event["message"]
    wait_for("VolumeConditionNormal", lambda: events_of(api, ns, "w", "VolumeConditionNormal"),
             timeout=30)
    acked = _acked(pod)  # read before the file: every line it counts was written before
    lines = set((directory / "log").read_text().splitlines())
    delete_pod(api, ns, "w")
    assert acked > at_stop
    missing = [i for i in range(acked) if f"line {i}" not in lines]
    assert missing == []  # nothing acknowledged by fsync is lost


def _acked(pod: dict) -> int:
    return sum(1 for line in _logs(pod).splitlines() if line.startswith("acked "))


def test_server_down_at_mount_time(api: httpx.Client, ns: str, cluster: Cluster) -> None:
    cluster.nfs.stop()
    try:
        inline = {"nfs": {"server": "127.0.0.1", "path": str(cluster.nfs.export_dir)}}
        create(api, f"/api/v1/namespaces/{ns}/pods",
               pod_body("late", NODE_B, "ls /data; sleep 3600", inline))
        event = wait_for("FailedMount", lambda: events_of(api, ns, "late", "FailedMount"),
                         timeout=40)[0]
        pod = get_pod(api, ns, "late")
        assert pod is not None and pod["status"]["phase"] == "Pending"
        waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
        assert waiting["reason"] == "ContainerCreating"
    finally:
        cluster.nfs.start()
    assert event["type"] == "Warning"
    assert event["message"].startswith('MountVolume.SetUp failed for volume "data" : ')
    assert f"127.0.0.1:{cluster.nfs.export_dir}" in event["message"]
    wait_phase(api, ns, "late", "Running", timeout=60)
    delete_pod(api, ns, "late")


def test_bad_input_gives_a_clear_error_and_runs_nothing(api: httpx.Client, ns: str,
                                                        cluster: Cluster,
                                                        tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    cases = {
        "meta": {"nfs": {"server": f"srv;touch {marker}", "path": "/e"}},
        "subst": {"nfs": {"server": "127.0.0.1", "path": f"/e$(touch {marker})"}},
    }
    bind_claim(api, ns, "opt", {"nfs": {"server": "127.0.0.1",
                                        "path": str(cluster.nfs.export_dir)},
                                "mountOptions": ["vers=3", "port=1,evil"]})
    cases["option"] = {"persistentVolumeClaim": {"claimName": "opt"}}
    for name, volume in cases.items():
        create(api, f"/api/v1/namespaces/{ns}/pods", pod_body(name, NODE_A, "sleep 3600",
                                                              volume))
    expected = {"meta": "invalid NFS server", "subst": "invalid NFS export path",
                "option": "invalid NFS mount option 'evil': is not an allowed option"}
    for name, fragment in expected.items():
        event = wait_for(f"FailedMount of {name}", lambda n=name: events_of(
            api, ns, n, "FailedMount"), timeout=30)[0]
        assert fragment in event["message"], event["message"]
    # A relative export path is refused by the API server already, as Kubernetes does.
    r = api.post(f"/api/v1/namespaces/{ns}/pods", json=pod_body(
        "rel", NODE_A, "sleep 1", {"nfs": {"server": "127.0.0.1", "path": "export"}}))
    assert r.status_code == 422 and "must be an absolute path" in r.text
    assert not marker.exists()
    assert not fuse_mounts_under(cluster.a.root)  # nothing was mounted for any of them
    for name in cases:
        delete_pod(api, ns, name)
