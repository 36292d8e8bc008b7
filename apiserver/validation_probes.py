"""Validation of container probes and lifecycle hooks, with kube-apiserver's field paths and
messages.

Kubernetes refuses a pod whose liveness, readiness or startup probe the kubelet could not run
(no handler, two handlers, port 0, a negative period ...) instead of letting the kubelet fail
later; clients and tests match the wording. The rules are those of validateLivenessProbe,
validateReadinessProbe, validateStartupProbe, validateProbe and validateHandler in
pkg/apis/core/validation/validation.go, and the init-container rule that only a restartable
init container (`restartPolicy: Always`, a sidecar) may carry probes. Lifecycle hooks follow
validateLifecycle and validateLifecycleHandler: one handler among exec, httpGet, tcpSocket
(accepted, though the kubelet cannot run it) and sleep, whose seconds must lie in
1..terminationGracePeriodSeconds (the zero of PodLifecycleSleepActionAllowZero, alpha and off
in 1.32, is refused); and only a sidecar among init containers may have them.

Probes are validated after defaulting (apiserver.defaults): a zero timeoutSeconds,
periodSeconds, successThreshold or failureThreshold has become 1, 10, 1 or 3, and an httpGet
without path or scheme has "/" and "HTTP", so only values a client set on purpose fail here.
Values of the wrong JSON type fail decoding in Kubernetes (a 400), so they are skipped here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from apimachinery import names
from apimachinery.errors import Cause

Obj = Mapping[str, Any]

PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")  # the order Kubernetes checks them in
LIFECYCLE_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")
HOOKS = ("postStart", "preStop")
DEFAULT_GRACE = 30
HTTP_SCHEMES = ("HTTP", "HTTPS")
NONNEGATIVE_FIELDS = ("initialDelaySeconds", "timeoutSeconds", "periodSeconds",
                      "successThreshold", "failureThreshold")
INIT_CONTAINER_RESTART_POLICIES = ("Always",)

MORE_THAN_ONE_HANDLER = "may not specify more than 1 handler type"
NO_HANDLER = "must specify a handler type"
NEGATIVE = "must be greater than or equal to 0"
NOT_FOR_INIT_CONTAINERS = "may not be set for init containers without restartPolicy=Always"
NOT_FOR_REGULAR_CONTAINERS = "may not be set for non-init containers"
HTTP_HEADER_NAME_FMT = "[-A-Za-z0-9]+"
HTTP_HEADER_NAME_MSG = names.regex_error(
    "a valid HTTP header must consist of alphanumeric characters or '-'",
    HTTP_HEADER_NAME_FMT, "X-Header-Name")


def _int(value: Any) -> int | None:
    """An int32 as Go decodes it; None for a wrong type (bool is not an int in JSON)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _map(value: Any) -> Obj:
    return value if isinstance(value, Mapping) else {}


# --- handlers --------------------------------------------------------------------------------

def validate_port_num_or_name(path: str, port: Any) -> list[Cause]:
    """ValidatePortNumOrName: a number 1-65535 or an IANA_SVC_NAME. A missing port is the
    IntOrString zero value, the number 0."""
    if isinstance(port, str):
        return [names.invalid(path, port, m) for m in names.is_valid_port_name(port)]
    number = 0 if port is None else _int(port)
    if number is None:
        return []
    return [names.invalid(path, number, m) for m in names.is_valid_port_num(number)]


def _validate_exec(path: str, action: Obj) -> list[Cause]:
    return [] if action.get("command") else [names.required(f"{path}.command")]


def _validate_http_get(path: str, action: Obj) -> list[Cause]:
    causes: list[Cause] = []
    if not action.get("path"):
        causes.append(names.required(f"{path}.path"))
    causes += validate_port_num_or_name(f"{path}.port", action.get("port"))
    scheme = action.get("scheme")
    if scheme not in HTTP_SCHEMES:
        causes.append(names.not_supported(f"{path}.scheme", "" if scheme is None else scheme,
                                          HTTP_SCHEMES))
    for header in action.get("httpHeaders") or []:
        name = _map(header).get("name")
        name = name if isinstance(name, str) else ""
        if re.fullmatch(HTTP_HEADER_NAME_FMT, name) is None:
            # Kubernetes names the list, not the entry
            causes.append(names.invalid(f"{path}.httpHeaders", name, HTTP_HEADER_NAME_MSG))
    return causes


def _validate_tcp_socket(path: str, action: Obj) -> list[Cause]:
    return validate_port_num_or_name(f"{path}.port", action.get("port"))


def _validate_grpc(path: str, action: Obj) -> list[Cause]:
    port = action.get("port")
    # grpc.port is an int32, never a name
    return validate_port_num_or_name(f"{path}.port", None if isinstance(port, str) else port)


def sleep_error(grace: int) -> str:
    return (f"must be greater than 0 and less than terminationGracePeriodSeconds ({grace}). "
            "Enable AllowPodLifecycleSleepActionZeroValue feature gate for zero sleep.")


def _sleep_validator(grace: int | None) -> Callable[[str, Obj], list[Cause]]:
    """validateSleepAction: 0 < seconds <= the pod's terminationGracePeriodSeconds (no
    check when the grace period is itself invalid: that error is reported already)."""
    def validate(path: str, action: Obj) -> list[Cause]:
        raw = action.get("seconds")
        seconds = 0 if raw is None else _int(raw)
        if grace is None or seconds is None or 0 < seconds <= grace:
            return []
        return [names.invalid(path, seconds, sleep_error(grace))]
    return validate


_ACTIONS: dict[str, Callable[[str, Obj], list[Cause]]] = {
    "exec": _validate_exec, "httpGet": _validate_http_get,
    "tcpSocket": _validate_tcp_socket, "grpc": _validate_grpc}


def validate_handler(path: str, probe: Obj, handlers: tuple[str, ...] = HANDLERS,
                     actions: Mapping[str, Callable[[str, Obj], list[Cause]]] | None = None
                     ) -> list[Cause]:
    """validateHandler (and validateLifecycleHandler, given its handlers): exactly one
    handler; the first one set is validated, each later one is refused."""
    actions = actions or _ACTIONS
    causes: list[Cause] = []
    chosen = ""
    for key in handlers:
        if probe.get(key) is None:
            continue
        if chosen:
            causes.append(names.forbidden(f"{path}.{key}", MORE_THAN_ONE_HANDLER))
            continue
        chosen = key
        causes += actions[key](f"{path}.{key}", _map(probe[key]))
    if not chosen:
        causes.append(names.required(path, NO_HANDLER))
    return causes


# --- lifecycle hooks -------------------------------------------------------------------------

def validate_lifecycle(path: str, container: Obj, grace: int | None) -> list[Cause]:
    """validateLifecycle of the container's `lifecycle` (if any), under `path` (the
    container); `grace` is the pod's terminationGracePeriodSeconds (None when invalid)."""
    lifecycle = container.get("lifecycle")
    if not isinstance(lifecycle, Mapping):
        return []
    actions = {**_ACTIONS, "sleep": _sleep_validator(grace)}
    causes: list[Cause] = []
    for hook in HOOKS:
        handler = lifecycle.get(hook)
        if isinstance(handler, Mapping):
            causes += validate_handler(f"{path}.lifecycle.{hook}", handler,
                                       LIFECYCLE_HANDLERS, actions)
    return causes


def pod_grace(spec: Obj) -> int | None:
    """The pod's terminationGracePeriodSeconds as validateSleepAction sees it: defaulted to
    30; None when negative (reported on its own)."""
    raw = spec.get("terminationGracePeriodSeconds")
    grace = DEFAULT_GRACE if raw is None else _int(raw)
    return grace if grace is not None and grace >= 0 else None


# --- probes ----------------------------------------------------------------------------------

def validate_probe(path: str, probe: Obj) -> list[Cause]:
    """validateProbe: the handler, non-negative timings and thresholds, and a positive
    terminationGracePeriodSeconds when set."""
    causes = validate_handler(path, probe)
    for key in NONNEGATIVE_FIELDS:
        value = _int(probe.get(key))
        if value is not None and value < 0:
            causes.append(names.invalid(f"{path}.{key}", value, NEGATIVE))
    grace = _int(probe.get("terminationGracePeriodSeconds"))
    if grace is not None and grace <= 0:
        causes.append(names.invalid(f"{path}.terminationGracePeriodSeconds", grace,
                                    "must be greater than 0"))
    return causes


def _success_threshold_is_one(path: str, probe: Obj) -> list[Cause]:
    # liveness and startup probes: one success is what ends the failure count
    raw = probe.get("successThreshold")
    value = 0 if raw is None else _int(raw)  # unset is Go's zero value
    if value is None or value == 1:
        return []
    return [names.invalid(f"{path}.successThreshold", value, "must be 1")]


def _readiness_without_grace(path: str, probe: Obj) -> list[Cause]:
    # a failing readiness probe never kills the container, so a grace period means nothing
    grace = probe.get("terminationGracePeriodSeconds")
    if grace is None:
        return []
    return [names.invalid(f"{path}.terminationGracePeriodSeconds", grace,
                          "must not be set for readinessProbes")]


_KIND_RULES = {"livenessProbe": _success_threshold_is_one,
               "readinessProbe": _readiness_without_grace,
               "startupProbe": _success_threshold_is_one}


def validate_probes(path: str, container: Obj) -> list[Cause]:
    """The three probes of a container that may have them, under `path` (the container)."""
    causes: list[Cause] = []
    for key in PROBES:
        probe = container.get(key)
        if isinstance(probe, Mapping):
            causes += validate_probe(f"{path}.{key}", probe)
            causes += _KIND_RULES[key](f"{path}.{key}", probe)
    return causes


# --- which containers may have probes --------------------------------------------------------

def is_restartable_init_container(container: Obj) -> bool:
    return container.get("restartPolicy") == "Always"


def validate_init_restart_policy(path: str, container: Obj) -> list[Cause]:
    """validateInitContainerRestartPolicy: unset, or Always (a sidecar)."""
    policy = container.get("restartPolicy")
    if policy is None or policy in INIT_CONTAINER_RESTART_POLICIES:
        return []
    return [names.not_supported(f"{path}.restartPolicy", policy,
                                INIT_CONTAINER_RESTART_POLICIES)]


def validate_regular_container(path: str, container: Obj, grace: int | None = DEFAULT_GRACE
                               ) -> list[Cause]:
    """What validateContainers checks after the common rules: lifecycle hooks and probes
    allowed, restartPolicy not."""
    causes = validate_lifecycle(path, container, grace)
    causes += validate_probes(path, container)
    if container.get("restartPolicy") is not None:
        causes.append(names.forbidden(f"{path}.restartPolicy", NOT_FOR_REGULAR_CONTAINERS))
    return causes


def validate_init_container(path: str, container: Obj, grace: int | None = DEFAULT_GRACE
                            ) -> list[Cause]:
    """What validateInitContainers checks after the name: a sidecar's lifecycle hooks and
    probes are validated like a regular container's, a run-to-completion init container may
    have none."""
    if is_restartable_init_container(container):
        return validate_lifecycle(path, container, grace) + validate_probes(path, container)
    return [names.forbidden(f"{path}.{key}", NOT_FOR_INIT_CONTAINERS)
            for key in ("lifecycle", *PROBES) if container.get(key) is not None]
