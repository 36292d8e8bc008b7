"""The containers of one pod: init containers one after the other, then the app containers,
each started, watched and restarted as Kubernetes' restart policy says. App containers
start side by side unless one has a postStart hook: then they go in spec order, and those
after a container whose hook still runs are not started until it ends (Kubernetes' SyncPod
starts them one by one and startContainer waits for the hook).

The pod's Docker containers are listed once per sync (`existing`, newest attempt first) and
every decision is made from that list: which init container runs next, whether a stopped
container restarts now or waits out its back-off, and the containerStatus to report.
Starting a container resolves its environment, its volume mounts (subPath and subPathExpr
through the safe subPath code) and its image, and turns each failure into the waiting
reason and event a kubelet gives (CreateContainerConfigError, ErrImagePull, ...). A started
container's postStart hook runs on its own thread (kubelet.hooks); until it ends the container
is reported as before its start, and a failed hook gets the container killed and restarted
as the restart policy says. Every kill runs the container's preStop hook first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from docker.models.containers import Container

from apimachinery import quantity
from kubelet import envvars, hooks, mount, prober, runtime, status, subpath, volumes
from kubelet.config import KubeletConfig

Object = dict[str, Any]
# (pod, type, reason, message, fieldPath)
EventSink = Callable[[Object, str, str, str, str], None]
INIT, APP = "initContainers", "containers"
# A kill for a failed probe waits at most this long for SIGTERM to work (the pod's worker
# waits meanwhile; pod deletion caps its grace the same way).
KILL_GRACE_MAX_S = 10


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
    evicted: str = ""  # the eviction message, once the pod has been evicted
    volumes_released: bool = False  # a terminal pod's volumes are torn down once
    # container name -> the message of its last failed postStart hook (the reason cache's
    # PostStartHookError), until a start succeeds
    hook_errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PodRun:
    """What one sync of a pod works from: its volumes, its memory, its Docker containers as
    listed at the start of the sync, and the sandbox its containers join (a future: the
    sandbox starts while the volumes are being set up)."""

    pod: Object
    ready: Mapping[str, volumes.ReadyVolume]
    memory: PodMemory
    existing: Sequence[Container]
    sandbox_id: Callable[[], str]  # waits until the sandbox exists
    sandbox: Callable[[], Container]  # waits until it runs


def field_path(kind: str, name: str) -> str:
    return f"spec.{kind}{{{name}}}"


def attempts_of(existing: Sequence[Container], name: str) -> list[Container]:
    return [c for c in existing if c.labels.get(runtime.CONTAINER_NAME) == name]


def should_restart(kind: str, policy: str, exit_code: int) -> bool:
    """Kubernetes' rule: an init container reruns only after a failure and never under
    restartPolicy Never; an app container reruns always, or on failure, as the policy says."""
    if kind == INIT:
        return exit_code != 0 and policy != "Never"
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def observed(container: Object, kind: str, existing: Sequence[Container],
             waiting_reason: str) -> Object:
    """The status Docker shows for a container, without acting on it."""
    found = attempts_of(existing, container["name"])
    image = container.get("image", "")
    if not found:
        return status.waiting(container["name"], image, waiting_reason)
    previous = found[1] if len(found) > 1 else None
    count = int(found[0].labels.get(runtime.ATTEMPT, "0"))
    return _mark_init(runtime.container_status(found[0], image, count, previous), kind)


def _mark_init(st: Object, kind: str) -> Object:
    """An init container that exited 0 is ready (Kubernetes' prober manager says so)."""
    if kind == INIT:
        terminated = st["state"].get("terminated")
        st["ready"] = bool(terminated) and terminated.get("exitCode") == 0
    return st


def spec_of(pod: Object, name: str) -> tuple[Object, str] | None:
    """The container named `name` in the pod's spec, and its kind."""
    for kind in (APP, INIT):
        for container in pod["spec"].get(kind) or []:
            if container.get("name") == name:
                return container, kind
    return None


def creating_reason(pod: Object) -> str:
    """The waiting reason of a container not started yet (Kubernetes' default state)."""
    return "PodInitializing" if pod["spec"].get("initContainers") else "ContainerCreating"


def pod_grace(pod: Object) -> int:
    """setTerminationGracePeriod for a kill that is no probe's: the deletion's grace period,
    else the pod's."""
    return prober.grace_or_pods(pod, pod["metadata"].get("deletionGracePeriodSeconds"))


def succeeded(st: Object) -> bool:
    return (st.get("state") or {}).get("terminated", {}).get("exitCode") == 0


class ContainerSync:
    """Starts and restarts the containers of pods on one Docker engine."""

    def __init__(self, cfg: KubeletConfig, docker: runtime.DockerRuntime,
                 objects: volumes.ObjectSource, pod_dir: Callable[[str], Path],
                 event: EventSink, pool: ThreadPoolExecutor,
                 probes: prober.ProbeManager | None = None,
                 post_start: hooks.PostStartHooks | None = None) -> None:
        self.cfg, self.runtime, self.objects = cfg, docker, objects
        self.pod_dir, self.event, self.pool = pod_dir, event, pool
        self.probes, self.post_start = probes, post_start

    # --- init containers, then app containers ----------------------------------------------

    def init_containers(self, run: PodRun) -> tuple[list[Object], bool]:
        """The init containers' statuses, and whether the pod is initialized. Runs the first
        one that has not succeeded; the ones after it wait (PodInitializing)."""
        specs = run.pod["spec"].get("initContainers") or []
        app_names = {c["name"] for c in run.pod["spec"]["containers"]}
        if any(c.labels.get(runtime.CONTAINER_NAME) in app_names for c in run.existing):
            # The app containers have run: initialization is over and never repeats.
            return [observed(c, INIT, run.existing, "PodInitializing") for c in specs], True
        statuses: list[Object] = []
        for spec in specs:
            if statuses and not succeeded(statuses[-1]):
                statuses.append(status.waiting(spec["name"], spec.get("image", ""),
                                               "PodInitializing"))
                continue
            statuses.append(_mark_init(self.sync_container(run, spec, INIT), INIT))
        return statuses, all(succeeded(s) for s in statuses)

    def app_containers(self, run: PodRun) -> list[Object]:
        specs = run.pod["spec"]["containers"]
        if self.post_start is not None and any(
                hooks.handler_of(c, "postStart") is not None for c in specs):
            return self.in_spec_order(run, specs, self.post_start)
        # Without hooks, order is not observable (Kubernetes' starts take milliseconds
        # each): start side by side, as a Docker create and start take a while.
        if len(specs) == 1:
            return [self.sync_container(run, specs[0], APP)]
        return list(self.pool.map(lambda c: self.sync_container(run, c, APP), specs))

    def in_spec_order(self, run: PodRun, specs: Sequence[Object],
                      post_start: hooks.PostStartHooks) -> list[Object]:
        """SyncPod's start loop: once a container's postStart hook runs, the containers
        after it that need starting wait for it (startContainer returns when the hook
        ends). A failed hook holds nothing back: its container is killed, and Kubernetes
        goes on with the next one, restarting the failed one only on a later sync."""
        uid = str(run.pod["metadata"]["uid"])
        statuses: list[Object] = []
        held = False
        for container in specs:
            before = post_start.latest(uid, container["name"])
            statuses.append(self.sync_container(run, container, APP, held))
            now = post_start.latest(uid, container["name"])
            held = held or hook_holds(before, now)
        return statuses

    def sync_container(self, run: PodRun, container: Object, kind: str,
                       held: bool = False) -> Object:
        """Start, watch or restart one container; `held`: it may not be started now (it
        waits for the postStart hook of a container before it)."""
        found = attempts_of(run.existing, container["name"])
        if not found and held:
            return status.waiting(container["name"], container.get("image", ""),
                                  creating_reason(run.pod))
        if not found:
            return self.start(run, container, kind, 0, None)
        latest = found[0]
        count = int(latest.labels.get(runtime.ATTEMPT, "0"))
        previous = found[1] if len(found) > 1 else None
        current = runtime.container_status(latest, container.get("image", ""), count, previous)
        hooked = self.after_post_start(run, container, kind, found, count)
        if hooked is not None:
            if isinstance(hooked, dict):
                return hooked  # the hook is still running
            found = [hooked, *found[1:]]
            current = runtime.container_status(hooked, container.get("image", ""), count,
                                               previous)
        elif kind == APP and "running" in current["state"]:
            killed = self.kill_unhealthy(run.pod, container, latest, current["containerID"])
            if killed is None:
                return current
            found = [killed, *found[1:]]
            current = runtime.container_status(killed, container.get("image", ""), count,
                                               previous)
        if "terminated" not in current["state"]:
            return current
        code = current["state"]["terminated"]["exitCode"]
        if not should_restart(kind, run.pod["spec"].get("restartPolicy", "Always"), code):
            return current
        return self.restart(run, container, kind, found, count, held)

    def kill_unhealthy(self, pod: Object, container: Object, latest: Container,
                       container_id: str) -> Container | None:
        """Kill a running container whose liveness or startup probe failed, as kuberuntime
        does (a Killing event, the probe's or the pod's grace period); the container as it
        ended, or None when its probes do not ask for that."""
        why = self.probes.kill_reason(container_id) if self.probes is not None else None
        if why is None:
            return None
        policy = str(pod["spec"].get("restartPolicy", "Always"))
        return self.kill(pod, container, APP, latest,
                         prober.kill_message(container["name"], why, policy),
                         prober.grace_period(pod, container, why))

    def kill(self, pod: Object, container: Object, kind: str, latest: Container,
             message: str, grace: int) -> Container:
        """killContainer: a Killing event, the preStop hook, the stop; the container as it
        ended."""
        self.event(pod, "Normal", "Killing", message, field_path(kind, container["name"]))
        self.stop(pod, container, kind, latest, grace)
        return self.runtime.refreshed(latest)

    def stop(self, pod: Object, container: Object, kind: str, latest: Container,
             grace: int) -> None:
        """Stop a container within `grace` seconds: its preStop hook first (when it runs and
        there is time), then SIGTERM for what is left, at least hooks.MINIMUM_GRACE_S; a
        stop never waits longer than KILL_GRACE_MAX_S (it holds the pod's worker)."""
        handler = hooks.handler_of(container, "preStop")
        if handler is None or self.post_start is None or grace <= 0 or \
                latest.status != "running":
            self.runtime.stop(latest, min(grace, KILL_GRACE_MAX_S))
            return
        uid = str(pod["metadata"]["uid"])
        target = hooks.Target(pod, container, latest.id, lambda: self.runtime.pod_ip(uid))
        spent = hooks.run_pre_stop(self.post_start.runner, target, handler, grace, self.event,
                                   field_path(kind, container["name"]))
        self.runtime.stop(latest, hooks.stop_grace(grace, spent, KILL_GRACE_MAX_S))

    def announce_stop(self, pod: Object, container: Container) -> None:
        """killContainersWithSyncResult's Killing event, for a running container of a pod
        being deleted."""
        if container.status != "running":
            return
        name = str(container.labels.get(runtime.CONTAINER_NAME, ""))
        found = spec_of(pod, name)
        self.event(pod, "Normal", "Killing", f"Stopping container {name}",
                   field_path(found[1] if found else APP, name))

    def stop_for_deletion(self, pod: Object, container: Container, grace: int) -> None:
        """A pod being deleted: stop (preStop first) and remove one of its containers."""
        found = spec_of(pod, str(container.labels.get(runtime.CONTAINER_NAME, "")))
        if found is not None and hooks.handler_of(found[0], "preStop") is not None:
            self.stop(pod, found[0], found[1], container, grace)
        self.runtime.stop_and_remove(container, min(grace, KILL_GRACE_MAX_S))

    # --- postStart --------------------------------------------------------------------------

    def after_post_start(self, run: PodRun, container: Object, kind: str,
                         found: list[Container], count: int) -> Object | Container | None:
        """Where the latest attempt's postStart hook stands: None when it has none running
        or it succeeded; the status to report while it runs; or, when it failed, the
        container killed for it (FailedPostStartHook, as startContainer does)."""
        latest = found[0]
        if self.post_start is None:
            return None
        hook = self.post_start.of(latest.id)
        if hook is None:
            return None
        name = container["name"]
        if not hook.done:
            return self.before_start(run, container, found[1] if len(found) > 1 else None,
                                     count)
        self.post_start.forget(latest.id)
        if not hook.error:
            run.memory.hook_errors.pop(name, None)
            return None
        run.memory.hook_errors[name] = hook.error
        self.event(run.pod, "Warning", hooks.POST_START_FAILED, "PostStartHook failed",
                   field_path(kind, name))
        return self.kill(run.pod, container, kind, latest, hooks.POST_START_FAILED,
                         pod_grace(run.pod))

    def before_start(self, run: PodRun, container: Object, previous: Container | None,
                     count: int) -> Object:
        """The status of a container whose postStart hook runs: what it was before this
        attempt started (a kubelet writes no status while its sync waits for the hook)."""
        name, image = container["name"], container.get("image", "")
        if previous is None:
            return status.waiting(name, image, creating_reason(run.pod))
        before = runtime.container_status(previous, image, max(count - 1, 0), None)
        error = run.memory.hook_errors.get(name)
        if error is None:
            return before
        return status.waiting(name, image, hooks.POST_START_ERROR, error, before["restartCount"],
                              before["state"])

    def restart(self, run: PodRun, container: Object, kind: str, found: list[Container],
                count: int, held: bool = False) -> Object:
        name, latest = container["name"], found[0]
        backoff = run.memory.backoff.setdefault(name, Backoff())
        finished = runtime.finished_at(latest)
        last = runtime.container_status(latest, container.get("image", ""), count, None)
        in_backoff = time.time() - _epoch(finished) < backoff.delay
        if in_backoff or (held and backoff.reported_for == finished):
            # Held once its back-off is over, it shows what it showed (the reason cache).
            return self._backing_off(run.pod, container, kind, backoff, finished, count,
                                     last["state"])
        if held:
            return runtime.container_status(latest, container.get("image", ""), count,
                                            found[1] if len(found) > 1 else None)
        backoff.delay = min(backoff.delay * 2 or self.cfg.backoff_initial_s,
                            self.cfg.backoff_max_s)
        for old in found[1:]:
            self.runtime.stop_and_remove(old, timeout=0)  # keep only the last attempt
        return self.start(run, container, kind, count + 1, latest)

    def _backing_off(self, pod: Object, container: Object, kind: str, backoff: Backoff,
                     finished: str, count: int, last: Object) -> Object:
        name, meta = container["name"], pod["metadata"]
        who = f"{meta['name']}_{meta['namespace']}({meta['uid']})"
        if backoff.reported_for != finished:
            backoff.reported_for = finished
            self.event(pod, "Warning", "BackOff",
                       f"Back-off restarting failed container {name} in pod {who}",
                       field_path(kind, name))
        message = f"back-off {int(backoff.delay)}s restarting failed container={name} pod={who}"
        return status.waiting(name, container.get("image", ""), "CrashLoopBackOff", message,
                              count, last)

    # --- one attempt ----------------------------------------------------------------------

    def start(self, run: PodRun, container: Object, kind: str, attempt: int,
              previous: Container | None) -> Object:
        pod, name, image = run.pod, container["name"], container.get("image", "")
        where = field_path(kind, name)
        last = (runtime.container_status(previous, image, attempt - 1, None)["state"]
                if previous is not None else None)
        try:
            cfg = self.container_config(pod, container, run.ready)
        except (envvars.ContainerConfigError, subpath.SubPathError, OSError,
                mount.MountError) as e:
            self._report(pod, run.memory, where, f"Error: {e}")
            return status.waiting(name, image, "CreateContainerConfigError", str(e),
                                  attempt, last)
        try:
            present = self.runtime.ensure_image(image)
        except runtime.ImageMissing as e:
            self._report(pod, run.memory, where, str(e))
            return status.waiting(name, image, "ErrImagePull", str(e), attempt, last)
        if present:
            self.event(pod, "Normal", "Pulled",
                       f'Container image "{image}" already present on machine', where)
        try:
            created = self.runtime.run(pod, container, cfg, attempt, run.sandbox_id,
                                       run.sandbox)
        except runtime.RuntimeError_ as e:
            self._report(pod, run.memory, where, f"Error: {e}")
            return status.waiting(name, image, "CreateContainerError", str(e), attempt, last)
        self.event(pod, "Normal", "Created", f"Created container {name}", where)
        self.event(pod, "Normal", "Started", f"Started container {name}", where)
        handler = hooks.handler_of(container, "postStart")
        if handler is not None and self.post_start is not None and created.status == "running":
            sandbox = run.sandbox
            self.post_start.launch(hooks.Target(pod, container, created.id,
                                                lambda: runtime.address_of(sandbox())),
                                   handler)
            return self.before_start(run, container, previous, attempt)
        return runtime.container_status(created, image, attempt, previous)

    def _report(self, pod: Object, memory: PodMemory, where: str, message: str) -> None:
        if message not in memory.reported:
            memory.reported.add(message)
            self.event(pod, "Warning", "Failed", message, where)

    def container_config(self, pod: Object, container: Object,
                         ready: Mapping[str, volumes.ReadyVolume]) -> runtime.ContainerConfig:
        env = envvars.resolve(pod, container, self.objects)
        entrypoint, cmd = envvars.command_line(container, env)
        limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        return runtime.ContainerConfig(
            image=container.get("image", ""), entrypoint=entrypoint, cmd=cmd, env=env,
            working_dir=container.get("workingDir", ""),
            mounts=self.container_mounts(pod, container, ready, env),
            mem_limit=int(quantity.parse_quantity(limit)) if limit else None)

    def container_mounts(self, pod: Object, container: Object,
                         ready: Mapping[str, volumes.ReadyVolume], env: Mapping[str, str]
                         ) -> tuple[tuple[str, str, bool], ...]:
        out = []
        uid = pod["metadata"]["uid"]
        for index, vm in enumerate(container.get("volumeMounts") or []):
            volume = ready.get(vm["name"])
            if volume is None:
                raise envvars.ContainerConfigError(f"volumeMount {vm['name']!r}: no such volume")
            read_only = bool(vm.get("readOnly")) or volume.read_only
            source = volume.host_path
            sub_path = mount_sub_path(vm, env)
            if sub_path:
                target = (self.pod_dir(uid) / "volume-subpaths" / vm["name"]
                          / container["name"] / str(index))
                try:
                    source = subpath.prepare(volume.host_path, sub_path, target, read_only)
                except subpath.SubPathError as e:
                    raise subpath.SubPathError(
                        f'failed to prepare subPath for volumeMount "{vm["name"]}" of '
                        f'container "{container["name"]}": {e}') from e
            out.append((str(source), vm["mountPath"], read_only))
        return tuple(out)


def mount_sub_path(volume_mount: Object, env: Mapping[str, str]) -> str:
    """The subPath a volumeMount asks for, `subPathExpr` expanded from the container's
    environment, checked as the kubelet's makeMounts checks it."""
    sub_path = str(volume_mount.get("subPath") or "")
    if volume_mount.get("subPathExpr"):
        sub_path = envvars.expand_sub_path_expr(str(volume_mount["subPathExpr"]), env)
    if not sub_path:
        return ""
    if PurePosixPath(sub_path).is_absolute():
        raise envvars.ContainerConfigError(
            f"error SubPath `{sub_path}` must not be an absolute path")
    if ".." in sub_path.split("/"):
        raise envvars.ContainerConfigError(
            f"unable to provision SubPath `{sub_path}`: must not contain '..'")
    return sub_path


def hook_holds(before: hooks.PostStart | None, now: hooks.PostStart | None) -> bool:
    """Whether a container's postStart hook, `before` and after its sync, holds back
    the containers after it: it does while it runs, unless it is the rerun of a hook that
    failed in this very sync (Kubernetes starts the next containers before that rerun)."""
    if now is None or now.done:
        return False
    return before is None or before is now or not before.error


def _epoch(stamp: str) -> float:
    if not stamp:
        return 0.0
    return time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone


def host_ports(pod: Object) -> dict[str, tuple[str, int]]:
    """The host ports of all the pod's containers, published by its sandbox (the network
    namespace they share)."""
    ports = {}
    spec = pod["spec"]
    for container in (spec.get("initContainers") or []) + spec["containers"]:
        for p in container.get("ports") or []:
            if p.get("hostPort"):
                key = f"{p['containerPort']}/{p.get('protocol', 'TCP').lower()}"
                ports[key] = (p.get("hostIP") or "0.0.0.0", int(p["hostPort"]))
    return ports
