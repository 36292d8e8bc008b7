"""Probe validation of pods, pinned to kube-apiserver's field paths and messages.

Every pod here goes through apply_defaults first, as on the wire, so a probe's zero timings
and an httpGet's empty path and scheme have their defaults before validation; the rules that
only a non-defaulted probe can break are checked on validate_probe directly at the end.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from apiserver import validation, validation_probes
from apiserver.defaults import apply_defaults

Mutation = Callable[[dict[str, Any]], None]

POD: dict[str, Any] = {
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
}
LIVE = "spec.containers[0].livenessProbe"
READY = "spec.containers[0].readinessProbe"
START = "spec.containers[0].startupProbe"
EXEC = {"exec": {"command": ["true"]}}
PORT_RANGE = "must be between 1 and 65535, inclusive"
NEGATIVE = "must be greater than or equal to 0"
ONE_HANDLER = "Forbidden: may not specify more than 1 handler type"
NOT_FOR_INIT = "Forbidden: may not be set for init containers without restartPolicy=Always"
HEADER_MSG = ("a valid HTTP header must consist of alphanumeric characters or '-' (e.g. "
              "'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')")


def _causes(pod: dict[str, Any]) -> list[tuple[str, str]]:
    pod = copy.deepcopy(pod)
    apply_defaults("Pod", pod)
    return [(c.field, c.message) for c in validation.validate("Pod", pod)]


def _with(mutate: Mutation) -> dict[str, Any]:
    pod = copy.deepcopy(POD)
    mutate(pod)
    return pod


def _probe(key: str, **probe: Any) -> Mutation:
    def mutate(pod: dict[str, Any]) -> None:
        pod["spec"]["containers"][0][key] = probe
    return mutate


def _live(**probe: Any) -> Mutation:
    return _probe("livenessProbe", **probe)


def _ready(**probe: Any) -> Mutation:
    return _probe("readinessProbe", **probe)


def _start(**probe: Any) -> Mutation:
    return _probe("startupProbe", **probe)


# --- handlers --------------------------------------------------------------------------------

@pytest.mark.parametrize("mutate", [
    _live(**EXEC),
    _live(httpGet={"port": 8080}),
    _live(httpGet={"port": "http", "path": "/healthz", "scheme": "HTTPS",
                   "httpHeaders": [{"name": "X-Probe", "value": "1"}]}),
    _live(tcpSocket={"port": 5432}),
    _live(tcpSocket={"port": "postgres"}),
    _live(grpc={"port": 9090, "service": "health"}),
    _ready(httpGet={"port": 65535}, successThreshold=3, initialDelaySeconds=0),
    _start(**EXEC, failureThreshold=30, periodSeconds=1, terminationGracePeriodSeconds=5),
    _live(**EXEC, timeoutSeconds=0, periodSeconds=0, successThreshold=0, failureThreshold=0),
])
def test_valid_probes_after_defaults(mutate: Mutation) -> None:
    assert _causes(_with(mutate)) == []


@pytest.mark.parametrize("mutate, expected", [
    (_live(), [(LIVE, "Required value: must specify a handler type")]),
    (_ready(periodSeconds=5), [(READY, "Required value: must specify a handler type")]),
    (_live(exec=None), [(LIVE, "Required value: must specify a handler type")]),
    (_live(**EXEC, httpGet={"port": 80}), [(f"{LIVE}.httpGet", ONE_HANDLER)]),
    # the first handler is validated, every later one only refused
    (_live(exec={}, tcpSocket={"port": 0}, grpc={"port": 0}),
     [(f"{LIVE}.exec.command", "Required value"),
      (f"{LIVE}.tcpSocket", ONE_HANDLER), (f"{LIVE}.grpc", ONE_HANDLER)]),
    (_live(exec={"command": []}), [(f"{LIVE}.exec.command", "Required value")]),
    (_live(httpGet={"port": 0}), [(f"{LIVE}.httpGet.port", f"Invalid value: 0: {PORT_RANGE}")]),
    (_live(httpGet={}), [(f"{LIVE}.httpGet.port", f"Invalid value: 0: {PORT_RANGE}")]),
    (_live(httpGet={"port": 65536}),
     [(f"{LIVE}.httpGet.port", f"Invalid value: 65536: {PORT_RANGE}")]),
    (_live(httpGet={"port": "8080"}),
     [(f"{LIVE}.httpGet.port", 'Invalid value: "8080": must contain at least one letter (a-z)')]),
    (_live(httpGet={"port": "HTTP"}),
     [(f"{LIVE}.httpGet.port", ('Invalid value: "HTTP": must contain only alpha-numeric '
                                "characters (a-z, 0-9), and hyphens (-)")),
      (f"{LIVE}.httpGet.port", 'Invalid value: "HTTP": must contain at least one letter (a-z)')]),
    (_live(httpGet={"port": "a-very-long-port-name"}),
     [(f"{LIVE}.httpGet.port",
       'Invalid value: "a-very-long-port-name": must be no more than 15 characters')]),
    (_live(httpGet={"port": "web--1"}),
     [(f"{LIVE}.httpGet.port", 'Invalid value: "web--1": must not contain consecutive hyphens')]),
    (_live(httpGet={"port": 80, "scheme": "FTP"}),
     [(f"{LIVE}.httpGet.scheme", 'Unsupported value: "FTP": supported values: "HTTP", "HTTPS"')]),
    # Kubernetes names the header list, not the entry
    (_live(httpGet={"port": 80, "httpHeaders": [{"name": "X-Ok", "value": "1"},
                                                {"name": "Bad Header", "value": "1"}]}),
     [(f"{LIVE}.httpGet.httpHeaders", f'Invalid value: "Bad Header": {HEADER_MSG}')]),
    (_live(tcpSocket={"port": -1}),
     [(f"{LIVE}.tcpSocket.port", f"Invalid value: -1: {PORT_RANGE}")]),
    (_live(tcpSocket={"port": "-db"}),
     [(f"{LIVE}.tcpSocket.port", 'Invalid value: "-db": must not begin or end with a hyphen')]),
    (_live(grpc={}), [(f"{LIVE}.grpc.port", f"Invalid value: 0: {PORT_RANGE}")]),
    (_live(grpc={"port": 70000}), [(f"{LIVE}.grpc.port", f"Invalid value: 70000: {PORT_RANGE}")]),
])
def test_handlers(mutate: Mutation, expected: list[tuple[str, str]]) -> None:
    assert _causes(_with(mutate)) == expected


# --- timings and thresholds ------------------------------------------------------------------

@pytest.mark.parametrize("key", ["initialDelaySeconds", "timeoutSeconds", "periodSeconds",
                                 "failureThreshold"])
@pytest.mark.parametrize("probe", ["livenessProbe", "readinessProbe", "startupProbe"])
def test_negative_timings_and_thresholds(probe: str, key: str) -> None:
    pod = _with(_probe(probe, **EXEC, **{key: -1}))
    assert _causes(pod) == [(f"spec.containers[0].{probe}.{key}",
                             f"Invalid value: -1: {NEGATIVE}")]


@pytest.mark.parametrize("mutate, expected", [
    (_live(**EXEC, successThreshold=2), [(f"{LIVE}.successThreshold", "Invalid value: 2: must be 1")]),
    (_start(**EXEC, successThreshold=3),
     [(f"{START}.successThreshold", "Invalid value: 3: must be 1")]),
    (_ready(**EXEC, successThreshold=3), []),
    # both rules, in Kubernetes' order
    (_live(**EXEC, successThreshold=-1),
     [(f"{LIVE}.successThreshold", f"Invalid value: -1: {NEGATIVE}"),
      (f"{LIVE}.successThreshold", "Invalid value: -1: must be 1")]),
    (_ready(**EXEC, successThreshold=-2),
     [(f"{READY}.successThreshold", f"Invalid value: -2: {NEGATIVE}")]),
])
def test_success_threshold(mutate: Mutation, expected: list[tuple[str, str]]) -> None:
    assert _causes(_with(mutate)) == expected


@pytest.mark.parametrize("mutate, expected", [
    (_live(**EXEC, terminationGracePeriodSeconds=30), []),
    (_live(**EXEC, terminationGracePeriodSeconds=0),
     [(f"{LIVE}.terminationGracePeriodSeconds", "Invalid value: 0: must be greater than 0")]),
    (_start(**EXEC, terminationGracePeriodSeconds=-5),
     [(f"{START}.terminationGracePeriodSeconds", "Invalid value: -5: must be greater than 0")]),
    (_ready(**EXEC, terminationGracePeriodSeconds=10),
     [(f"{READY}.terminationGracePeriodSeconds",
       "Invalid value: 10: must not be set for readinessProbes")]),
    (_ready(**EXEC, terminationGracePeriodSeconds=0),
     [(f"{READY}.terminationGracePeriodSeconds", "Invalid value: 0: must be greater than 0"),
      (f"{READY}.terminationGracePeriodSeconds",
       "Invalid value: 0: must not be set for readinessProbes")]),
])
def test_probe_termination_grace_period(mutate: Mutation,
                                        expected: list[tuple[str, str]]) -> None:
    assert _causes(_with(mutate)) == expected


def test_errors_come_probe_by_probe_after_the_container_rules() -> None:
    def mutate(pod: dict[str, Any]) -> None:
        container = pod["spec"]["containers"][0]
        container.update(image="", startupProbe={}, readinessProbe={"tcpSocket": {"port": 0}},
                         livenessProbe={**EXEC, "successThreshold": 5})
    assert _causes(_with(mutate)) == [
        ("spec.containers[0].image", "Required value"),
        (f"{LIVE}.successThreshold", "Invalid value: 5: must be 1"),
        (f"{READY}.tcpSocket.port", f"Invalid value: 0: {PORT_RANGE}"),
        (START, "Required value: must specify a handler type"),
    ]


# --- init containers, sidecars and restartPolicy ---------------------------------------------

def _init(**container: Any) -> Mutation:
    def mutate(pod: dict[str, Any]) -> None:
        pod["spec"]["initContainers"] = [{"name": "init", "image": "busybox:1.36", **container}]
    return mutate


@pytest.mark.parametrize("mutate, expected", [
    (_init(), []),
    (_init(livenessProbe=EXEC), [("spec.initContainers[0].livenessProbe", NOT_FOR_INIT)]),
    # a forbidden probe is not validated further: only its presence counts
    (_init(readinessProbe={}, startupProbe={"exec": {}}),
     [("spec.initContainers[0].readinessProbe", NOT_FOR_INIT),
      ("spec.initContainers[0].startupProbe", NOT_FOR_INIT)]),
    (_init(restartPolicy="Always", livenessProbe=EXEC, readinessProbe=EXEC, startupProbe=EXEC),
     []),
    (_init(restartPolicy="Always", livenessProbe={**EXEC, "successThreshold": 2}),
     [("spec.initContainers[0].livenessProbe.successThreshold", "Invalid value: 2: must be 1")]),
    (_init(restartPolicy="Always", readinessProbe={"httpGet": {"port": "Web"}}),
     [("spec.initContainers[0].readinessProbe.httpGet.port",
       ('Invalid value: "Web": must contain only alpha-numeric characters (a-z, 0-9), and '
        "hyphens (-)"))]),
    (_init(restartPolicy="OnFailure", livenessProbe=EXEC),
     [("spec.initContainers[0].restartPolicy",
       'Unsupported value: "OnFailure": supported values: "Always"'),
      ("spec.initContainers[0].livenessProbe", NOT_FOR_INIT)]),
    (_init(restartPolicy=""),
     [("spec.initContainers[0].restartPolicy",
       'Unsupported value: "": supported values: "Always"')]),
    (lambda pod: pod["spec"]["containers"][0].update(restartPolicy="Always"),
     [("spec.containers[0].restartPolicy", "Forbidden: may not be set for non-init containers")]),
])
def test_init_containers(mutate: Mutation, expected: list[tuple[str, str]]) -> None:
    assert _causes(_with(mutate)) == expected


def test_pod_update_reports_a_bad_probe() -> None:
    old = copy.deepcopy(POD)
    apply_defaults("Pod", old)
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["livenessProbe"] = {**EXEC, "successThreshold": 2}
    fields = [(c.field, c.message) for c in validation.validate_update("Pod", new, old)]
    assert (f"{LIVE}.successThreshold", "Invalid value: 2: must be 1") in fields


# --- what defaulting hides --------------------------------------------------------------------

def test_defaults_fill_what_validation_would_refuse() -> None:
    pod = _with(_live(httpGet={"port": 80}))
    apply_defaults("Pod", pod)
    probe = pod["spec"]["containers"][0]["livenessProbe"]
    assert (probe["timeoutSeconds"], probe["periodSeconds"], probe["successThreshold"],
            probe["failureThreshold"], probe["httpGet"]["path"],
            probe["httpGet"]["scheme"]) == (1, 10, 1, 3, "/", "HTTP")
    assert validation.validate("Pod", pod) == []


def test_a_probe_that_skipped_defaulting() -> None:
    causes = validation_probes.validate_probes("c", {"livenessProbe": {"httpGet": {"port": 80}}})
    assert [(c.field, c.message) for c in causes] == [
        ("c.livenessProbe.httpGet.path", "Required value"),
        ("c.livenessProbe.httpGet.scheme",
         'Unsupported value: "": supported values: "HTTP", "HTTPS"'),
        # Go's zero value: an unset successThreshold is 0
        ("c.livenessProbe.successThreshold", "Invalid value: 0: must be 1"),
    ]


def test_status_reasons_of_probe_causes() -> None:
    pod = _with(_live(**EXEC, httpGet={"port": 80}, successThreshold=2))
    apply_defaults("Pod", pod)
    assert [(c.field, c.reason) for c in validation.validate("Pod", pod)] == [
        (f"{LIVE}.httpGet", "FieldValueForbidden"),
        (f"{LIVE}.successThreshold", "FieldValueInvalid"),
    ]


def test_strict_field_validation_knows_every_probe_handler() -> None:
    """kubectl sends fieldValidation=Strict: a grpc probe must not be an unknown field."""
    from apiserver import fieldcheck, resources
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "busybox", "livenessProbe": {
            "grpc": {"port": 9000, "service": "health"}, "periodSeconds": 5}}]}}
    assert fieldcheck.unknown_fields(resources.BY_KIND["Pod"], pod) == []
    pod["spec"]["containers"][0]["livenessProbe"]["grpc"]["color"] = "x"
    assert fieldcheck.unknown_fields(resources.BY_KIND["Pod"], pod) == [
        "spec.containers[0].livenessProbe.grpc.color"]
