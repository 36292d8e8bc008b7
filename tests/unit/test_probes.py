"""The prober's pure parts and its worker's rules, without Docker: defaults, thresholds,
result to `ready`/`started`, event words, ports, and the HTTP and TCP runners against
servers on loopback. The same code runs against real containers in
tests/node/test_probes.py."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from kubelet import probe_runners as runners
from kubelet import prober, status
from kubelet.prober import ProbeType, Result

Object = dict[str, Any]
S, F = Result.SUCCESS, Result.FAILURE


# --- specs and thresholds -------------------------------------------------------------------

def test_missing_fields_take_the_api_defaults() -> None:
    spec = prober.probe_spec(ProbeType.READINESS, {"exec": {"command": ["true"]}})
    assert (spec.handler, spec.initial_delay_s, spec.period_s, spec.timeout_s,
            spec.success_threshold, spec.failure_threshold) == ("exec", 0, 10, 1, 1, 3)


@pytest.mark.parametrize("kind,expected", [
    (ProbeType.READINESS, 4), (ProbeType.LIVENESS, 1), (ProbeType.STARTUP, 1)])
def test_only_readiness_may_need_several_successes(kind: ProbeType, expected: int) -> None:
    spec = prober.probe_spec(kind, {"tcpSocket": {"port": 80}, "successThreshold": 4})
    assert spec.success_threshold == expected


@pytest.mark.parametrize("results,success,failure,published", [
    ([F], 1, 3, [False]),
    ([F, F, F], 1, 3, [False, False, True]),
    ([F, F, S, F, F, F], 1, 3, [False, False, True, False, False, True]),
    ([S, S, S], 3, 1, [False, False, True]),
    ([S, F, S, S], 2, 1, [False, True, False, True]),
    ([F, F, F, F], 1, 3, [False, False, True, True]),  # past the threshold: still published
])
def test_threshold_publishes_after_enough_in_a_row(results: list[Result], success: int,
                                                    failure: int, published: list[bool]
                                                    ) -> None:
    spec = prober.ProbeSpec(ProbeType.READINESS, "exec", {}, success_threshold=success,
                            failure_threshold=failure)
    counter = prober.Threshold()
    assert [counter.observe(r, spec) for r in results] == published


RUNNING = {"running": {"startedAt": "2025-01-01T00:00:00Z"}}
WAITING = {"waiting": {"reason": "CrashLoopBackOff"}}


@pytest.mark.parametrize("state,started,ready,expect_started,expect_ready", [
    (RUNNING, None, None, True, True),      # no probes: running is enough
    (RUNNING, None, False, True, False),    # readiness failing, or not run yet
    (RUNNING, None, True, True, True),
    (RUNNING, False, None, False, False),   # not started: not ready either
    (RUNNING, False, True, False, False),
    (RUNNING, True, True, True, True),
    (WAITING, None, None, False, False),    # not running: neither
    (WAITING, True, True, False, False),
])
def test_probe_results_become_started_and_ready(state: Object, started: bool | None,
                                                ready: bool | None, expect_started: bool,
                                                expect_ready: bool) -> None:
    st = status.probed({"name": "c", "state": state, "ready": True, "started": True},
                       started, ready)
    assert (st["started"], st["ready"]) == (expect_started, expect_ready)


def test_an_unready_container_makes_the_pod_unready() -> None:
    statuses = [status.probed({"name": "a", "state": RUNNING}, None, None),
                status.probed({"name": "b", "state": RUNNING}, None, False)]
    conditions = {c["type"]: c for c in status.conditions(
        [], "Running", statuses, ["a", "b"], "2025-01-01T00:00:00Z")}
    for kind in ("ContainersReady", "Ready"):
        assert conditions[kind]["status"] == "False"
        assert conditions[kind]["reason"] == "ContainersNotReady"
        assert conditions[kind]["message"] == "containers with unready status: [b]"


# --- words ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,outcome,output,expected", [
    (ProbeType.LIVENESS, runners.Outcome.FAILURE, "no file\n",
     ("Unhealthy", "Liveness probe failed: no file\n")),
    (ProbeType.READINESS, runners.Outcome.FAILURE, "",
     ("Unhealthy", "Readiness probe failed: ")),
    (ProbeType.STARTUP, runners.Outcome.WARNING, "Probe terminated redirects, Response body: ",
     ("ProbeWarning", "Startup probe warning: Probe terminated redirects, Response body: ")),
    (ProbeType.LIVENESS, runners.Outcome.SUCCESS, "fine", None),
])
def test_events_of_probe_answers(kind: ProbeType, outcome: runners.Outcome, output: str,
                                 expected: tuple[str, str] | None) -> None:
    assert prober.event_of(kind, runners.Answer(outcome, output)) == expected


@pytest.mark.parametrize("kind,policy,message", [
    (ProbeType.LIVENESS, "Always", "Container web failed liveness probe, will be restarted"),
    (ProbeType.STARTUP, "OnFailure", "Container web failed startup probe, will be restarted"),
    (ProbeType.LIVENESS, "Never", "Container web failed liveness probe"),
])
def test_killing_messages(kind: ProbeType, policy: str, message: str) -> None:
    assert prober.kill_message("web", kind, policy) == message


@pytest.mark.parametrize("code,outcome,output", [
    (200, runners.Outcome.SUCCESS, "body"), (204, runners.Outcome.SUCCESS, "body"),
    (302, runners.Outcome.WARNING, "Probe terminated redirects, Response body: body"),
    (399, runners.Outcome.WARNING, "Probe terminated redirects, Response body: body"),
    (400, runners.Outcome.FAILURE, "HTTP probe failed with statuscode: 400"),
    (503, runners.Outcome.FAILURE, "HTTP probe failed with statuscode: 503"),
    (199, runners.Outcome.FAILURE, "HTTP probe failed with statuscode: 199"),
])
def test_http_status_codes(code: int, outcome: runners.Outcome, output: str) -> None:
    assert runners.http_outcome(code, "body") == runners.Answer(outcome, output)


CONTAINER = {"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}


@pytest.mark.parametrize("port,expected", [(80, 80), ("http", 8080), ("9090", 9090)])
def test_ports_by_number_or_name(port: object, expected: int) -> None:
    assert runners.resolve_port(port, CONTAINER) == expected


@pytest.mark.parametrize("port,message", [
    ("metrics", 'strconv.Atoi: parsing "metrics": invalid syntax'),
    (0, "invalid port number: 0"), (70000, "invalid port number: 70000")])
def test_bad_ports_are_probe_errors(port: object, message: str) -> None:
    with pytest.raises(runners.ProbeError, match=message):
        runners.resolve_port(port, CONTAINER)


def test_probe_url_and_headers() -> None:
    action = {"path": "/healthz", "port": "http", "scheme": "HTTPS",
              "httpHeaders": [{"name": "X-Check", "value": "yes"},
                              {"name": "Accept", "value": ""}]}
    assert runners.probe_url(action, CONTAINER, "10.1.2.3") == "https://10.1.2.3:8080/healthz"
    assert runners.probe_headers(action) == [("X-Check", "yes"),
                                             ("User-Agent", "kube-probe/1.32")]
    assert runners.probe_url({"port": 80, "host": "fd00::1"}, CONTAINER, "") == \
        "http://[fd00::1]:80"


def test_exec_commands_expand_static_env_only() -> None:
    container = {"env": [{"name": "FILE", "value": "/tmp/ok"},
                         {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]}
    assert runners.static_env(container) == {"FILE": "/tmp/ok"}


# --- the HTTP and TCP runners on loopback -----------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, dict[str, str]]]] = []

    def do_GET(self) -> None:
        Handler.seen.append((self.path, dict(self.headers.items())))
        routes = {"/ok": (200, {}), "/gone": (404, {}), "/here": (302, {"Location": "/ok"}),
                  "/away": (302, {"Location": "http://elsewhere.invalid/ok"}),
                  "/loop": (302, {"Location": "/loop"})}
        if self.path == "/slow":
            time.sleep(1.5)
        code, headers = routes.get(self.path, (200, {}))
        self.send_response(code)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(b"hello")
        except BrokenPipeError:
            pass  # the probe gave up first (the timeout test)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Handler.seen = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_http_probe_sends_the_kubelets_headers(server: int) -> None:
    url = f"http://127.0.0.1:{server}/ok"
    answer = runners.run_http(url, runners.probe_headers(
        {"httpHeaders": [{"name": "X-Check", "value": "yes"}]}), 1)
    assert answer == runners.Answer(runners.Outcome.SUCCESS, "hello")
    headers = Handler.seen[0][1]
    assert (headers["User-Agent"], headers["Accept"], headers["X-Check"]) == (
        "kube-probe/1.32", "*/*", "yes")


def test_http_probe_failure_does_not_carry_the_body(server: int) -> None:
    answer = runners.run_http(f"http://127.0.0.1:{server}/gone", [], 1)
    assert answer == runners.Answer(runners.Outcome.FAILURE,
                                    "HTTP probe failed with statuscode: 404")


def test_http_probe_follows_a_redirect_on_the_same_host(server: int) -> None:
    answer = runners.run_http(f"http://127.0.0.1:{server}/here", [], 1)
    assert answer.outcome is runners.Outcome.SUCCESS
    assert [p for p, _ in Handler.seen] == ["/here", "/ok"]


def test_http_probe_does_not_follow_a_redirect_elsewhere(server: int) -> None:
    answer = runners.run_http(f"http://127.0.0.1:{server}/away", [], 1)
    assert answer == runners.Answer(runners.Outcome.WARNING,
                                    "Probe terminated redirects, Response body: hello")
    assert [p for p, _ in Handler.seen] == ["/away"]


def test_http_probe_stops_after_ten_redirects(server: int) -> None:
    answer = runners.run_http(f"http://127.0.0.1:{server}/loop", [], 2)
    assert answer == runners.Answer(runners.Outcome.FAILURE,
                                    'Get "/loop": stopped after 10 redirects')
    assert len(Handler.seen) == 10


def test_http_probe_times_out(server: int) -> None:
    url = f"http://127.0.0.1:{server}/slow"
    started = time.monotonic()
    answer = runners.run_http(url, [], 0.3)
    assert time.monotonic() - started < 1.0
    assert answer == runners.Answer(runners.Outcome.FAILURE, f'Get "{url}": context deadline '
                                    "exceeded (Client.Timeout exceeded while awaiting headers)")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_http_probe_connection_refused() -> None:
    port = closed_port()
    answer = runners.run_http(f"http://127.0.0.1:{port}/", [], 1)
    assert answer.output == (f'Get "http://127.0.0.1:{port}/": dial tcp 127.0.0.1:{port}: '
                             "connect: connection refused")


def test_tcp_probe(server: int) -> None:
    assert runners.run_tcp("127.0.0.1", server, 1).outcome is runners.Outcome.SUCCESS
    port = closed_port()
    assert runners.run_tcp("127.0.0.1", port, 1) == runners.Answer(
        runners.Outcome.FAILURE, f"dial tcp 127.0.0.1:{port}: connect: connection refused")


# --- the worker's rules, with scripted answers -------------------------------------------------

class ScriptedManager(prober.ProbeManager):
    """A manager whose probes answer from a script (no Docker), recording events and the
    pods it was asked to sync."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.synced: list[str] = []
        super().__init__(None, lambda pod, kind, reason, message, path:
                         self.events.append((reason, message)), self.synced.append)
        self.answers: list[runners.Answer] = []

    def run(self, spec: prober.ProbeSpec, container: Object, container_id: str,
            pod_ip: str) -> runners.Answer:
        return self.answers.pop(0)


def pod_with(**probes: Object) -> Object:
    return {"metadata": {"uid": "u1", "name": "p", "namespace": "ns"},
            "spec": {"restartPolicy": "Always", "containers": [{"name": "c", **probes}]}}


def running(container_id: str, started: bool) -> Object:
    return {"phase": "Running", "podIP": "10.0.0.1", "containerStatuses": [{
        "name": "c", "containerID": container_id, "started": started,
        "state": {"running": {"startedAt": "2020-01-01T00:00:00Z"}}}]}


OK = runners.Answer(runners.Outcome.SUCCESS, "")
BAD = runners.Answer(runners.Outcome.FAILURE, "nope")
EXEC = {"exec": {"command": ["true"]}, "periodSeconds": 1}


def worker_for(manager: ScriptedManager, kind: ProbeType, probe: Object) -> prober.Worker:
    pod = pod_with(**{kind.field: probe})
    return prober.Worker(manager, pod, pod["spec"]["containers"][0],
                         prober.probe_spec(kind, probe))


def test_liveness_failure_is_published_once_then_holds_until_a_new_container() -> None:
    manager = ScriptedManager()
    worker = worker_for(manager, ProbeType.LIVENESS, {**EXEC, "failureThreshold": 2})
    manager.set_status("u1", running("docker://a", True))
    manager.answers = [BAD, BAD]
    assert worker.do_probe() and manager.kill_reason("docker://a") is None
    assert worker.do_probe() and manager.kill_reason("docker://a") is ProbeType.LIVENESS
    assert worker.do_probe() and not manager.answers  # on hold: no probe ran
    manager.set_status("u1", running("docker://b", True))
    manager.answers = [OK]
    assert worker.do_probe() and manager.kill_reason("docker://b") is None
    assert manager.events == [("Unhealthy", "Liveness probe failed: nope")] * 2
    # Each published change wakes the pod's sync: a's initial success, a's failure, b's
    # initial success; the failure below the threshold and the held rounds do not.
    assert manager.synced == ["u1"] * 3


def test_readiness_starts_failed_and_waits_for_the_startup_probe() -> None:
    manager = ScriptedManager()
    worker = worker_for(manager, ProbeType.READINESS, EXEC)
    manager.set_status("u1", running("docker://a", False))
    assert worker.do_probe()
    assert manager.results[ProbeType.READINESS].get("docker://a") is Result.FAILURE
    manager.set_status("u1", running("docker://a", True))
    manager.answers = [OK]
    assert worker.do_probe()
    assert manager.results[ProbeType.READINESS].get("docker://a") is Result.SUCCESS


def test_startup_probe_stops_once_started() -> None:
    manager = ScriptedManager()
    worker = worker_for(manager, ProbeType.STARTUP, EXEC)
    manager.set_status("u1", running("docker://a", False))
    manager.answers = [OK]
    assert worker.do_probe()
    assert manager.results[ProbeType.STARTUP].get("docker://a") is Result.SUCCESS
    manager.set_status("u1", running("docker://a", True))
    assert worker.do_probe()  # started: no probe runs (the script is empty)


def test_worker_ends_with_its_pod_and_when_no_restart_comes() -> None:
    manager = ScriptedManager()
    worker = worker_for(manager, ProbeType.LIVENESS, EXEC)
    manager.set_status("u1", {"phase": "Succeeded"})
    assert not worker.do_probe()
    worker.pod["spec"]["restartPolicy"] = "Never"
    manager.set_status("u1", {"phase": "Running", "containerStatuses": [{
        "name": "c", "containerID": "docker://a", "state": {"terminated": {"exitCode": 1}}}]})
    assert not worker.do_probe()


def test_initial_delay_holds_the_probe() -> None:
    manager = ScriptedManager()
    worker = worker_for(manager, ProbeType.LIVENESS, {**EXEC, "initialDelaySeconds": 3600})
    st = running("docker://a", True)
    st["containerStatuses"][0]["state"]["running"]["startedAt"] = time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manager.set_status("u1", st)
    assert worker.do_probe()  # no answer scripted: none was asked for


def test_grpc_probes_error_honestly() -> None:
    manager = prober.ProbeManager(None, lambda *a: None, lambda uid: None)
    spec = prober.probe_spec(ProbeType.LIVENESS, {"grpc": {"port": 9000}})
    with pytest.raises(runners.ProbeError, match="grpc probes are not supported"):
        manager.run(spec, {"name": "c"}, "docker://a", "10.0.0.1")


def test_update_statuses_without_results_yet() -> None:
    manager = ScriptedManager()
    pod = pod_with(readinessProbe={**EXEC, "periodSeconds": 3600})
    st = {"name": "c", "containerID": "docker://a", "state": RUNNING}
    assert manager.update_statuses("u1", [st])[0]["ready"] is True  # no worker: running
    manager.add_pod(pod)
    try:
        assert manager.update_statuses("u1", [st])[0]["ready"] is False
        assert manager.worker_count() == 1
    finally:
        manager.remove_pod("u1")
    deadline = time.monotonic() + 5
    while manager.worker_count() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert manager.worker_count() == 0


def test_a_created_container_gets_no_liveness_failure_before_it_runs() -> None:
    manager = ScriptedManager()
    worker = worker_for(manager, ProbeType.LIVENESS, EXEC)
    manager.set_status("u1", {"phase": "Pending", "containerStatuses": [{
        "name": "c", "containerID": "docker://a",
        "state": {"waiting": {"reason": "ContainerCreating"}}}]})
    assert worker.do_probe()
    assert manager.kill_reason("docker://a") is None
    manager.set_status("u1", {"phase": "Running", "containerStatuses": [{
        "name": "c", "containerID": "docker://a", "state": {"terminated": {"exitCode": 1}}}]})
    assert worker.do_probe()  # it ended: a failure, and a restart will come
    assert manager.kill_reason("docker://a") is ProbeType.LIVENESS
