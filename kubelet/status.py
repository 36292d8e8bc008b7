"""Pod status from container states: phase, conditions, containerStatuses, as a kubelet
reports them.

Pure functions over Kubernetes JSON, so each rule (Kubernetes' `getPhase`, the readiness
conditions and their reasons) is pinned by table tests without Docker.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

Object = dict[str, Any]
CONDITION_TYPES = ("PodScheduled", "Initialized", "ContainersReady", "Ready")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def waiting(name: str, image: str, reason: str, message: str = "", restart_count: int = 0,
            last: Object | None = None) -> Object:
    """A containerStatus in state waiting."""
    state: Object = {"reason": reason} | ({"message": message} if message else {})
    return {"name": name, "image": image, "imageID": "", "ready": False, "started": False,
            "restartCount": restart_count, "state": {"waiting": state},
            "lastState": last or {}}


def probed(st: Object, started: bool | None, ready: bool | None) -> Object:
    """A containerStatus with `started` and `ready` as the probes say (Kubernetes'
    UpdatePodStatus): `started` from the startup probe, `ready` from the readiness probe
    once started; None means the container has no such probe, and then running is enough.
    A container that does not run is neither."""
    running = "running" in (st.get("state") or {})
    is_started = running and (started is None or started)
    is_ready = is_started and (ready is None or ready)
    return {**st, "started": is_started, "ready": is_ready}


def phase(restart_policy: str, statuses: Sequence[Object], container_count: int,
          init_statuses: Sequence[Object] = (), init_count: int = 0) -> str:
    """Kubernetes' getPhase: init containers first (a failed one under restartPolicy Never
    fails the pod; a running or unstarted one keeps it Pending), then the app containers."""
    pending_init, failed_init = _init_progress(init_statuses, init_count)
    running = stopped = succeeded = waiting_count = 0
    for status in statuses:
        state = status.get("state") or {}
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            succeeded += state["terminated"].get("exitCode") == 0
        elif "terminated" in (status.get("lastState") or {}):
            stopped += 1  # waiting to restart after having run
        else:
            waiting_count += 1
    unknown = container_count - len(statuses)
    if failed_init > 0 and restart_policy == "Never":
        return "Failed"
    if pending_init > 0 or waiting_count > 0 or unknown > 0:
        return "Pending"
    if running > 0:
        return "Running"
    if stopped > 0:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _init_progress(init_statuses: Sequence[Object], init_count: int) -> tuple[int, int]:
    """(pending, failed) init containers as getPhase counts them."""
    pending = max(init_count - len(init_statuses), 0)
    failed = 0
    for status in init_statuses:
        state, last = status.get("state") or {}, status.get("lastState") or {}
        if "terminated" in state:
            failed += state["terminated"].get("exitCode") != 0
        elif "waiting" in state and "terminated" in last:
            failed += last["terminated"].get("exitCode") != 0
        else:
            pending += 1  # running, or not started yet
    return pending, failed


def _condition(kind: str, ok: bool, reason: str = "", message: str = "") -> Object:
    c: Object = {"type": kind, "status": "True" if ok else "False"}
    if not ok and reason:
        c["reason"] = reason
    if not ok and message:
        c["message"] = message
    return c


def _names(names: Sequence[str]) -> str:
    return f"[{' '.join(names)}]"  # Go's %s of a []string


def initialized(init_names: Sequence[str], init_statuses: Sequence[Object],
                statuses: Sequence[Object], pod_phase: str) -> Object:
    """Kubernetes' GeneratePodInitializedCondition (regular init containers)."""
    by_name = {s["name"]: s for s in init_statuses}
    unknown = [n for n in init_names if n not in by_name]
    incomplete = [n for n in init_names if n in by_name and not by_name[n].get("ready")]
    if pod_phase == "Succeeded" and not unknown:
        return {"type": "Initialized", "status": "True", "reason": "PodCompleted"}
    if any("running" in (s.get("state") or {}) or "terminated" in (s.get("state") or {})
           or "terminated" in (s.get("lastState") or {}) for s in statuses):
        return _condition("Initialized", True)  # app containers ran: initialized before
    messages = ([f"containers with unknown status: {_names(unknown)}"] if unknown else []) + (
        [f"containers with incomplete status: {_names(incomplete)}"] if incomplete else [])
    return _condition("Initialized", not messages, "ContainersNotInitialized",
                      ", ".join(messages))


def containers_ready(pod_phase: str, statuses: Sequence[Object],
                     container_names: Sequence[str]) -> tuple[bool, str, str]:
    """(ready, reason, message) shared by ContainersReady and Ready."""
    if pod_phase in ("Succeeded", "Failed"):
        return False, "PodCompleted" if pod_phase == "Succeeded" else "PodFailed", ""
    ready_names = {s["name"] for s in statuses if s.get("ready")}
    unready = [n for n in container_names if n not in ready_names]
    return not unready, "ContainersNotReady", (
        f"containers with unready status: {_names(unready)}")


def conditions(previous: Sequence[Object], pod_phase: str, statuses: Sequence[Object],
               container_names: Sequence[str], at: str, init_names: Sequence[str] = (),
               init_statuses: Sequence[Object] = ()) -> list[Object]:
    """The four pod conditions; lastTransitionTime moves only when a status changes."""
    ready, reason, message = containers_ready(pod_phase, statuses, container_names)
    wanted = [_condition("PodScheduled", True),
              initialized(init_names, init_statuses, statuses, pod_phase),
              _condition("ContainersReady", ready, reason, message),
              _condition("Ready", ready, reason, message)]
    before = {c.get("type"): c for c in previous}
    for c in wanted:
        old = before.get(c["type"])
        same = old is not None and old.get("status") == c["status"]
        c["lastProbeTime"] = None
        c["lastTransitionTime"] = old.get("lastTransitionTime", at) if same and old else at
    return wanted
