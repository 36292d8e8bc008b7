"""The kubelet's main loop: make the containers and volumes on this node match its pods.

A dispatcher wakes on every pod, configMap or secret change (and each second) and hands
each pod bound here to its pod worker, as Kubernetes' pod workers do: one sync at a time per
pod, pods side by side, so a slow deletion never delays another pod's start. A sync
converges the pod's volumes, runs its init containers in order, then its app containers,
and writes its status; a pod being deleted is stopped, its volumes torn down and the
deletion confirmed with grace period 0; a pod that has finished (Succeeded, Failed, or
evicted for outgrowing an emptyDir's sizeLimit) gives its volumes back. Volume operations
are serialized (the volume manager and its mount records expect one caller at a time);
Docker calls are not. A pod with lifecycle hooks syncs on a thread of its own rather than
the shared pool, so that a preStop hook waiting out its grace period holds only its own pod,
as each pod has its own goroutine in Kubernetes. Containers and pod directories no pod wants
any more (after a crash, or a deletion missed while down) are removed by a cleanup task.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from docker.models.containers import Container

from kubelet import api as api_module
from kubelet import (
    containers,
    eviction,
    hooks,
    mount,
    nfs_volumes,
    prober,
    runtime,
    status,
    volumes,
)
from kubelet import server as server_module
from kubelet.config import KubeletConfig
from kubelet.containers import PodMemory
from kubelet.node import NodeAgent

Object = dict[str, Any]
logger = logging.getLogger(__name__)
TERMINAL = ("Succeeded", "Failed")
CLEANUP = "\0cleanup"  # the cleanup task's worker key (never a pod uid)
POD_WORKERS = 8
ORPHAN_DEFER_S = 5.0


class PodWorkers:
    """Runs each key's work on a pool (or, when `dedicated`, on a thread of its own), never
    twice at once for one key: a dispatch while the key is busy makes the work run once more
    when the current run ends."""

    def __init__(self, workers: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pod-worker")
        self.lock = threading.Lock()
        self.running: set[str] = set()
        self.again: set[str] = set()

    def dispatch(self, key: str, work: Callable[[], None], dedicated: bool = False) -> None:
        with self.lock:
            if key in self.running:
                self.again.add(key)
                return
            self.running.add(key)
        if dedicated:
            threading.Thread(target=self._run, args=(key, work), daemon=True,
                             name=f"pod-worker-{key[:8]}").start()
        else:
            self.pool.submit(self._run, key, work)

    def busy(self, key: str) -> bool:
        with self.lock:
            return key in self.running

    def _run(self, key: str, work: Callable[[], None]) -> None:
        while True:
            try:
                work()
            except Exception:  # one broken pod must not stop the others
                logger.exception("sync of %s failed", key)
            with self.lock:
                if key not in self.again:
                    self.running.discard(key)
                    return
                self.again.discard(key)


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
        self.volume_lock = threading.Lock()
        self.runtime = runtime.DockerRuntime(str(cfg.root_dir))
        self.memory: dict[str, PodMemory] = {}
        self.orphans_seen: dict[str, float] = {}  # container id -> first seen orphaned
        self.sandbox_starts: dict[str, tuple[Future[str], Future[Container]]] = {}
        self.stopped = threading.Event()
        self.workers = PodWorkers(POD_WORKERS)
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="container")
        self.probes = prober.ProbeManager(self.runtime.docker.api, self._event,
                                          self._probed)
        self.post_start = hooks.PostStartHooks(hooks.HandlerRunner(self.runtime.docker.api),
                                               self._probed)
        self.containers = containers.ContainerSync(cfg, self.runtime, self.objects,
                                                   self.volumes.pod_dir, self._event, self.pool,
                                                   self.probes, self.post_start)
        self.monitor = eviction.EmptyDirMonitor(
            self.pods.snapshot,
            lambda uid, name: self.volumes.volumes_dir(uid, volumes.EMPTY_DIR, name),
            cfg.eviction_period_s, self.wake.set)
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
        self.monitor.start()
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

    # --- dispatch -------------------------------------------------------------------------

    def sync_all(self) -> None:
        for pod in self.pods.snapshot():
            self._dispatch_sync(pod["metadata"]["uid"], pod)
        self.workers.dispatch(CLEANUP, self.cleanup)

    def _dispatch_sync(self, uid: str, pod: Object | None) -> None:
        """Sync the pod on a worker (its own thread when it has lifecycle hooks)."""
        self.workers.dispatch(uid, lambda: self.sync_uid(uid),
                              pod is not None and hooks.has_hooks(pod))

    def _probed(self, uid: str) -> None:
        """A probe result changed, or a postStart hook ended: sync the pod now (its
        readiness to write, or a container to kill), as Kubernetes' sync loop wakes on the
        prober's updates."""
        self._dispatch_sync(uid, self.pods.get(uid))

    def sync_uid(self, uid: str) -> None:
        pod = self.pods.get(uid)  # the newest copy: the pod may have changed since dispatch
        if pod is None:
            return
        if pod["metadata"].get("deletionTimestamp"):
            self.probes.remove_pod(uid)  # no probe of a pod being stopped
            self.post_start.cancel_pod(uid)  # nor a postStart hook
            self.kill_pod(pod)
        else:
            self.sync_pod(pod)

    def _event(self, pod: Object, kind: str, reason: str, message: str, path: str = ""
               ) -> None:
        self.events.put((pod, kind, reason, message, path))

    def _post_events(self) -> None:
        """Events leave on their own thread, so that recording one never delays a pod."""
        while True:
            pod, kind, reason, message, path = self.events.get()
            self.api.event(pod, kind, reason, message, self.cfg.node_name, path)

    # --- one pod --------------------------------------------------------------------------

    def sync_pod(self, pod: Object) -> None:
        uid = pod["metadata"]["uid"]
        memory = self.memory.setdefault(uid, PodMemory())
        found = self.monitor.pending(uid)
        if found is not None or memory.evicted or _evicted(pod):
            self.evict(pod, memory, found)
            return
        if _phase(pod, memory) in TERMINAL:
            self.finish(pod, memory)
            return
        self.probes.add_pod(pod)
        listed = self.runtime.listing(uid)
        created, sandbox = self.sandbox_of(pod, listed)
        ready = self.setup_volumes(pod, memory)
        if ready is None or not self.sandbox_made(pod, memory, created):
            return
        run = containers.PodRun(pod, ready, memory,
                                [c for c in listed if not runtime.is_sandbox(c)],
                                created.result, sandbox.result)
        init_statuses, initialized = self.containers.init_containers(run)
        if initialized:
            statuses = self.containers.app_containers(run)
        else:
            statuses = _waiting(pod["spec"]["containers"], "PodInitializing")
        self.write_status(pod, memory, statuses, init_statuses, address=_address(sandbox))

    def sandbox_of(self, pod: Object, listed: list[Container]
                   ) -> tuple[Future[str], Future[Container]]:
        """The pod's sandbox: its id once it exists, and itself once it runs. When none runs,
        one starts on the pool while the volumes are set up (one start at a time per pod:
        a start still under way from an earlier sync is waited for, not repeated)."""
        uid = pod["metadata"]["uid"]
        under_way = self.sandbox_starts.get(uid)
        if under_way is not None and not under_way[1].done():
            return under_way
        created: Future[str] = Future()
        sandboxes = [c for c in listed if runtime.is_sandbox(c)]
        if sandboxes and sandboxes[0].status == "running":
            running: Future[Container] = Future()
            created.set_result(sandboxes[0].id)
            running.set_result(sandboxes[0])
            return created, running
        started = self.pool.submit(self._start_sandbox, pod, created)
        self.sandbox_starts[uid] = (created, started)
        started.add_done_callback(lambda done: self._sandbox_started(uid, done))
        return created, started

    def _sandbox_started(self, uid: str, done: Future[Container]) -> None:
        entry = self.sandbox_starts.get(uid)
        if entry is not None and entry[1] is done:  # not a newer start's entry
            del self.sandbox_starts[uid]

    def _start_sandbox(self, pod: Object, created: Future[str]) -> Container:
        try:
            return self.runtime.ensure_sandbox(pod, containers.host_ports(pod),
                                               created.set_result)
        except BaseException as e:
            if not created.done():
                created.set_exception(e)
            raise

    def sandbox_made(self, pod: Object, memory: PodMemory, created: Future[str]) -> bool:
        """Whether the pod's sandbox exists (it may still be starting: containers are created
        meanwhile); when it cannot be made, the pod hears why."""
        try:
            created.result()
            return True
        except runtime.RuntimeError_ as e:
            self.not_started(pod, memory, "FailedCreatePodSandBox",
                             f"Failed to create pod sandbox: {e}")
        return False

    def setup_volumes(self, pod: Object, memory: PodMemory
                      ) -> dict[str, volumes.ReadyVolume] | None:
        """The pod's volumes, ready; None (status written, event sent) when they are not."""
        try:
            with self.volume_lock:
                return self.volumes.setup_pod(pod)
        except volumes.VolumePending:  # an NFS mount still running: wait, no event yet
            self.not_started(pod, memory)
        except volumes.VolumeSetupError as e:
            self.not_started(pod, memory, "FailedMount",
                             f'MountVolume.SetUp failed for volume "{e.volume}" : {e}')
        return None

    def not_started(self, pod: Object, memory: PodMemory, reason: str = "",
                    message: str = "") -> None:
        """A pod whose containers cannot start yet: every container waiting, and a warning
        event (once per message). The status is written first, so whoever sees the event
        also finds the status that goes with it."""
        spec = pod["spec"]
        self.write_status(pod, memory, _waiting(spec["containers"], _creating(pod)),
                          _waiting(spec.get("initContainers") or [], _creating(pod)),
                          address="")
        if reason and message not in memory.reported:
            memory.reported.add(message)
            self._event(pod, "Warning", reason, message)

    def evict(self, pod: Object, memory: PodMemory, found: eviction.Eviction | None) -> None:
        """Stop a pod that outgrew an emptyDir, as the eviction manager does: an Evicted
        event, its containers stopped at once, phase Failed with reason Evicted."""
        uid = pod["metadata"]["uid"]
        if not memory.evicted:
            memory.evicted = found.message if found else str(
                (pod.get("status") or {}).get("message", ""))
            if found is not None:
                self._event(pod, "Warning", eviction.REASON, found.message)
                list(self.pool.map(lambda c: self.runtime.stop(c, eviction.GRACE_PERIOD_S),
                                   self.runtime.listing(uid)))
        self.finish(pod, memory, {"reason": eviction.REASON, "message": memory.evicted},
                    "Failed")

    def finish(self, pod: Object, memory: PodMemory, extra: Object | None = None,
               phase: str | None = None) -> None:
        """A pod that will not run again: report what its containers show, and give its
        volumes back (emptyDirs deleted, claims released), as Kubernetes does."""
        uid = pod["metadata"]["uid"]
        self.probes.remove_pod(uid)
        listed = self.runtime.listing(uid)
        existing = [c for c in listed if not runtime.is_sandbox(c)]
        for sandbox in set(listed) - set(existing):  # a finished pod needs no network
            self.runtime.stop(sandbox, 0)
        if not memory.volumes_released and not any(c.status == "running" for c in existing):
            try:
                with self.volume_lock:
                    self.volumes.teardown_pod(uid)
                memory.volumes_released = True
            except mount.MountError as e:
                logger.warning("volumes of finished pod %s not released: %s", uid, e)
        spec = pod["spec"]
        init_statuses = [containers.observed(c, containers.INIT, existing, _creating(pod))
                         for c in spec.get("initContainers") or []]
        statuses = [containers.observed(c, containers.APP, existing, _creating(pod))
                    for c in spec["containers"]]
        self.write_status(pod, memory, statuses, init_statuses, extra, phase)

    def write_status(self, pod: Object, memory: PodMemory, statuses: list[Object],
                     init_statuses: list[Object] | None = None, extra: Object | None = None,
                     phase: str | None = None, address: str | None = None) -> None:
        old = pod.get("status") or {}
        spec = pod["spec"]
        names = [c["name"] for c in spec["containers"]]
        init_names = [c["name"] for c in spec.get("initContainers") or []]
        init_statuses = init_statuses or []
        uid = pod["metadata"]["uid"]
        statuses = self.probes.update_statuses(uid, statuses)
        before = memory.last_status.get("phase") or old.get("phase")
        # A pod that finished never runs again, whatever its containers show now.
        phase = phase or (before if before in TERMINAL else status.phase(
            spec.get("restartPolicy", "Always"), statuses, len(names), init_statuses,
            len(init_names)))
        at = status.now()
        new = {"phase": phase, "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
               "startTime": old.get("startTime") or at,
               **_pod_ips(self.runtime.pod_ip(uid) if address is None else address),
               "conditions": status.conditions(old.get("conditions") or [], phase, statuses,
                                               names, at, init_names, init_statuses),
               "containerStatuses": statuses, **(extra or {})}
        if init_names:
            new["initContainerStatuses"] = init_statuses
        self.probes.set_status(uid, new)
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
        grace = int(pod["metadata"].get("deletionGracePeriodSeconds", 30) or 0)
        under_way = self.sandbox_starts.get(uid)
        if under_way is not None:  # let it finish, so that the listing below finds it
            concurrent.futures.wait([under_way[1]], timeout=60)
        # Removed before the deletion is confirmed: once the pod is gone from the API,
        # nothing of it is left on the node.
        found = self.runtime.containers(uid)
        for container in found:
            self.containers.announce_stop(pod, container)

        def stop(container: Container) -> None:
            self.containers.stop_for_deletion(pod, container, grace)
        if hooks.has_hooks(pod) and found:
            # preStop hooks may take the whole grace period: not on the shared pool
            with ThreadPoolExecutor(max_workers=len(found)) as own:
                list(own.map(stop, found))
        else:
            list(self.pool.map(stop, found))
        for sandbox in self.runtime.sandboxes(uid):  # last, as Kubernetes' StopPodSandbox
            self.runtime.stop_and_remove(sandbox, 0)
        with self.volume_lock:
            self.volumes.teardown_pod(uid)
        self.memory.pop(uid, None)
        self.monitor.forget(uid)
        self.api.delete_pod_now(pod["metadata"]["namespace"], pod["metadata"]["name"])

    def cleanup(self) -> None:
        """Stop and remove what belongs to no pod any more (pods being deleted are their
        workers'). The pods are gone from the API, so nobody waits on this: it waits while
        another pod is starting (up to ORPHAN_DEFER_S), as the two would slow each other
        down in the Docker engine, the way Kubernetes' container GC runs apart from starts."""
        known = {p["metadata"]["uid"] for p in self.pods.snapshot()}
        now = time.monotonic()
        orphans = [o for o in self.runtime.owners() if o.pod_uid not in known]
        self.orphans_seen = {o.id: self.orphans_seen.get(o.id, now) for o in orphans}
        for owned in orphans:
            if not self.runtime.starting or now - self.orphans_seen[owned.id] > ORPHAN_DEFER_S:
                self.runtime.remove(owned.id)  # forced: killed and removed in one call
        for uid in self.volumes.pods_on_disk() - known:
            if self.workers.busy(uid):
                continue
            try:
                with self.volume_lock:
                    self.volumes.teardown_pod(uid)
            except mount.MountError as e:
                logger.warning("orphaned pod %s not cleaned: %s", uid, e)
        for uid in set(self.memory) - known:
            self.memory.pop(uid, None)
            self.monitor.forget(uid)
        # A fresh look: a pod that arrived while this ran already has its probe workers.
        self.probes.cleanup(p["metadata"]["uid"] for p in self.pods.snapshot())


def _phase(pod: Object, memory: PodMemory) -> str:
    return str(memory.last_status.get("phase") or (pod.get("status") or {}).get("phase", ""))


def _evicted(pod: Object) -> bool:
    """Evicted by an earlier run of this kubelet (the status says so)."""
    st = pod.get("status") or {}
    return st.get("phase") == "Failed" and st.get("reason") == eviction.REASON


def _creating(pod: Object) -> str:
    """The waiting reason of containers not created yet (Kubernetes' default state)."""
    return "PodInitializing" if pod["spec"].get("initContainers") else "ContainerCreating"


def _waiting(specs: list[Object], reason: str) -> list[Object]:
    return [status.waiting(c["name"], c.get("image", ""), reason) for c in specs]


def _address(sandbox: Future[Container]) -> str:
    """The pod's IP: its sandbox's, once that has started ("" when it could not)."""
    if sandbox.exception() is not None:
        return ""
    return runtime.address_of(sandbox.result())


def _pod_ips(address: str) -> Object:
    return {"podIP": address, "podIPs": [{"ip": address}]} if address else {}


def main(cfg: KubeletConfig) -> None:
    Kubelet(cfg).run()
