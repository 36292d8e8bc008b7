"""Lifecycle hook handlers without Docker: Go's quoting of messages, the tcpSocket handler's
"invalid handler" text, the preStop grace arithmetic (killContainer's 2 s minimum), sleep
hooks and their cancellation, and httpGet hooks against a real local HTTP server (any
response is success; only a failed request fails, with Go's client error), and when a
postStart hook holds back the containers after its own."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kubelet import containers, hooks

POD = {"metadata": {"name": "web", "namespace": "ns", "uid": "u-1"}, "spec": {}}
CONTAINER = {"name": "c", "ports": [{"name": "http", "containerPort": 0}]}


def target(pod_ip: str = "127.0.0.1", container: dict[str, Any] | None = None
           ) -> hooks.Target:
    return hooks.Target(POD, container or CONTAINER, "cid", lambda: pod_ip)


@pytest.mark.parametrize("text, quoted", [
    ("oops\n", '"oops\\n"'), ('say "hi"\t', '"say \\"hi\\"\\t"'), ("\x00é", '"\\x00é"'),
    ("", '""')])
def test_go_quote(text: str, quoted: str) -> None:
    assert hooks.go_quote(text) == quoted


@pytest.mark.parametrize("handler, text", [
    ({"tcpSocket": {"port": 8080}}, "TCPSocket:&TCPSocketAction{Port:{0 8080 },Host:,}"),
    ({"tcpSocket": {"port": "http", "host": "db"}},
     "TCPSocket:&TCPSocketAction{Port:{1 0 http},Host:db,}"),
])
def test_a_tcp_socket_hook_is_no_handler(handler: dict[str, Any], text: str) -> None:
    with pytest.raises(hooks.HookFailed) as failed:
        hooks.HandlerRunner(None).run(target(), handler)
    assert str(failed.value) == ("Cannot run handler: invalid handler: &LifecycleHandler{"
                                 f"Exec:nil,HTTPGet:nil,{text},Sleep:nil,}}")


@pytest.mark.parametrize("grace, spent, cap, expected", [
    (30, 3, 10, 10), (5, 3, 10, 2), (5, 5, 10, 2), (10, 1, 10, 9), (4, 0, 10, 4)])
def test_stop_grace_after_a_pre_stop_hook(grace: int, spent: int, cap: int, expected: int
                                          ) -> None:
    assert hooks.stop_grace(grace, spent, cap) == expected


def test_sleep_hook_sleeps_and_ends_early_when_cancelled() -> None:
    runner, t = hooks.HandlerRunner(None), target()
    started = time.monotonic()
    runner.run(t, {"sleep": {"seconds": 1}})
    assert time.monotonic() - started >= 1
    threading.Timer(0.2, t.cancelled.set).start()
    with pytest.raises(hooks.HookFailed) as failed:
        runner.run(t, {"sleep": {"seconds": 30}})
    assert str(failed.value) == (
        'Sleep lifecycle hook (30) for Container "c" in Pod "web_ns(u-1)" failed - error: '
        "container terminated before sleep hook finished")


def test_pre_stop_waits_at_most_the_grace_period_and_reports_failure() -> None:
    seen: list[tuple[str, str, str, str]] = []
    spent = hooks.run_pre_stop(hooks.HandlerRunner(None), target(),
                               {"sleep": {"seconds": 30}}, 1,
                               lambda _p, kind, reason, msg, where: seen.append(
                                   (kind, reason, msg, where)), "spec.containers{c}")
    assert spent == 1
    time.sleep(0.2)  # the cancelled sleep ends and reports
    assert seen == [("Warning", "FailedPreStopHook", "PreStopHook failed", "spec.containers{c}")]


@pytest.fixture
def server() -> Iterator[tuple[int, list[dict[str, str]]]]:
    requests: list[dict[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append({"path": self.path, **dict(self.headers)})
            self.send_response(500)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd.server_address[1], requests
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_http_hook_any_response_is_success(server: tuple[int, list[dict[str, str]]]) -> None:
    port, requests = server
    container = {"name": "c", "ports": [{"name": "web", "containerPort": port}]}
    hooks.HandlerRunner(None).run(target(container=container),
                                  {"httpGet": {"port": "web", "path": "/hook"}})
    assert requests[0]["path"] == "/hook"
    assert requests[0]["User-Agent"] == "kube-lifecycle/1.32"


def test_http_hook_failure_message() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(hooks.HookFailed) as failed:
        hooks.HandlerRunner(None).run(target(), {"httpGet": {"port": port, "path": "/x"}})
    assert str(failed.value) == (
        f'HTTP lifecycle hook (/x) for Container "c" in Pod "web_ns(u-1)" failed - error: '
        f'Get "http://127.0.0.1:{port}/x": dial tcp 127.0.0.1:{port}: connect: '
        "connection refused")


def test_has_hooks() -> None:
    assert not hooks.has_hooks({"spec": {"containers": [{"name": "c"}]}})
    assert hooks.has_hooks({"spec": {"containers": [{"name": "c", "lifecycle": {
        "preStop": {"sleep": {"seconds": 1}}}}]}})


def run_of(done: bool = False, error: str = "") -> hooks.PostStart:
    return hooks.PostStart(target(), done, error)


RUNNING = run_of()


@pytest.mark.parametrize("before, now, holds", [
    (None, None, False),  # no hook
    (None, RUNNING, True),  # launched by this sync
    (RUNNING, RUNNING, True),  # still running since an earlier sync
    (RUNNING, run_of(done=True), False),  # ended before the next container's turn
    (run_of(done=True), RUNNING, True),  # a restarted container reruns its hook
    (run_of(done=True, error="failed"), RUNNING, False),  # failed now: the next ones go on
    (run_of(done=True, error="failed"), None, False),  # failed, restart backing off
])
def test_which_post_start_hook_holds_back_the_next_containers(
        before: hooks.PostStart | None, now: hooks.PostStart | None, holds: bool) -> None:
    assert containers.hook_holds(before, now) is holds


def test_latest_post_start_hook_of_a_container() -> None:
    ended = threading.Event()
    runs = hooks.PostStartHooks(hooks.HandlerRunner(None), lambda uid: ended.set())
    first = target(container={"name": "proxy"})
    runs.launch(first, {"sleep": {"seconds": 1}})
    runs.launch(hooks.Target(POD, {"name": "app"}, "cid-2", lambda: ""), {"sleep": {"seconds": 0}})
    found = runs.latest("u-1", "proxy")
    assert found is not None and found.target is first and not found.done
    assert runs.latest("u-2", "proxy") is None
    assert ended.wait(5)
    runs.forget("cid")
    assert runs.latest("u-1", "proxy") is None
    runs.cancel_pod("u-1")
