"""Container lifecycle hooks against a real apiserver, a real kubelet and real Docker
(busybox): postStart holding the container's status back until it ends, a failed postStart
killing and restarting the container with Kubernetes' events and waiting reason, preStop
running (and counting against the grace period) when a pod is deleted and when a liveness
failure restarts a container, a failed preStop not stopping the kill, and tcpSocket hooks
failing as the kubelet fails them. Busybox has no /tmp: files go to / or a hostPath."""

from __future__ import annotations

import calendar
import time
from pathlib import Path

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

NODE = "node-hooks"
Object = dict
SIGTERM_EXIT = "trap 'exit 0' TERM; sleep 3600 & wait"  # busybox sleep ignores SIGTERM as PID 1

cluster, server = one_node_fixtures(NODE)


def run_pod(api: httpx.Client, ns: str, name: str, container: Object, **spec: object
            ) -> Object:
    return create(api, f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": name}, "spec": {
        "nodeName": NODE, "terminationGracePeriodSeconds": 2, "containers": [container],
        **spec}})


def state_of(api: httpx.Client, ns: str, name: str) -> Object:
    pod = get_pod(api, ns, name) or {}
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    return dict(statuses[0])


def event(api: httpx.Client, ns: str, pod: str, reason: str, timeout: float = 20) -> Object:
    found = wait_for(f"{reason} event of {pod}", lambda: [
        e for e in events_of(api, ns, pod) if e["reason"] == reason], timeout)
    return dict(found[0])


def host_dir(tmp_path: Path) -> Object:
    tmp_path.chmod(0o777)
    return {"name": "out", "hostPath": {"path": str(tmp_path), "type": "Directory"}}


OUT = [{"name": "out", "mountPath": "/out"}]


def test_post_start_holds_the_status_then_pre_stop_runs_at_deletion(
        api: httpx.Client, ns: str, tmp_path: Path) -> None:
    run_pod(api, ns, "both", busybox("c", SIGTERM_EXIT, volumeMounts=OUT, lifecycle={
        "postStart": {"exec": {"command": ["sh", "-c", "sleep 3; echo up > /poststart"]}},
        "preStop": {"exec": {"command": ["sh", "-c", "echo bye > /out/prestop"]}}}),
        volumes=[host_dir(tmp_path)])
    event(api, ns, "both", "Started")
    # While the hook runs the container is reported as before its start.
    st = state_of(api, ns, "both")
    assert st.get("state", {}).get("waiting", {}).get("reason") == "ContainerCreating"
    assert st.get("ready") is False and st.get("started") is False
    pod = wait_phase(api, ns, "both", "Running", timeout=20)
    st = pod["status"]["containerStatuses"][0]
    assert "running" in st["state"] and st["ready"] and st["started"]
    assert docker_exec(pod, "c", "cat", "/poststart").strip() == "up"
    started = time.monotonic()
    delete_pod(api, ns, "both")
    assert (tmp_path / "prestop").read_text() == "bye\n"
    assert time.monotonic() - started < 10


def test_failed_post_start_kills_and_restarts(api: httpx.Client, ns: str) -> None:
    script = "sleep 2; echo oops >&2; exit 3"
    run_pod(api, ns, "poststart-fails", busybox("c", SIGTERM_EXIT, lifecycle={
        "postStart": {"exec": {"command": ["sh", "-c", script]}}}))
    failed = event(api, ns, "poststart-fails", "FailedPostStartHook")
    assert (failed["type"], failed["message"]) == ("Warning", "PostStartHook failed")
    assert failed["involvedObject"]["fieldPath"] == "spec.containers{c}"
    killing = event(api, ns, "poststart-fails", "Killing")
    assert killing["message"] == "FailedPostStartHook"
    # The second attempt's hook runs for 2 s: the reason cache shows meanwhile.
    waiting = wait_for("PostStartHookError", lambda: state_of(
        api, ns, "poststart-fails").get("state", {}).get("waiting", {}).get(
        "reason") == "PostStartHookError" and state_of(api, ns, "poststart-fails"), 20)
    pod = get_pod(api, ns, "poststart-fails") or {}
    uid = pod["metadata"]["uid"]
    assert waiting["state"]["waiting"]["message"] == (
        f"Exec lifecycle hook ([sh -c {script}]) for Container \"c\" in Pod "
        f"\"poststart-fails_{ns}({uid})\" failed - error: command 'sh -c {script}' exited "
        'with 3: oops\n, message: "oops\\n"')
    assert waiting["restartCount"] == 0 and "terminated" in waiting["lastState"]
    delete_pod(api, ns, "poststart-fails")


def test_tcp_socket_hook_fails_and_never_restarts_under_never(api: httpx.Client, ns: str
                                                              ) -> None:
    run_pod(api, ns, "tcp-hook", busybox("c", "trap 'exit 1' TERM; sleep 3600 & wait", lifecycle={
        "postStart": {"tcpSocket": {"port": 80}}}), restartPolicy="Never")
    event(api, ns, "tcp-hook", "FailedPostStartHook")
    pod = wait_phase(api, ns, "tcp-hook", "Failed", timeout=20)
    st = pod["status"]["containerStatuses"][0]
    assert st["state"]["terminated"]["exitCode"] == 1 and st["restartCount"] == 0
    delete_pod(api, ns, "tcp-hook")


def test_pre_stop_sleep_counts_against_the_grace_period(api: httpx.Client, ns: str) -> None:
    run_pod(api, ns, "sleepy", busybox("c", SIGTERM_EXIT, lifecycle={
        "preStop": {"sleep": {"seconds": 3}}}), terminationGracePeriodSeconds=4)
    wait_phase(api, ns, "sleepy", "Running")
    started = time.monotonic()
    delete_pod(api, ns, "sleepy")
    took = time.monotonic() - started
    assert 3 <= took < 8, took  # the hook's 3 s, then a prompt SIGTERM exit


def test_failed_pre_stop_does_not_stop_the_kill(api: httpx.Client, ns: str) -> None:
    run_pod(api, ns, "prestop-fails", busybox("c", SIGTERM_EXIT, lifecycle={
        "preStop": {"httpGet": {"port": 9, "path": "/bye"}}}))
    wait_phase(api, ns, "prestop-fails", "Running")
    delete_pod(api, ns, "prestop-fails")
    failed = event(api, ns, "prestop-fails", "FailedPreStopHook")
    assert (failed["type"], failed["message"]) == ("Warning", "PreStopHook failed")


def test_liveness_restart_runs_pre_stop(api: httpx.Client, ns: str, tmp_path: Path) -> None:
    run_pod(api, ns, "unhealthy", busybox("c", SIGTERM_EXIT, volumeMounts=OUT, lifecycle={
        "preStop": {"exec": {"command": ["sh", "-c", "echo stopping >> /out/prestop"]}}},
        livenessProbe={"exec": {"command": ["false"]}, "periodSeconds": 1,
                       "failureThreshold": 1}), volumes=[host_dir(tmp_path)])
    event(api, ns, "unhealthy", "Killing")
    wait_for("a restart", lambda: state_of(api, ns, "unhealthy").get("restartCount", 0) >= 1,
             20)
    assert (tmp_path / "prestop").read_text().startswith("stopping\n")
    delete_pod(api, ns, "unhealthy")


def test_post_start_holds_back_the_containers_after_it(api: httpx.Client, ns: str) -> None:
    # The sidecar pattern: the app (second) starts only once the proxy's hook has ended.
    shared = [{"name": "shared", "mountPath": "/shared"}]
    create(api, f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": "ordered"}, "spec": {
        "nodeName": NODE, "terminationGracePeriodSeconds": 2,
        "volumes": [{"name": "shared", "emptyDir": {}}],
        "containers": [
            busybox("proxy", SIGTERM_EXIT, volumeMounts=shared, lifecycle={"postStart": {
                "exec": {"command": ["sh", "-c", "sleep 3; date +%s > /shared/ready"]}}}),
            busybox("app", "if test -f /shared/ready; then echo yes; else echo no; fi"
                    f" > /shared/app; {SIGTERM_EXIT}", volumeMounts=shared)]}})
    event(api, ns, "ordered", "Started")
    # While the proxy's hook runs the app is not even created.
    app = wait_for("the app's status", lambda: next((
        s for s in ((get_pod(api, ns, "ordered") or {}).get("status") or {}).get(
            "containerStatuses") or [] if s["name"] == "app"), None), 3)
    assert app["state"]["waiting"]["reason"] == "ContainerCreating"
    assert [e["involvedObject"]["fieldPath"] for e in events_of(api, ns, "ordered")
            if e["reason"] == "Started"] == ["spec.containers{proxy}"]
    pod = wait_phase(api, ns, "ordered", "Running", timeout=20)
    assert docker_exec(pod, "app", "cat", "/shared/app").strip() == "yes"
    ready = int(docker_exec(pod, "app", "cat", "/shared/ready"))
    started = {s["name"]: _epoch(s["state"]["running"]["startedAt"])
               for s in pod["status"]["containerStatuses"]}
    assert started["app"] >= ready >= started["proxy"] + 3, (started, ready)
    delete_pod(api, ns, "ordered")


def test_failed_post_start_holds_nothing_back(api: httpx.Client, ns: str) -> None:
    # Kubernetes kills the container of a failed hook and goes on with the next one; the
    # failed one's rerun (whose hook runs again) does not hold back what it let through.
    proxy = busybox("proxy", SIGTERM_EXIT, lifecycle={
        "postStart": {"exec": {"command": ["sh", "-c", "sleep 2; exit 1"]}}})
    run_pod(api, ns, "fails-first", proxy, containers=[proxy, busybox("app", SIGTERM_EXIT)])

    def app_running() -> dict[str, Object] | None:
        pod = get_pod(api, ns, "fails-first") or {}
        found = {s["name"]: s for s in (pod.get("status") or {}).get("containerStatuses", [])}
        return found if "running" in found.get("app", {}).get("state", {}) else None
    found = wait_for("app running", app_running, 20)
    # The proxy's second hook is still running: its first failure is what shows.
    assert found["proxy"]["state"]["waiting"]["reason"] == "PostStartHookError"
    assert found["proxy"]["restartCount"] == 0
    delete_pod(api, ns, "fails-first")


def _epoch(stamp: str) -> int:
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
