"""Containers on Docker, labelled so that the kubelet can always find its own again.

Each container carries the labels Kubernetes' dockershim used (`io.kubernetes.pod.uid`,
`io.kubernetes.container.name`, the attempt as `io.kubernetes.container.restartCount`) plus
the kubelet's root directory, so several kubelets share one Docker engine without touching
each other's containers, and a restarted kubelet adopts what runs and removes orphans.
Docker's inspect output becomes a Kubernetes containerStatus here.
"""

from __future__ import annotations

import logging
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


class RuntimeError_(Exception):
    """Docker refused or failed a call; the message carries Docker's words."""


class ImageMissing(RuntimeError_):
    """The image is not on this machine and could not be pulled."""


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
    ports: dict[str, tuple[str, int]]


def docker_time(value: str) -> str:
    """Docker's nanosecond timestamp as Kubernetes' second-precision RFC 3339."""
    if not value or value.startswith("0001-"):
        return ""
    return value[:19] + "Z"


class DockerRuntime:
    def __init__(self, root: str, client: docker.DockerClient | None = None) -> None:
        self.root = root
        self.docker = client or docker.from_env(timeout=60)

    def containers(self, uid: str | None = None) -> list[Container]:
        """This kubelet's containers (of one pod if `uid`), newest attempt first."""
        labels = [f"{KUBELET_ROOT}={self.root}"] + ([f"{POD_UID}={uid}"] if uid else [])
        found = self.docker.containers.list(all=True, filters={"label": labels})
        return sorted(found, key=lambda c: int(c.labels.get(ATTEMPT, "0")), reverse=True)

    def attempts(self, uid: str, name: str) -> list[Container]:
        return [c for c in self.containers(uid) if c.labels.get(CONTAINER_NAME) == name]

    def ensure_image(self, image: str) -> bool:
        """True when the image was already present; pulls it otherwise."""
        try:
            self.docker.images.get(image)
            return True
        except docker.errors.ImageNotFound:
            pass
        try:
            self.docker.images.pull(image)
            return False
        except docker.errors.APIError as e:
            raise ImageMissing(f'failed to pull image "{image}": {e.explanation or e}') from e

    def run(self, pod: Object, container: Object, cfg: ContainerConfig, attempt: int
            ) -> Container:
        meta = pod["metadata"]
        labels = {POD_UID: meta["uid"], POD_NAME: meta["name"],
                  POD_NAMESPACE: meta["namespace"], CONTAINER_NAME: container["name"],
                  ATTEMPT: str(attempt), KUBELET_ROOT: self.root}
        name = f"k8s_{container['name']}_{meta['name']}_{meta['namespace']}_{meta['uid']}_{attempt}"
        mounts = [docker.types.Mount(target, source, type="bind", read_only=ro)
                  for source, target, ro in cfg.mounts]
        try:
            created = self.docker.containers.create(
                cfg.image, command=cfg.cmd, entrypoint=cfg.entrypoint, environment=cfg.env,
                working_dir=cfg.working_dir or None, mounts=mounts, labels=labels, name=name,
                hostname=meta["name"][:63], mem_limit=cfg.mem_limit, ports=cfg.ports or None,
                detach=True)
        except docker.errors.APIError as e:
            raise RuntimeError_(str(e.explanation or e)) from e
        try:
            created.start()
        except docker.errors.APIError as e:
            logger.info("container %s failed to start: %s", name, e)
        created.reload()
        return created

    def pod_ip(self, uid: str) -> str:
        """The address of the pod's first running container (each container has its own
        network namespace here, unlike a Kubernetes pod sandbox)."""
        for c in reversed(self.containers(uid)):
            address = ((c.attrs.get("NetworkSettings") or {}).get("IPAddress")) or ""
            if c.status == "running" and address:
                return str(address)
        return ""

    def stop_and_remove(self, container: Container, timeout: int = 10) -> None:
        try:
            if container.status in ("running", "restarting"):
                container.stop(timeout=timeout)
            container.remove(force=True)
        except docker.errors.NotFound:
            pass  # already gone: the goal is reached


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
