"""Containers on Docker, labelled so that the kubelet can always find its own again.

Each container carries the labels Kubernetes' dockershim used (`io.kubernetes.pod.uid`,
`io.kubernetes.container.name`, the attempt as `io.kubernetes.container.restartCount`,
`io.kubernetes.docker.type`) plus the kubelet's root directory, so several kubelets share one
Docker engine without touching each other's containers, and a restarted kubelet adopts what
runs and removes orphans. As with dockershim, each pod first gets a sandbox container that
holds its network namespace (its IP, its hostname, its host ports); the pod's containers
join it, so they reach each other on localhost and starting one does not set up a network.
Docker's inspect output becomes a Kubernetes containerStatus here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import docker.types
from docker.models.containers import Container

Object = dict[str, Any]
logger = logging.getLogger(__name__)
POD_UID = "io.kubernetes.pod.uid"
POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
CONTAINER_NAME = "io.kubernetes.container.name"
ATTEMPT = "io.kubernetes.container.restartCount"
KUBELET_ROOT = "io.storagelab.kubelet.root"
DOCKER_TYPE = "io.kubernetes.docker.type"  # "podsandbox" or "container", as dockershim wrote
SANDBOX, CONTAINER = "podsandbox", "container"
IMAGE_TTL_S = 30.0
SANDBOX_NAME = "POD"  # the sandbox's container name: no DNS-1123 label, so no clash


class RuntimeError_(Exception):
    """Docker refused or failed a call; the message carries Docker's words."""


class ImageMissing(RuntimeError_):
    """The image is not on this machine and could not be pulled."""


@dataclass(frozen=True)
class Owned:
    """A container or sandbox this kubelet made, as the list call shows it."""

    id: str
    pod_uid: str
    state: str  # Docker's: created, running, exited, ...


@dataclass(frozen=True)
class SandboxConfig:
    """The pod sandbox: an image whose command blocks forever (the pod infra container)."""

    image: str
    command: tuple[str, ...]


@dataclass(frozen=True)
class ContainerConfig:
    """Everything needed to create one attempt of a pod's container."""

    image: str
    entrypoint: list[str] | None
    cmd: list[str] | None
    env: dict[str, str]
    working_dir: str
    mounts: tuple[tuple[str, str, bool], ...]  # (host path, container path, read-only)
    mem_limit: int | None


def _ignore(_: str) -> None:
    pass


def docker_time(value: str) -> str:
    """Docker's nanosecond timestamp as Kubernetes' second-precision RFC 3339."""
    if not value or value.startswith("0001-"):
        return ""
    return value[:19] + "Z"


class DockerRuntime:
    def __init__(self, root: str, sandbox: SandboxConfig | None = None,
                 client: docker.DockerClient | None = None) -> None:
        self.root = root
        self.sandbox = sandbox or SandboxConfig("busybox:latest", ("sleep", "2147483647"))
        self.docker = client or docker.from_env(timeout=60)
        # Inspections by container id, with the list state they were made in: a container's
        # inspect data changes only with its state, so each sync lists (one call) and
        # inspects only what changed since.
        self._inspected: dict[str, tuple[str, Container]] = {}
        self._images: dict[str, float] = {}  # image -> when last seen present (monotonic)
        self._starting = 0
        self._lock = threading.Lock()

    def listing(self, uid: str | None = None) -> list[Container]:
        """This kubelet's containers and sandboxes (of one pod if `uid`), newest first."""
        labels = [f"{KUBELET_ROOT}={self.root}"] + ([f"{POD_UID}={uid}"] if uid else [])
        listed = self.docker.containers.list(all=True, sparse=True, filters={"label": labels})
        found = [c for c in (self._inspect(s.id, str(s.attrs.get("State", "")))
                             for s in listed) if c is not None]
        if uid is None:
            self._forget_except({c.id for c in listed})
        return sorted(found, key=lambda c: int(c.labels.get(ATTEMPT, "0")), reverse=True)

    def containers(self, uid: str | None = None) -> list[Container]:
        """The pods' containers without their sandboxes, newest attempt first."""
        return [c for c in self.listing(uid) if not is_sandbox(c)]

    def sandboxes(self, uid: str) -> list[Container]:
        return [c for c in self.listing(uid) if is_sandbox(c)]

    def owners(self) -> list[Owned]:
        """Everything this kubelet made, with its pod and state: one list call, no
        inspection (garbage collection needs only the labels)."""
        listed = self.docker.containers.list(all=True, sparse=True,
                                             filters={"label": f"{KUBELET_ROOT}={self.root}"})
        self._forget_except({c.id for c in listed})
        return [Owned(c.id, str((c.attrs.get("Labels") or {}).get(POD_UID, "")),
                      str(c.attrs.get("State", ""))) for c in listed]

    @property
    def starting(self) -> bool:
        """Whether a container or sandbox is being created or started right now."""
        with self._lock:
            return self._starting > 0

    def _inspect(self, container_id: str, state: str) -> Container | None:
        with self._lock:
            cached = self._inspected.get(container_id)
        if cached is not None and cached[0] == state:
            return cached[1]
        try:
            full = self.docker.containers.get(container_id)
        except docker.errors.NotFound:
            return None  # removed between the list and the inspect
        self._remember(full)
        return full

    def _remember(self, container: Container) -> None:
        state = str((container.attrs.get("State") or {}).get("Status", ""))
        with self._lock:
            self._inspected[container.id] = (state, container)

    def _forget_except(self, alive: set[str]) -> None:
        with self._lock:
            for gone in set(self._inspected) - alive:
                del self._inspected[gone]

    def refreshed(self, container: Container) -> Container:
        """The container inspected anew (after a stop, to see how it ended)."""
        try:
            full = self.docker.containers.get(container.id)
        except docker.errors.NotFound:
            return container
        self._remember(full)
        return full

    def attempts(self, uid: str, name: str) -> list[Container]:
        return [c for c in self.containers(uid) if c.labels.get(CONTAINER_NAME) == name]

    def ensure_image(self, image: str) -> bool:
        """True when the image was already present; pulls it otherwise. A presence seen in
        the last IMAGE_TTL_S seconds is trusted (a create that finds it gone forgets it)."""
        with self._lock:
            if time.monotonic() - self._images.get(image, -IMAGE_TTL_S) < IMAGE_TTL_S:
                return True
        try:
            self.docker.images.get(image)
            present = True
        except docker.errors.ImageNotFound:
            present = False
        if not present:
            try:
                self.docker.images.pull(image)
            except docker.errors.APIError as e:
                raise ImageMissing(f'failed to pull image "{image}": '
                                   f"{e.explanation or e}") from e
        with self._lock:
            self._images[image] = time.monotonic()
        return present

    def _labels(self, pod: Object, name: str, attempt: int, kind: str) -> dict[str, str]:
        meta = pod["metadata"]
        return {POD_UID: meta["uid"], POD_NAME: meta["name"], POD_NAMESPACE: meta["namespace"],
                CONTAINER_NAME: name, ATTEMPT: str(attempt), DOCKER_TYPE: kind,
                KUBELET_ROOT: self.root}

    def ensure_sandbox(self, pod: Object, ports: dict[str, tuple[str, int]],
                       created: Callable[[str], None] = _ignore) -> Container:
        """The pod's running sandbox, made (with the pod's hostname and host ports) when
        there is none; an exited one is replaced by a new attempt. `created` hears the new
        sandbox's id as soon as it exists, before it starts: containers can be created to
        join it while it starts."""
        found = self.sandboxes(pod["metadata"]["uid"])
        if found and found[0].status == "running":
            created(found[0].id)
            return found[0]
        self.ensure_image(self.sandbox.image)
        for old in found:
            self.stop_and_remove(old, timeout=0)
        attempt = int(found[0].labels.get(ATTEMPT, "0")) + 1 if found else 0
        meta = pod["metadata"]
        host_config = self.docker.api.create_host_config(port_bindings=ports or None)
        return self._create_and_start(
            self.sandbox.image, created, name=_docker_name(SANDBOX_NAME, meta, attempt),
            command=list(self.sandbox.command),
            labels=self._labels(pod, SANDBOX_NAME, attempt, SANDBOX),
            hostname=meta["name"][:63], host_config=host_config,
            ports=[tuple(p.split("/", 1)) for p in ports] or None)

    def run(self, pod: Object, container: Object, cfg: ContainerConfig, attempt: int,
            sandbox: Callable[[], str], sandbox_running: Callable[[], object]) -> Container:
        """Create one attempt of a container joining the pod's sandbox (`sandbox` gives its
        id once it exists), and start it once the sandbox runs (`sandbox_running` waits)."""
        mounts = [docker.types.Mount(target, source, type="bind", read_only=ro)
                  for source, target, ro in cfg.mounts]
        host_config = self.docker.api.create_host_config(
            mounts=mounts, mem_limit=cfg.mem_limit, network_mode=f"container:{sandbox()}")
        return self._create_and_start(
            cfg.image, lambda _: sandbox_running(),
            name=_docker_name(container["name"], pod["metadata"], attempt),
            command=cfg.cmd, entrypoint=cfg.entrypoint, environment=cfg.env,
            working_dir=cfg.working_dir or None, host_config=host_config,
            labels=self._labels(pod, container["name"], attempt, CONTAINER))

    def _create_and_start(self, image: str, created: Callable[[str], object], name: str,
                          **create: Any) -> Container:
        """Create, tell `created` (which may wait for something the start needs), start,
        inspect."""
        with self._lock:
            self._starting += 1
        try:
            container_id = self._create(image, name, **create)
            created(container_id)
            try:
                self.docker.api.start(container_id)
            except docker.errors.APIError as e:
                logger.info("container %s failed to start: %s", name, e)
            try:
                started = self.docker.containers.get(container_id)
            except docker.errors.NotFound as e:
                raise RuntimeError_(f"container {name} vanished after its start") from e
            self._remember(started)
            return started
        finally:
            with self._lock:
                self._starting -= 1

    def _create(self, image: str, name: str, **create: Any) -> str:
        # The low-level call: the SDK's create would inspect once more before the start.
        try:
            return str(self.docker.api.create_container(image, name=name, detach=True,
                                                        **create)["Id"])
        except docker.errors.ImageNotFound as e:
            with self._lock:
                self._images.pop(image, None)  # removed behind our back: pull next time
            raise RuntimeError_(str(e.explanation or e)) from e
        except docker.errors.APIError as e:
            raise RuntimeError_(str(e.explanation or e)) from e

    def pod_ip(self, uid: str) -> str:
        """The address of the pod's network namespace: its running sandbox's."""
        return next((a for a in map(address_of, self.sandboxes(uid)) if a), "")

    def stop(self, container: Container, timeout: int) -> None:
        """Stop (SIGTERM, then SIGKILL after `timeout` s) and keep it for its status and logs."""
        try:
            if container.status in ("running", "restarting"):
                container.stop(timeout=timeout)
        except docker.errors.NotFound:
            pass

    def stop_and_remove(self, container: Container, timeout: int = 10) -> None:
        self.remove(container.id, container.status if timeout else "", timeout)

    def remove(self, container_id: str, status: str = "", timeout: int = 0) -> None:
        """Stop gracefully when `status` says it runs and `timeout` allows, then remove
        (a forced remove kills at once: one call instead of two)."""
        try:
            if timeout and status in ("running", "restarting"):
                self.docker.api.stop(container_id, timeout=timeout)
            self.docker.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass  # already gone: the goal is reached
        except docker.errors.APIError as e:
            if e.status_code != 409:  # 409: a removal already in progress elsewhere
                raise
        with self._lock:
            self._inspected.pop(container_id, None)


def address_of(sandbox: Container) -> str:
    """A running sandbox's IP address ("" when it does not run)."""
    if sandbox.status != "running":
        return ""
    return str((sandbox.attrs.get("NetworkSettings") or {}).get("IPAddress") or "")


def is_sandbox(container: Container) -> bool:
    return container.labels.get(DOCKER_TYPE) == SANDBOX


def _docker_name(container: str, meta: Object, attempt: int) -> str:
    return f"k8s_{container}_{meta['name']}_{meta['namespace']}_{meta['uid']}_{attempt}"


def container_status(container: Container, spec_image: str, restart_count: int,
                     last: Container | None) -> Object:
    """A Kubernetes containerStatus from Docker's view of an attempt (and the one before)."""
    state = _state(container)
    return {"name": container.labels[CONTAINER_NAME], "image": spec_image,
            "imageID": f"docker://{container.attrs.get('Image', '')}",
            "containerID": f"docker://{container.id}", "restartCount": restart_count,
            "ready": "running" in state, "started": "running" in state, "state": state,
            "lastState": _state(last) if last is not None else {}}


def _state(container: Container) -> Object:
    s = container.attrs.get("State") or {}
    if s.get("Running"):
        return {"running": {"startedAt": docker_time(s.get("StartedAt", ""))}}
    if s.get("Status") == "created" and not s.get("Error"):
        return {"waiting": {"reason": "ContainerCreating"}}
    code = int(s.get("ExitCode", 0))
    reason = "OOMKilled" if s.get("OOMKilled") else ("Completed" if code == 0 else "Error")
    if s.get("Error"):
        reason = "StartError"
    terminated: Object = {"exitCode": code, "reason": reason,
                          "startedAt": docker_time(s.get("StartedAt", "")) or None,
                          "finishedAt": docker_time(s.get("FinishedAt", "")) or None,
                          "containerID": f"docker://{container.id}"}
    if s.get("Error"):
        terminated["message"] = s["Error"]
    return {"terminated": terminated}


def finished_at(container: Container) -> str:
    return docker_time((container.attrs.get("State") or {}).get("FinishedAt", ""))
