"""Validation of container lifecycle hooks (postStart, preStop) as kube-apiserver 1.32 does it
(validateLifecycle, validateLifecycleHandler, validateSleepAction, validateInitContainers):
field paths and messages, the sleep bounds against the pod's grace period, the init-container
rule, defaulting of an httpGet hook, and strict field validation knowing `sleep`."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from apiserver import fieldcheck, resources, validation
from apiserver.defaults import apply_defaults

Mutation = Callable[[dict[str, Any]], None]
POD: dict[str, Any] = {
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
}
POST = "spec.containers[0].lifecycle.postStart"
PRE = "spec.containers[0].lifecycle.preStop"
EXEC = {"exec": {"command": ["true"]}}
ONE_HANDLER = "Forbidden: may not specify more than 1 handler type"
NOT_FOR_INIT = "Forbidden: may not be set for init containers without restartPolicy=Always"


def sleep_msg(seconds: int, grace: int) -> str:
    return (f"Invalid value: {seconds}: must be greater than 0 and less than "
            f"terminationGracePeriodSeconds ({grace}). Enable "
            "AllowPodLifecycleSleepActionZeroValue feature gate for zero sleep.")


def _causes(pod: dict[str, Any]) -> list[tuple[str, str]]:
    pod = copy.deepcopy(pod)
    apply_defaults("Pod", pod)
    return [(c.field, c.message) for c in validation.validate("Pod", pod)]


def _hooks(grace: int | None = None, **lifecycle: Any) -> dict[str, Any]:
    pod = copy.deepcopy(POD)
    pod["spec"]["containers"][0]["lifecycle"] = lifecycle
    if grace is not None:
        pod["spec"]["terminationGracePeriodSeconds"] = grace
    return pod


@pytest.mark.parametrize("pod, expected", [
    (_hooks(postStart=EXEC, preStop={"httpGet": {"port": 8080}}), []),
    (_hooks(preStop={"sleep": {"seconds": 30}}), []),  # the default grace period, 30
    (_hooks(preStop={"tcpSocket": {"port": 80}}), []),  # accepted; the kubelet fails it
    (_hooks(preStop={}), [(PRE, "Required value: must specify a handler type")]),
    (_hooks(postStart={"exec": {}}), [(f"{POST}.exec.command", "Required value")]),
    (_hooks(postStart={**EXEC, "httpGet": {"port": 80}, "sleep": {"seconds": 1}}),
     [(f"{POST}.httpGet", ONE_HANDLER), (f"{POST}.sleep", ONE_HANDLER)]),
    (_hooks(preStop={"sleep": {"seconds": 31}}), [(f"{PRE}.sleep", sleep_msg(31, 30))]),
    (_hooks(preStop={"sleep": {"seconds": 0}}), [(f"{PRE}.sleep", sleep_msg(0, 30))]),
    (_hooks(preStop={"sleep": {"seconds": -1}}), [(f"{PRE}.sleep", sleep_msg(-1, 30))]),
    (_hooks(5, postStart={"sleep": {"seconds": 6}}), [(f"{POST}.sleep", sleep_msg(6, 5))]),
    (_hooks(5, postStart={"sleep": {"seconds": 5}}), []),
    (_hooks(preStop={"tcpSocket": {"port": 0}}),
     [(f"{PRE}.tcpSocket.port",
       "Invalid value: 0: must be between 1 and 65535, inclusive")]),
    # grpc is no lifecycle handler: it does not count as one
    (_hooks(preStop={"grpc": {"port": 9000}}),
     [(PRE, "Required value: must specify a handler type")]),
])
def test_lifecycle_handlers(pod: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert _causes(pod) == expected


def test_a_negative_grace_period_is_not_reported_twice() -> None:
    causes = _causes(_hooks(-1, preStop={"sleep": {"seconds": 5}}))
    assert not [c for c in causes if c[0].endswith(".sleep")]


def test_lifecycle_comes_before_the_probes() -> None:
    pod = _hooks(preStop={})
    pod["spec"]["containers"][0]["livenessProbe"] = {}
    assert [f for f, _ in _causes(pod)] == [PRE, "spec.containers[0].livenessProbe"]


def _init(**container: Any) -> dict[str, Any]:
    pod = copy.deepcopy(POD)
    pod["spec"]["initContainers"] = [{"name": "init", "image": "busybox", **container}]
    return pod


@pytest.mark.parametrize("pod, expected", [
    (_init(lifecycle={"preStop": EXEC}), [("spec.initContainers[0].lifecycle", NOT_FOR_INIT)]),
    (_init(lifecycle={}, livenessProbe=EXEC),
     [("spec.initContainers[0].lifecycle", NOT_FOR_INIT),
      ("spec.initContainers[0].livenessProbe", NOT_FOR_INIT)]),
    (_init(restartPolicy="Always", lifecycle={"preStop": EXEC}), []),
    (_init(restartPolicy="Always", lifecycle={"preStop": {"sleep": {"seconds": 99}}}),
     [("spec.initContainers[0].lifecycle.preStop.sleep", sleep_msg(99, 30))]),
])
def test_init_containers(pod: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert _causes(pod) == expected


def test_an_http_hook_is_defaulted_like_a_probe() -> None:
    pod = _hooks(postStart={"httpGet": {"port": 80}})
    apply_defaults("Pod", pod)
    action = pod["spec"]["containers"][0]["lifecycle"]["postStart"]["httpGet"]
    assert (action["path"], action["scheme"]) == ("/", "HTTP")
    assert validation.validate("Pod", pod) == []


def test_strict_field_validation_knows_the_sleep_handler() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "busybox", "lifecycle": {
            "preStop": {"sleep": {"seconds": 5}}, "postStart": EXEC}}]}}
    assert fieldcheck.unknown_fields(resources.BY_KIND["Pod"], pod) == []
    pod["spec"]["containers"][0]["lifecycle"]["preStop"]["sleep"]["minutes"] = 1
    assert fieldcheck.unknown_fields(resources.BY_KIND["Pod"], pod) == [
        "spec.containers[0].lifecycle.preStop.sleep.minutes"]
