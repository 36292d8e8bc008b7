"""Probe validation on the wire: the real apiserver (SQLite and PostgreSQL) refuses a pod with
a bad probe with kube-apiserver's 422 `Status`, naming the field, and stores nothing; a pod
with good probes is stored with the probe defaults filled in."""

from __future__ import annotations

from typing import Any

import httpx


def _pod(name: str, **container: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox", **container}]}}


def test_bad_probe_is_422_and_nothing_is_stored(api: httpx.Client, namespace: str) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    bad = _pod("bad-probe", livenessProbe={"exec": {"command": ["true"]}, "successThreshold": 2})
    r = api.post(pods, json=bad)
    assert r.status_code == 422, r.text
    status = r.json()
    assert (status["kind"], status["status"], status["reason"]) == ("Status", "Failure", "Invalid")
    assert status["message"] == ('Pod "bad-probe" is invalid: spec.containers[0].livenessProbe.'
                                 "successThreshold: Invalid value: 2: must be 1")
    assert status["details"]["causes"] == [{
        "reason": "FieldValueInvalid", "message": "Invalid value: 2: must be 1",
        "field": "spec.containers[0].livenessProbe.successThreshold"}]
    assert api.get(f"{pods}/bad-probe").status_code == 404
    assert api.get(pods).json()["items"] == []


def test_probe_on_plain_init_container_is_forbidden(api: httpx.Client, namespace: str) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    pod = _pod("init-probe")
    pod["spec"]["initContainers"] = [{"name": "i", "image": "busybox",
                                      "readinessProbe": {"tcpSocket": {"port": 80}}}]
    r = api.post(pods, json=pod)
    assert r.status_code == 422, r.text
    assert [(c["field"], c["reason"]) for c in r.json()["details"]["causes"]] == [
        ("spec.initContainers[0].readinessProbe", "FieldValueForbidden")]
    assert api.get(f"{pods}/init-probe").status_code == 404


def test_good_probes_are_stored_defaulted(api: httpx.Client, namespace: str) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    pod = _pod("good-probe", readinessProbe={"httpGet": {"port": 8080}, "successThreshold": 2})
    pod["spec"]["initContainers"] = [{"name": "side", "image": "busybox", "restartPolicy": "Always",
                                      "livenessProbe": {"tcpSocket": {"port": "metrics"}}}]
    r = api.post(pods, json=pod)
    assert r.status_code == 201, r.text
    try:
        stored = api.get(f"{pods}/good-probe").json()["spec"]
        assert stored["containers"][0]["readinessProbe"] == {
            "httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"}, "successThreshold": 2,
            "timeoutSeconds": 1, "periodSeconds": 10, "failureThreshold": 3}
        assert stored["initContainers"][0]["livenessProbe"]["successThreshold"] == 1
    finally:
        api.delete(f"{pods}/good-probe", params={"gracePeriodSeconds": 0})
