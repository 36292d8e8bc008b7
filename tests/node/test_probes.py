"""Container probes against a real apiserver, a real kubelet and real Docker (busybox):
readiness gating Ready both ways, a liveness failure restarting the container with
Kubernetes' events, httpGet against busybox httpd, tcpSocket, exec timeouts, and a startup
probe holding liveness back (and killing a container that never starts). Probe periods are
1 s so that the module runs in well under two minutes."""

from __future__ import annotations

import time

import httpx

from tests.node.harness import (
    busybox,
    create,
    delete_pod,
    docker_exec,
    events_of,
    get_pod,
    one_node_fixtures,
    wait_for,
    wait_phase,
)

NODE = "node-probes"
Object = dict


cluster, server = one_node_fixtures(NODE)


def run_pod(api: httpx.Client, ns: str, name: str, container: Object, **spec: object
            ) -> Object:
    return create(api, f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": name}, "spec": {
        "nodeName": NODE, "terminationGracePeriodSeconds": 0, "containers": [container],
        **spec}})


def exec_probe(*command: str, **fields: object) -> Object:
    return {"exec": {"command": list(command)}, "periodSeconds": 1, **fields}


def condition(pod: Object, kind: str) -> Object:
    return next(c for c in pod["status"]["conditions"] if c["type"] == kind)


def container_status(pod: Object) -> Object:
    return dict(pod["status"]["containerStatuses"][0])


def ready_is(api: httpx.Client, ns: str, name: str, wanted: str, timeout: float = 20
             ) -> Object:
    def check() -> Object | None:
        pod = get_pod(api, ns, name)
        if not pod or not (pod.get("status") or {}).get("conditions"):
            return None
        return pod if condition(pod, "Ready")["status"] == wanted else None
    result: Object = wait_for(f"{name} Ready={wanted}", check, timeout)
    return result


def event(api: httpx.Client, ns: str, pod: str, reason: str, starts: str = "",
          timeout: float = 20) -> Object:
    found = wait_for(f"{reason} event of {pod}", lambda: [
        e for e in events_of(api, ns, pod)
        if e["reason"] == reason and e["message"].startswith(starts)], timeout)
    return dict(found[0])


def test_readiness_exec_probe_gates_ready_both_ways(api: httpx.Client, ns: str) -> None:
    run_pod(api, ns, "ready", busybox("c", "touch /ready; exec sleep 3600",
                                      readinessProbe=exec_probe(
                                          "cat", "/ready", initialDelaySeconds=3,
                                          failureThreshold=1)))
    # Running, but not ready before the first readiness result (the initial delay).
    pod = wait_phase(api, ns, "ready", "Running")
    st = container_status(pod)
    assert "running" in st["state"] and st["ready"] is False and st["started"] is True
    assert condition(pod, "Ready")["status"] == "False"
    assert condition(pod, "ContainersReady")["message"] == \
        "containers with unready status: [c]"
    pod = ready_is(api, ns, "ready", "True")
    assert container_status(pod)["ready"] is True
    assert condition(pod, "ContainersReady")["status"] == "True"
    docker_exec(pod, "c", "rm", "/ready")
    pod = ready_is(api, ns, "ready", "False")
    assert condition(pod, "Ready")["reason"] == "ContainersNotReady"
    assert container_status(pod)["ready"] is False
    found = event(api, ns, "ready", "Unhealthy")
    assert (found["type"], found["message"]) == (
        "Warning", ("Readiness probe failed: cat: can't open '/ready': "
                    "No such file or directory\n"))
    assert found["involvedObject"]["fieldPath"] == "spec.containers{c}"
    docker_exec(pod, "c", "touch", "/ready")
    pod = ready_is(api, ns, "ready", "True")
    assert container_status(pod)["restartCount"] == 0  # readiness never restarts
    delete_pod(api, ns, "ready")


def test_liveness_failure_restarts_the_container(api: httpx.Client, ns: str) -> None:
    run_pod(api, ns, "live", busybox("c", "touch /alive; exec sleep 3600",
                                     livenessProbe=exec_probe("cat", "/alive",
                                                              failureThreshold=2)))
    pod = ready_is(api, ns, "live", "True")
    docker_exec(pod, "c", "rm", "/alive")
    def restarted() -> Object | None:
        p = get_pod(api, ns, "live")
        st = container_status(p) if p else {}
        return p if st.get("restartCount") == 1 and "running" in st["state"] else None
    pod = wait_for("restartCount 1", restarted, timeout=25)
    last = container_status(pod)["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (137, "Error")  # killed: grace period 0
    unhealthy = event(api, ns, "live", "Unhealthy")
    assert (unhealthy["type"], unhealthy["message"]) == (
        "Warning", ("Liveness probe failed: cat: can't open '/alive': "
                    "No such file or directory\n"))
    killing = event(api, ns, "live", "Killing")
    assert (killing["type"], killing["message"], killing["involvedObject"]["fieldPath"]) == (
        "Normal", "Container c failed liveness probe, will be restarted", "spec.containers{c}")
    # The new container made its file again: it stays alive, and ready.
    ready_is(api, ns, "live", "True")
    time.sleep(3)
    assert container_status(get_pod(api, ns, "live") or {})["restartCount"] == 1
    delete_pod(api, ns, "live")


HTTPD = "mkdir -p /www && echo ok > /www/healthz && exec httpd -f -p 8080 -h /www"


def test_http_get_readiness_against_busybox_httpd(api: httpx.Client, ns: str) -> None:
    run_pod(api, ns, "web", busybox(
        "c", HTTPD, ports=[{"name": "http", "containerPort": 8080}],
        readinessProbe={"httpGet": {"path": "/healthz", "port": "http",
                                    "httpHeaders": [{"name": "X-Probe", "value": "1"}]},
                        "periodSeconds": 1, "failureThreshold": 1}))
    pod = ready_is(api, ns, "web", "True")
    docker_exec(pod, "c", "rm", "/www/healthz")
    ready_is(api, ns, "web", "False")
    found = event(api, ns, "web", "Unhealthy")
    assert found["message"] == "Readiness probe failed: HTTP probe failed with statuscode: 404"
    delete_pod(api, ns, "web")


def test_tcp_socket_readiness_and_exec_timeout(api: httpx.Client, ns: str) -> None:
    run_pod(api, ns, "tcp", busybox(
        "c", "httpd -p 9000 -h / && exec sleep 3600",
        readinessProbe={"tcpSocket": {"port": 9000}, "periodSeconds": 1,
                        "failureThreshold": 1}))
    run_pod(api, ns, "slow", busybox("c", "exec sleep 3600", readinessProbe=exec_probe(
        "sh", "-c", "sleep 3", timeoutSeconds=1)))
    pod = ready_is(api, ns, "tcp", "True")
    docker_exec(pod, "c", "killall", "httpd")
    pod = ready_is(api, ns, "tcp", "False")
    ip = pod["status"]["podIP"]
    found = event(api, ns, "tcp", "Unhealthy")
    assert found["message"] == (f"Readiness probe failed: dial tcp {ip}:9000: connect: "
                                "connection refused")
    slow = event(api, ns, "slow", "Unhealthy")
    assert slow["message"] == 'Readiness probe failed: command "sh -c sleep 3" timed out'
    assert condition(get_pod(api, ns, "slow") or {}, "Ready")["status"] == "False"
    delete_pod(api, ns, "tcp")
    delete_pod(api, ns, "slow")


def test_startup_probe_holds_liveness_back_and_kills_what_never_starts(
        api: httpx.Client, ns: str) -> None:
    # Without the startup probe, this liveness probe (one failure) would kill the container
    # in its first second.
    run_pod(api, ns, "slowstart", busybox(
        "c", "sleep 4; touch /started; exec sleep 3600",
        startupProbe=exec_probe("cat", "/started", failureThreshold=15),
        livenessProbe=exec_probe("cat", "/started", failureThreshold=1)))
    run_pod(api, ns, "neverstarts", busybox(
        "c", "exec sleep 3600", startupProbe=exec_probe("cat", "/nope", failureThreshold=2)))
    pod = wait_phase(api, ns, "slowstart", "Running")
    st = container_status(pod)
    assert (st["started"], st["ready"]) == (False, False)
    pod = ready_is(api, ns, "slowstart", "True")
    st = container_status(pod)
    assert (st["started"], st["ready"], st["restartCount"]) == (True, True, 0)
    found = event(api, ns, "slowstart", "Unhealthy")
    assert found["message"].startswith("Startup probe failed: cat: can't open")
    killing = event(api, ns, "neverstarts", "Killing")
    assert killing["message"] == "Container c failed startup probe, will be restarted"
    wait_for("neverstarts restarted", lambda: container_status(
        get_pod(api, ns, "neverstarts") or {})["restartCount"] >= 1)
    events = events_of(api, ns, "slowstart")
    assert not [e for e in events if e["message"].startswith("Liveness")]
    assert not [e for e in events if e["reason"] == "Killing"]
    assert container_status(get_pod(api, ns, "slowstart") or {})["restartCount"] == 0
    delete_pod(api, ns, "slowstart")
    delete_pod(api, ns, "neverstarts")
