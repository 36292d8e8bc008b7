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


def phase(restart_policy: str, statuses: Sequence[Object], container_count: int) -> str:
    """Kubernetes' getPhase for a pod without init containers."""
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
    if waiting_count > 0 or unknown > 0:
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


def _condition(kind: str, ok: bool, reason: str = "", message: str = "") -> Object:
    c: Object = {"type": kind, "status": "True" if ok else "False"}
    if not ok and reason:
        c["reason"] = reason
    if not ok and message:
        c["message"] = message
    return c


def conditions(previous: Sequence[Object], pod_phase: str, statuses: Sequence[Object],
               container_names: Sequence[str], at: str) -> list[Object]:
    """The four pod conditions; lastTransitionTime moves only when a status changes."""
    ready_names = {s["name"] for s in statuses if s.get("ready")}
    unready = [n for n in container_names if n not in ready_names]
    if pod_phase == "Succeeded" or pod_phase == "Failed":
        reason, message = "PodCompleted", ""
    else:
        reason, message = "ContainersNotReady", (
            f"containers with unready status: [{' '.join(unready)}]")
    wanted = [_condition("PodScheduled", True), _condition("Initialized", True),
              _condition("ContainersReady", not unready, reason, message),
              _condition("Ready", not unready, reason, message)]
    before = {c.get("type"): c for c in previous}
    for c in wanted:
        old = before.get(c["type"])
        same = old is not None and old.get("status") == c["status"]
        c["lastProbeTime"] = None
        c["lastTransitionTime"] = old.get("lastTransitionTime", at) if same and old else at
    return wanted
