"""The kubelet's main loop: make the containers and volumes on this node match its pods.

One sync thread wakes on every pod, configMap or secret change (and each second), and for
each pod bound here converges volumes, then containers, then writes the pod's status; pods
being deleted are stopped, their volumes torn down, and the deletion confirmed with grace
period 0. Containers and pod directories that no pod wants any more (after a crash, or a
deletion missed while down) are removed once the first pod list has arrived.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from docker.models.containers import Container

from apimachinery import quantity
from kubelet import api as api_module
from kubelet import envvars, mount, nfs_volumes, runtime, status, subpath, volumes
from kubelet import server as server_module
from kubelet.config import KubeletConfig
from kubelet.node import NodeAgent

Object = dict[str, Any]
logger = logging.getLogger(__name__)
TERMINAL = ("Succeeded", "Failed")


@dataclass
class Backoff:
    delay: float = 0.0
    reported_for: str = ""  # finishedAt already announced with a BackOff event


@dataclass
class PodMemory:
    """What the kubelet remembers between syncs of one pod (lost on restart, by design)."""

    backoff: dict[str, Backoff] = field(default_factory=dict)
    last_status: Object = field(default_factory=dict)
    reported: set[str] = field(default_factory=set)


class Kubelet:
    def __init__(self, cfg: KubeletConfig) -> None:
        self.cfg = cfg
        self.wake = threading.Event()
        self.api = api_module.Api(cfg.kubeconfig)
        self.objects = api_module.ObjectCache(self.api, self.wake.set)
        self.pods = api_module.PodWatch(self.api, cfg.node_name, self.wake.set)
        nfs = nfs_volumes.NfsVolumes(cfg.root_dir, cfg.nfs_mounter, cfg.nfs_mount_defaults,
                                     events=self._event)
        self.volumes = volumes.VolumeManager(cfg.root_dir, self.objects, nfs,
                                             local_driver=volumes.local_driver(cfg))
        self.runtime = runtime.DockerRuntime(str(cfg.root_dir))
        self.memory: dict[str, PodMemory] = {}
        self.stopped = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="container")
        self.events: queue.Queue[tuple[Object, str, str, str, str]] = queue.Queue()

    def run(self) -> None:
        self.cfg.root_dir.mkdir(parents=True, exist_ok=True)
        version = self.runtime.docker.version().get("Version", "")
        port = self.serve()
        agent = NodeAgent(self.api, self.cfg.node_name, f"docker://{version}",
                          self.cfg.node_ip, port)
        agent.register()
        agent.start()
        self.pods.start()
        threading.Thread(target=self._post_events, name="events", daemon=True).start()
        logger.info("kubelet %s running, root %s", self.cfg.node_name, self.cfg.root_dir)
        while not self.stopped.is_set():
            self.wake.wait(self.cfg.sync_period_s)
            self.wake.clear()
            if self.pods.synced.is_set():
                self.sync_all()

    # --- the logs/exec server -------------------------------------------------------------

    def serve(self) -> int:
        """Start the HTTPS server for logs and exec; the port to publish (0: none)."""
        if not self.cfg.serves:
            logger.warning("no --tls-cert-file: kubectl logs and exec will not reach this node")
            return 0
        assert self.cfg.tls_cert_file and self.cfg.tls_private_key_file
        assert self.cfg.client_ca_file
        serving = server_module.ServingConfig(self.cfg.node_ip, self.cfg.port,
                                              self.cfg.tls_cert_file,
                                              self.cfg.tls_private_key_file,
                                              self.cfg.client_ca_file)
        app = server_module.KubeletApp(self.pod_view, self.runtime.docker.api)
        http = server_module.KubeletServer(serving, app.asgi())
        http.start()
        return http.port

    def pod_view(self, namespace: str, name: str) -> Object | None:
        """The pod as this kubelet last saw it, with the status it last wrote (fresher
        than the watched copy), preferring a live pod over one being deleted."""
        found = [p for p in self.pods.snapshot()
                 if p["metadata"].get("namespace") == namespace
                 and p["metadata"].get("name") == name]
        if not found:
            return None
        pod = min(found, key=lambda p: bool(p["metadata"].get("deletionTimestamp")))
        memory = self.memory.get(pod["metadata"]["uid"])
        if memory is not None and memory.last_status:
            pod = {**pod, "status": memory.last_status}
        return pod

    def sync_all(self) -> None:
        pods = self.pods.snapshot()
        for pod in pods:
            try:
                if pod["metadata"].get("deletionTimestamp"):
                    self.kill_pod(pod)
                else:
                    self.sync_pod(pod)
            except Exception:  # one broken pod must not stop the others
                logger.exception("sync of pod %s failed", pod["metadata"].get("name"))
        self.cleanup({p["metadata"]["uid"] for p in pods
                      if not p["metadata"].get("deletionTimestamp")})

    # --- one pod --------------------------------------------------------------------------

    def _event(self, pod: Object, kind: str, reason: str, message: str, container: str = ""
               ) -> None:
        path = f"spec.containers{{{container}}}" if container else ""
        self.events.put((pod, kind, reason, message, path))

    def _post_events(self) -> None:
        """Events leave on their own thread, so that recording one never delays a pod."""
        while True:
            pod, kind, reason, message, path = self.events.get()
            self.api.event(pod, kind, reason, message, self.cfg.node_name, path)

    def sync_pod(self, pod: Object) -> None:
        uid = pod["metadata"]["uid"]
        memory = self.memory.setdefault(uid, PodMemory())
        phase_now = (pod.get("status") or {}).get("phase")
        try:
            ready = self.volumes.setup_pod(pod)
        except volumes.VolumePending:  # an NFS mount still running: wait, no event yet
            self.write_status(pod, memory, [
                status.waiting(c["name"], c.get("image", ""), "ContainerCreating")
                for c in pod["spec"]["containers"]])
            return
        except volumes.VolumeSetupError as e:
            message = f'MountVolume.SetUp failed for volume "{e.volume}" : {e}'
            if message not in memory.reported:
                memory.reported.add(message)
                self._event(pod, "Warning", "FailedMount", message)
            statuses = [status.waiting(c["name"], c.get("image", ""), "ContainerCreating")
                        for c in pod["spec"]["containers"]]
            self.write_status(pod, memory, statuses)
            return
        # Containers of a pod start side by side: a Docker start takes ~0.5 s here.
        statuses = list(self.pool.map(
            lambda c: self.sync_container(pod, c, ready, memory, phase_now in TERMINAL),
            pod["spec"]["containers"]))
        self.write_status(pod, memory, statuses)

    def sync_container(self, pod: Object, container: Object,
                       ready: dict[str, volumes.ReadyVolume], memory: PodMemory,
                       terminal: bool) -> Object:
        uid, name = pod["metadata"]["uid"], container["name"]
        attempts = self.runtime.attempts(uid, name)
        if not attempts:
            if terminal:
                return status.waiting(name, container.get("image", ""), "ContainerCreating")
            return self.start(pod, container, ready, memory, 0, None)
        latest = attempts[0]
        previous = attempts[1] if len(attempts) > 1 else None
        count = int(latest.labels.get(runtime.ATTEMPT, "0"))
        current = runtime.container_status(latest, container.get("image", ""), count, previous)
        if "terminated" not in current["state"] or terminal:
            return current
        code = current["state"]["terminated"]["exitCode"]
        policy = pod["spec"].get("restartPolicy", "Always")
        if policy == "Never" or (policy == "OnFailure" and code == 0):
            return current
        return self.restart(pod, container, ready, memory, latest, attempts, count)

    def restart(self, pod: Object, container: Object, ready: dict[str, volumes.ReadyVolume],
                memory: PodMemory, latest: Container, attempts: list[Container],
                count: int) -> Object:
        name = container["name"]
        backoff = memory.backoff.setdefault(name, Backoff())
        finished = runtime.finished_at(latest)
        waited = time.time() - _epoch(finished)
        last = runtime.container_status(latest, container.get("image", ""), count, None)
        if waited < backoff.delay:
            message = (f"back-off {int(backoff.delay)}s restarting failed container={name} "
                       f"pod={pod['metadata']['name']}_{pod['metadata']['namespace']}"
                       f"({pod['metadata']['uid']})")
            if backoff.reported_for != finished:
                backoff.reported_for = finished
                self._event(pod, "Warning", "BackOff",
                            f"Back-off restarting failed container {name} in pod "
                            f"{pod['metadata']['name']}_{pod['metadata']['namespace']}"
                            f"({pod['metadata']['uid']})", name)
            return status.waiting(name, container.get("image", ""), "CrashLoopBackOff",
                                  message, count, last["state"])
        backoff.delay = min(backoff.delay * 2 or self.cfg.backoff_initial_s,
                            self.cfg.backoff_max_s)
        for old in attempts[1:]:
            self.runtime.stop_and_remove(old, timeout=0)  # keep only the last attempt
        return self.start(pod, container, ready, memory, count + 1, latest)

    def start(self, pod: Object, container: Object, ready: dict[str, volumes.ReadyVolume],
              memory: PodMemory, attempt: int, previous: Container | None) -> Object:
        name, image = container["name"], container.get("image", "")
        last = (runtime.container_status(previous, image, attempt - 1, None)["state"]
                if previous is not None else None)
        try:
            cfg = self.container_config(pod, container, ready)
        except (envvars.ContainerConfigError, subpath.SubPathError, OSError,
                mount.MountError) as e:
            self._report(pod, memory, name, "Failed", f"Error: {e}")
            return status.waiting(name, image, "CreateContainerConfigError", str(e),
                                  attempt, last)
        try:
            present = self.runtime.ensure_image(image)
        except runtime.ImageMissing as e:
            self._report(pod, memory, name, "Failed", str(e))
            return status.waiting(name, image, "ErrImagePull", str(e), attempt, last)
        if present:
            self._event(pod, "Normal", "Pulled",
                        f'Container image "{image}" already present on machine', name)
        try:
            created = self.runtime.run(pod, container, cfg, attempt)
        except runtime.RuntimeError_ as e:
            self._report(pod, memory, name, "Failed", f"Error: {e}")
            return status.waiting(name, image, "CreateContainerError", str(e), attempt, last)
        self._event(pod, "Normal", "Created", f"Created container {name}", name)
        self._event(pod, "Normal", "Started", f"Started container {name}", name)
        return runtime.container_status(created, image, attempt, previous)

    def _report(self, pod: Object, memory: PodMemory, name: str, reason: str,
                message: str) -> None:
        if message not in memory.reported:
            memory.reported.add(message)
            self._event(pod, "Warning", reason, message, name)

    def container_config(self, pod: Object, container: Object,
                         ready: dict[str, volumes.ReadyVolume]) -> runtime.ContainerConfig:
        env = envvars.resolve(pod, container, self.objects)
        entrypoint, cmd = envvars.command_line(container, env)
        limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        return runtime.ContainerConfig(
            image=container.get("image", ""), entrypoint=entrypoint, cmd=cmd, env=env,
            working_dir=container.get("workingDir", ""),
            mounts=self.container_mounts(pod, container, ready),
            mem_limit=int(quantity.parse_quantity(limit)) if limit else None,
            ports=_ports(container))

    def container_mounts(self, pod: Object, container: Object,
                         ready: dict[str, volumes.ReadyVolume]
                         ) -> tuple[tuple[str, str, bool], ...]:
        out = []
        uid = pod["metadata"]["uid"]
        for index, vm in enumerate(container.get("volumeMounts") or []):
            volume = ready.get(vm["name"])
            if volume is None:
                raise envvars.ContainerConfigError(f"volumeMount {vm['name']!r}: no such volume")
            read_only = bool(vm.get("readOnly")) or volume.read_only
            source = volume.host_path
            if vm.get("subPath"):
                target = (self.volumes.pod_dir(uid) / "volume-subpaths" / vm["name"]
                          / container["name"] / str(index))
                try:
                    source = subpath.prepare(volume.host_path, vm["subPath"], target, read_only)
                except subpath.SubPathError as e:
                    raise subpath.SubPathError(
                        f'failed to prepare subPath for volumeMount "{vm["name"]}" of '
                        f'container "{container["name"]}": {e}') from e
            out.append((str(source), vm["mountPath"], read_only))
        return tuple(out)

    def write_status(self, pod: Object, memory: PodMemory, statuses: list[Object]) -> None:
        old = pod.get("status") or {}
        names = [c["name"] for c in pod["spec"]["containers"]]
        phase = status.phase(pod["spec"].get("restartPolicy", "Always"), statuses, len(names))
        at = status.now()
        new = {"phase": phase, "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
               "startTime": old.get("startTime") or at,
               **_pod_ips(self.runtime.pod_ip(pod["metadata"]["uid"])),
               "conditions": status.conditions(old.get("conditions") or [], phase, statuses,
                                               names, at),
               "containerStatuses": statuses}
        if new == memory.last_status:
            return
        try:
            self.api.patch_status("pods", pod["metadata"]["namespace"],
                                  pod["metadata"]["name"], {"status": new})
            memory.last_status = new
        except api_module.ApiFailure as e:
            logger.warning("status of %s not written: %s", pod["metadata"]["name"], e)

    # --- deletion and cleanup -------------------------------------------------------------

    def kill_pod(self, pod: Object) -> None:
        uid = pod["metadata"]["uid"]
        grace = pod["metadata"].get("deletionGracePeriodSeconds", 30)
        for c in self.runtime.containers(uid):
            self.runtime.stop_and_remove(c, timeout=min(int(grace or 0), 10))
        self.volumes.teardown_pod(uid)
        self.memory.pop(uid, None)
        self.api.delete_pod_now(pod["metadata"]["namespace"], pod["metadata"]["name"])

    def cleanup(self, wanted: set[str]) -> None:
        for c in self.runtime.containers():
            if c.labels.get(runtime.POD_UID) not in wanted:
                self.runtime.stop_and_remove(c, timeout=0)
        deleting = {p["metadata"]["uid"] for p in self.pods.snapshot()} - wanted
        for uid in self.volumes.pods_on_disk() - wanted - deleting:
            try:
                self.volumes.teardown_pod(uid)
            except mount.MountError as e:
                logger.warning("orphaned pod %s not cleaned: %s", uid, e)
        for uid in set(self.memory) - wanted:
            self.memory.pop(uid, None)


def _epoch(stamp: str) -> float:
    if not stamp:
        return 0.0
    return time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone


def _pod_ips(address: str) -> Object:
    return {"podIP": address, "podIPs": [{"ip": address}]} if address else {}


def _ports(container: Object) -> dict[str, tuple[str, int]]:
    ports = {}
    for p in container.get("ports") or []:
        if p.get("hostPort"):
            key = f"{p['containerPort']}/{p.get('protocol', 'TCP').lower()}"
            ports[key] = (p.get("hostIP") or "0.0.0.0", int(p["hostPort"]))
    return ports


def main(cfg: KubeletConfig) -> None:
    Kubelet(cfg).run()
