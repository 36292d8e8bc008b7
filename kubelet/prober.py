"""Container probes, as Kubernetes' prober manager runs them: a worker per probe of each
container (liveness, readiness, startup), each on its own thread and its own period, so that
no probe ever waits for a pod sync nor a sync for a probe.

A worker reads the pod's newest status (the one the kubelet last computed, as Kubernetes'
workers read the status manager), follows the container across restarts by its container
ID, and publishes a result once `failureThreshold` failures or `successThreshold` successes
come in a row. A published change wakes the pod's sync: readiness and startup turn into
`ready` and `started` (`update_statuses`, Kubernetes' UpdatePodStatus), a liveness or
startup failure makes the sync kill and restart the container (`kill_reason`). The rules of
worker.go are kept: readiness starts as failure, liveness as success, startup unknown; no
liveness or readiness probe runs before the startup probe succeeds, nor before
`initialDelaySeconds`; after a liveness failure, or a startup verdict, a worker holds until
the container has a new ID. A probe that errors (no such port, Docker refusing the exec) is
thrown away, with an Unhealthy "errored" event. gRPC probes are not implemented: such a
probe errors every period, and says so in its events.
"""

from __future__ import annotations

import calendar
import enum
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kubelet import envvars, status
from kubelet import probe_runners as runners

Object = dict[str, Any]
logger = logging.getLogger(__name__)
# (pod, type, reason, message, fieldPath)
EventSink = Callable[[Object, str, str, str, str], None]
MAX_RETRIES = 3  # maxProbeRetries: a probe that errors is tried again at once, twice
GRPC_UNSUPPORTED = "grpc probes are not supported by the storagelab kubelet"


class ProbeType(enum.Enum):
    LIVENESS = "Liveness"
    READINESS = "Readiness"
    STARTUP = "Startup"

    @property
    def field(self) -> str:
        return f"{self.name.lower()}Probe"


class Result(enum.Enum):
    """results.Result: what the kubelet acts on."""

    UNKNOWN = "Unknown"
    SUCCESS = "Success"
    FAILURE = "Failure"


INITIAL = {ProbeType.READINESS: Result.FAILURE, ProbeType.LIVENESS: Result.SUCCESS,
           ProbeType.STARTUP: Result.UNKNOWN}


@dataclass(frozen=True)
class ProbeSpec:
    """One probe with the API's defaults filled in (the apiserver fills them too; a kubelet
    given a pod from elsewhere still behaves)."""

    kind: ProbeType
    handler: str  # exec, httpGet, tcpSocket, grpc or "" (none)
    action: Object
    initial_delay_s: int = 0
    period_s: int = 10
    timeout_s: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace_s: int | None = None


HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")


def probe_spec(kind: ProbeType, raw: Object) -> ProbeSpec:
    def number(key: str, default: int) -> int:
        value = raw.get(key)
        return int(value) if isinstance(value, int) and value > 0 else default
    handler = next((h for h in HANDLERS if isinstance(raw.get(h), dict)), "")
    grace = raw.get("terminationGracePeriodSeconds")
    return ProbeSpec(
        kind, handler, dict(raw.get(handler) or {}) if handler else {},
        initial_delay_s=number("initialDelaySeconds", 0), period_s=number("periodSeconds", 10),
        timeout_s=number("timeoutSeconds", 1),
        # Liveness and startup must succeed once (validation says so; we do not trust it).
        success_threshold=(number("successThreshold", 1) if kind is ProbeType.READINESS
                           else 1),
        failure_threshold=number("failureThreshold", 3),
        termination_grace_s=int(grace) if isinstance(grace, int) else None)


def probes_of(container: Object) -> list[ProbeSpec]:
    return [probe_spec(kind, container[kind.field]) for kind in ProbeType
            if isinstance(container.get(kind.field), dict)]


@dataclass
class Threshold:
    """How many times in a row a probe said the same thing (worker.go's resultRun)."""

    last: Result | None = None
    run: int = 0

    def observe(self, result: Result, spec: ProbeSpec) -> bool:
        """Count `result`; True when it is to be published (its threshold is reached)."""
        if result == self.last:
            self.run += 1
        else:
            self.last, self.run = result, 1
        if result is Result.FAILURE and self.run < spec.failure_threshold:
            return False
        return not (result is Result.SUCCESS and self.run < spec.success_threshold)


def verdict(answer: runners.Answer) -> Result:
    return Result.SUCCESS if answer.outcome in (runners.Outcome.SUCCESS,
                                                runners.Outcome.WARNING) else Result.FAILURE


def event_of(kind: ProbeType, answer: runners.Answer) -> tuple[str, str] | None:
    """(reason, message) of the Warning event prober.go records for an answer, if any."""
    if answer.outcome is runners.Outcome.FAILURE:
        return "Unhealthy", f"{kind.value} probe failed: {answer.output}"
    if answer.outcome is runners.Outcome.WARNING:
        return "ProbeWarning", f"{kind.value} probe warning: {answer.output}"
    return None


def errored_event(kind: ProbeType, error: Exception) -> tuple[str, str]:
    return "Unhealthy", f"{kind.value} probe errored and resulted in unknown state: {error}"


def kill_message(container: str, kind: ProbeType, restart_policy: str) -> str:
    """The Killing event's message (kuberuntime's computePodActions)."""
    message = f"Container {container} failed {kind.value.lower()} probe"
    return message + (", will be restarted" if restart_policy != "Never" else "")


class Results:
    """One probe type's published results by container ID (results.Manager); a change
    calls `changed` with the pod's uid."""

    def __init__(self, changed: Callable[[str], None]) -> None:
        self.lock = threading.Lock()
        self.by_id: dict[str, Result] = {}
        self.changed = changed

    def get(self, container_id: str) -> Result | None:
        with self.lock:
            return self.by_id.get(container_id)

    def set(self, container_id: str, result: Result, uid: str) -> None:
        with self.lock:
            before = self.by_id.get(container_id)
            self.by_id[container_id] = result
        if before != result:
            self.changed(uid)

    def remove(self, container_id: str) -> None:
        with self.lock:
            self.by_id.pop(container_id, None)


def _container_status(pod_status: Object, name: str) -> Object | None:
    for key in ("containerStatuses", "initContainerStatuses"):
        for st in pod_status.get(key) or []:
            if st.get("name") == name and st.get("containerID"):
                return dict(st)
    return None


def _running_for(st: Object, now: float) -> float:
    started = ((st.get("state") or {}).get("running") or {}).get("startedAt") or ""
    if not started:
        return 0.0
    return now - calendar.timegm(time.strptime(started, "%Y-%m-%dT%H:%M:%SZ"))


class Worker:
    """Probes one container with one probe, every period, until stopped or pointless."""

    def __init__(self, manager: ProbeManager, pod: Object, container: Object,
                 spec: ProbeSpec) -> None:
        self.manager, self.pod, self.container, self.spec = manager, pod, container, spec
        self.uid = str(pod["metadata"]["uid"])
        self.results = manager.results[spec.kind]
        self.container_id = ""
        self.threshold = Threshold()
        self.on_hold = False
        self.stopped = False
        self.wake = threading.Event()  # a stop or a manual trigger
        self.thread = threading.Thread(
            target=self.run, daemon=True,
            name=f"probe-{spec.kind.value.lower()}-{container['name']}")

    def stop(self) -> None:
        self.stopped = True
        self.wake.set()

    def trigger(self) -> None:
        self.wake.set()

    def run(self) -> None:
        period = float(self.spec.period_s)
        # A kubelet that just started spreads its probes over a period instead of all at once.
        if period > time.monotonic() - self.manager.started:
            self.wake.wait(random.random() * period)
        try:
            while not self.stopped and self.do_probe():
                self._wait(period)
        finally:
            if self.container_id:
                self.results.remove(self.container_id)
            self.manager.worker_done(self)

    def _wait(self, period: float) -> None:
        self.wake.wait(period)
        self.wake.clear()

    def do_probe(self) -> bool:
        """One round of worker.go's doProbe; False when the worker should end."""
        try:
            return self._do_probe()
        except Exception:  # a broken probe must not end the worker
            logger.exception("probe of %s failed", self.container["name"])
            return True

    def _do_probe(self) -> bool:
        pod_status = self.manager.pod_status(self.uid)
        if pod_status is None:
            return True  # not synced yet, or gone
        if pod_status.get("phase") in ("Succeeded", "Failed"):
            return False
        st = _container_status(pod_status, self.container["name"])
        if st is None:
            return True  # not created yet
        if st["containerID"] != self.container_id:
            if self.container_id:
                self.results.remove(self.container_id)
            self.container_id = st["containerID"]
            self.results.set(self.container_id, INITIAL[self.spec.kind], self.uid)
            self.on_hold = False  # a new container: probe it afresh
        if self.on_hold:
            return True
        state = st.get("state") or {}
        if "waiting" in state:
            # Created, not started yet (it waits for its sandbox here, which Kubernetes'
            # status rarely shows): a failure now would get it killed as soon as it runs.
            return True
        if "running" not in state:
            self.results.set(self.container_id, Result.FAILURE, self.uid)
            return self._restart_policy() != "Never"
        if _running_for(st, time.time()) < self.spec.initial_delay_s:
            return True
        is_startup = self.spec.kind is ProbeType.STARTUP
        if bool(st.get("started")) == is_startup:
            return True  # startup probes stop once started; the others wait until then
        result = self.probe(pod_status.get("podIP") or "")
        if result is not None:
            self._publish(result)
        return True

    def _publish(self, result: Result) -> None:
        if not self.threshold.observe(result, self.spec):
            return
        self.results.set(self.container_id, result, self.uid)
        if (self.spec.kind is ProbeType.LIVENESS and result is Result.FAILURE) or (
                self.spec.kind is ProbeType.STARTUP):
            # Hold until the container is replaced: no exec into a container being killed.
            self.on_hold = True
            self.threshold.run = 0

    def _restart_policy(self) -> str:
        return str(self.pod["spec"].get("restartPolicy", "Always"))

    def probe(self, pod_ip: str) -> Result | None:
        """Run the probe (retrying a probe that errors, as prober.go does) and record its
        event; None when it errored (the result is thrown away)."""
        error: Exception = runners.ProbeError("no attempt")
        for _ in range(MAX_RETRIES):
            try:
                answer = self.manager.run(self.spec, self.container, self.container_id,
                                          pod_ip)
                break
            except runners.ProbeError as e:
                error = e
        else:
            self._event(*errored_event(self.spec.kind, error))
            return None
        found = event_of(self.spec.kind, answer)
        if found is not None:
            self._event(*found)
        return verdict(answer)

    def _event(self, reason: str, message: str) -> None:
        self.manager.event(self.pod, "Warning", reason, message,
                           f"spec.containers{{{self.container['name']}}}")


class ProbeManager:
    """The probe workers of every pod on this node, and their published results."""

    def __init__(self, docker_api: Any, event: EventSink, changed: Callable[[str], None]
                 ) -> None:
        self.docker_api, self.event = docker_api, event
        self.results = {kind: Results(changed) for kind in ProbeType}
        self.lock = threading.Lock()
        self.workers: dict[tuple[str, str, ProbeType], Worker] = {}
        self.statuses: dict[str, Object] = {}
        self.started = time.monotonic()

    # --- workers ------------------------------------------------------------------------

    def add_pod(self, pod: Object) -> None:
        """A worker for each probe of the pod's containers that has none (AddPod)."""
        uid = str(pod["metadata"]["uid"])
        for container in pod["spec"]["containers"]:
            for spec in probes_of(container):
                key = (uid, str(container["name"]), spec.kind)
                with self.lock:
                    if key in self.workers:
                        continue
                    worker = self.workers[key] = Worker(self, pod, container, spec)
                worker.thread.start()

    def remove_pod(self, uid: str) -> None:
        """Stop the pod's workers (RemovePod); each clears its results as it ends."""
        with self.lock:
            found = [w for key, w in self.workers.items() if key[0] == uid]
            self.statuses.pop(uid, None)
        for worker in found:
            worker.stop()

    def cleanup(self, known: Iterable[str]) -> None:
        """Stop the workers of pods that are no longer wanted (CleanupPods)."""
        wanted = set(known)
        with self.lock:
            gone = {key[0] for key in self.workers if key[0] not in wanted}
        for uid in gone:
            self.remove_pod(uid)

    def worker_done(self, worker: Worker) -> None:
        key = (worker.uid, str(worker.container["name"]), worker.spec.kind)
        with self.lock:
            if self.workers.get(key) is worker:
                del self.workers[key]

    def worker_of(self, uid: str, name: str, kind: ProbeType) -> Worker | None:
        with self.lock:
            return self.workers.get((uid, name, kind))

    def worker_count(self) -> int:
        with self.lock:
            return len(self.workers)

    # --- what workers read, and what the sync reads back ---------------------------------

    def set_status(self, uid: str, pod_status: Object) -> None:
        """The pod's newest status as the kubelet computed it (the workers' source)."""
        with self.lock:
            self.statuses[uid] = pod_status

    def pod_status(self, uid: str) -> Object | None:
        with self.lock:
            return self.statuses.get(uid)

    def run(self, spec: ProbeSpec, container: Object, container_id: str, pod_ip: str
            ) -> runners.Answer:
        """One attempt of a probe against the container (raises ProbeError)."""
        timeout = float(spec.timeout_s)
        if spec.handler == "exec":
            command = [envvars.expand(str(c), runners.static_env(container))
                       for c in spec.action.get("command") or []]
            return runners.run_exec(self.docker_api, container_id.removeprefix("docker://"),
                                    command, timeout)
        if spec.handler == "httpGet":
            url = runners.probe_url(spec.action, container, pod_ip)
            return runners.run_http(url, runners.probe_headers(spec.action), timeout)
        if spec.handler == "tcpSocket":
            host, port = runners.tcp_target(spec.action, container, pod_ip)
            return runners.run_tcp(host, port, timeout)
        if spec.handler == "grpc":
            raise runners.ProbeError(GRPC_UNSUPPORTED)
        raise runners.ProbeError(f"missing probe handler for {container['name']}")

    def update_statuses(self, uid: str, statuses: list[Object]) -> list[Object]:
        """`started` and `ready` of the app containers from the probes (UpdatePodStatus)."""
        return [self._updated(uid, st) for st in statuses]

    def _updated(self, uid: str, st: Object) -> Object:
        container_id, name = str(st.get("containerID") or ""), str(st["name"])
        startup = self._probed(uid, name, container_id, ProbeType.STARTUP)
        readiness = self._probed(uid, name, container_id, ProbeType.READINESS)
        if readiness is False and self.results[ProbeType.READINESS].get(container_id) is None:
            worker = self.worker_of(uid, name, ProbeType.READINESS)
            if worker is not None:
                worker.trigger()  # no result yet for this container: probe it now
        return status.probed(st, startup, readiness)

    def _probed(self, uid: str, name: str, container_id: str, kind: ProbeType) -> bool | None:
        """True/False from the probe's result (no result yet while it has a worker: False);
        None when the container has no such probe."""
        result = self.results[kind].get(container_id) if container_id else None
        if result is not None:
            return result is Result.SUCCESS
        return False if self.worker_of(uid, name, kind) is not None else None

    def kill_reason(self, container_id: str) -> ProbeType | None:
        """The probe whose failure asks for the container to be killed, if any."""
        for kind in (ProbeType.LIVENESS, ProbeType.STARTUP):
            if self.results[kind].get(container_id) is Result.FAILURE:
                return kind
        return None


def grace_period(pod: Object, container: Object, kind: ProbeType) -> int:
    """The probe's terminationGracePeriodSeconds, else the pod's (default 30)."""
    raw = container.get(kind.field) or {}
    return grace_or_pods(pod, raw.get("terminationGracePeriodSeconds"))


def grace_or_pods(pod: Object, seconds: Any) -> int:
    """`seconds` when it is a number of seconds, else the pod's terminationGracePeriodSeconds
    (default 30); never negative (setTerminationGracePeriod)."""
    if not isinstance(seconds, int):
        seconds = pod["spec"].get("terminationGracePeriodSeconds", 30)
    return max(int(seconds or 0), 0)

