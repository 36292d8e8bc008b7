"""Container lifecycle hooks (`lifecycle.postStart`, `lifecycle.preStop`), run as Kubernetes'
kubelet runs them (pkg/kubelet/lifecycle/handlers.go and kuberuntime's startContainer,
killContainer and executePreStopHook).

A handler is an exec (a Docker exec, with no timeout of its own), an httpGet (to the pod IP
unless `host` says otherwise; the status code does not matter, only a response), or a sleep.
A tcpSocket handler is accepted by the API but is no handler for the kubelet: it fails with
"Cannot run handler: invalid handler: ...". A failure gives the message handlers.go builds;
events carry only "PostStartHook failed" / "PreStopHook failed" (Kubernetes keeps the message,
which may hold secrets, out of events); the postStart message becomes the container's
waiting message (reason PostStartHookError).

postStart runs on its own thread once the container has started: the pod's sync goes on and
the container is reported as it was before this attempt until the hook ends, since a
Kubernetes kubelet writes no status while its sync waits for the hook. As that sync waits,
so do the pod's containers after this one that were to be started (kubelet.containers holds
them back while `latest` says the hook runs). A preStop hook runs before the stop, within the
grace period, and its time counts against it; the container then still gets at least
MINIMUM_GRACE_S of SIGTERM.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubelet import probe_runners as runners

Object = dict[str, Any]
logger = logging.getLogger(__name__)
# (pod, type, reason, message, fieldPath)
EventSink = Callable[[Object, str, str, str, str], None]
USER_AGENT = "kube-lifecycle/1.32"  # newProbeRequest's user agent for lifecycle hooks
MINIMUM_GRACE_S = 2  # minimumGracePeriodInSeconds: SIGTERM always gets this long
# The kubelet gives a postStart exec or GET no deadline of its own (only pod termination
# ends it); these bounds only keep a forgotten hook thread from living forever.
UNBOUNDED_S = 3600.0
POST_START_ERROR = "PostStartHookError"  # ErrPostStartHook: the waiting reason
POST_START_FAILED, PRE_STOP_FAILED = "FailedPostStartHook", "FailedPreStopHook"


class HookFailed(Exception):
    """A handler failed; the message is what handlers.go's Run returns as `msg`."""


def has_hooks(pod: Object) -> bool:
    spec = pod.get("spec") or {}
    return any(isinstance(c.get("lifecycle"), dict) and (
        c["lifecycle"].get("postStart") or c["lifecycle"].get("preStop"))
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or []))


def handler_of(container: Object, hook: str) -> Object | None:
    found = (container.get("lifecycle") or {}).get(hook)
    return found if isinstance(found, dict) else None


def pod_ref(pod: Object) -> str:
    """format.Pod: name_namespace(uid)."""
    meta = pod["metadata"]
    return f"{meta['name']}_{meta['namespace']}({meta['uid']})"


def go_quote(text: str) -> str:
    """Go's %q of a string (strconv.Quote)."""
    named = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
             "\v": "\\v", "\\": "\\\\", '"': '\\"'}
    out = []
    for ch in text:
        if ch in named:
            out.append(named[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def go_list(items: Iterable[object]) -> str:
    """Go's %v of a []string."""
    return "[" + " ".join(str(i) for i in items) + "]"


def _go_int_or_string(value: object) -> str:
    """%v of an intstr.IntOrString value: {Type IntVal StrVal}."""
    if isinstance(value, str):
        return f"{{1 0 {value}}}"
    return f"{{0 {value if isinstance(value, int) else 0} }}"


def invalid_handler(handler: Object) -> str:
    """The default case of handlers.go's Run: the handler as its generated String() prints
    it (a tcpSocket, the only other kind the API lets through)."""
    tcp = handler.get("tcpSocket")
    tcp_text = "nil" if not isinstance(tcp, dict) else (
        f"&TCPSocketAction{{Port:{_go_int_or_string(tcp.get('port'))},"
        f"Host:{tcp.get('host') or ''},}}")
    return ("Cannot run handler: invalid handler: &LifecycleHandler{Exec:nil,HTTPGet:nil,"
            f"TCPSocket:{tcp_text},Sleep:nil,}}")


@dataclass
class Target:
    """The container a hook runs against."""

    pod: Object
    container: Object
    container_id: str  # Docker's id, without "docker://"
    pod_ip: Callable[[], str]
    cancelled: threading.Event = field(default_factory=threading.Event)


class HandlerRunner:
    """handlers.go's Run: one handler against one container; raises HookFailed."""

    def __init__(self, docker_api: Any) -> None:
        self.docker_api = docker_api

    def run(self, target: Target, handler: Object, timeout_s: float = UNBOUNDED_S) -> None:
        if isinstance(handler.get("exec"), dict):
            self._exec(target, handler["exec"], timeout_s)
        elif isinstance(handler.get("httpGet"), dict):
            self._http(target, handler["httpGet"], timeout_s)
        elif isinstance(handler.get("sleep"), dict):
            self._sleep(target, handler["sleep"])
        else:
            raise HookFailed(invalid_handler(handler))

    def _exec(self, target: Target, action: Object, timeout_s: float) -> None:
        command = [str(c) for c in action.get("command") or []]
        output = ""
        try:
            result = runners.exec_sync(self.docker_api, target.container_id, command,
                                       timeout_s)
            output = result.stdout + result.stderr
            error = _exec_error(command, result)
        except runners.ProbeError as e:
            error = str(e)
        if error:
            raise HookFailed(
                f"Exec lifecycle hook ({go_list(command)}) for Container "
                f"{go_quote(target.container['name'])} in Pod {go_quote(pod_ref(target.pod))} "
                f"failed - error: {error}, message: {go_quote(output)}")

    def _http(self, target: Target, action: Object, timeout_s: float) -> None:
        try:
            url = runners.probe_url(action, target.container, target.pod_ip())
            runners.http_get(url, runners.probe_headers(action, USER_AGENT), timeout_s)
        except (runners.ProbeError, runners.HttpFailure) as e:
            raise HookFailed(
                f"HTTP lifecycle hook ({action.get('path') or ''}) for Container "
                f"{go_quote(target.container['name'])} in Pod {go_quote(pod_ref(target.pod))} "
                f"failed - error: {e}") from e

    def _sleep(self, target: Target, action: Object) -> None:
        seconds = action.get("seconds")
        seconds = seconds if isinstance(seconds, int) and not isinstance(seconds, bool) else 0
        if target.cancelled.wait(max(seconds, 0)):
            raise HookFailed(
                f"Sleep lifecycle hook ({seconds}) for Container "
                f"{go_quote(target.container['name'])} in Pod {go_quote(pod_ref(target.pod))} "
                "failed - error: container terminated before sleep hook finished")


def _exec_error(command: Sequence[str], result: runners.ExecResult) -> str:
    """The CRI client's error for an ExecSync ("" on exit 0)."""
    if result.exit_code is None:
        return "context deadline exceeded"
    if result.exit_code == 0:
        return ""
    return f"command '{' '.join(command)}' exited with {result.exit_code}: {result.stderr}"


# --- postStart -------------------------------------------------------------------------------

@dataclass
class PostStart:
    """One postStart run: under way until `done`; `error` is the handler's message."""

    target: Target
    done: bool = False
    error: str = ""


class PostStartHooks:
    """The postStart hooks of this node by container id, each on its own thread; the end of
    one wakes its pod's sync (`finished` hears the pod uid)."""

    def __init__(self, runner: HandlerRunner, finished: Callable[[str], None]) -> None:
        self.runner, self.finished = runner, finished
        self.lock = threading.Lock()
        self.runs: dict[str, PostStart] = {}

    def launch(self, target: Target, handler: Object) -> None:
        run = PostStart(target)
        with self.lock:
            self.runs[target.container_id] = run
        threading.Thread(target=self._run, args=(run, handler), daemon=True,
                         name=f"poststart-{target.container['name']}").start()

    def _run(self, run: PostStart, handler: Object) -> None:
        try:
            self.runner.run(run.target, handler)
        except HookFailed as e:
            run.error = str(e)
        except Exception as e:  # a broken hook must still end, and say why
            logger.exception("postStart hook of %s failed", run.target.container["name"])
            run.error = f"Cannot run handler: {e}"
        run.done = True
        self.finished(str(run.target.pod["metadata"]["uid"]))

    def of(self, container_id: str) -> PostStart | None:
        with self.lock:
            return self.runs.get(container_id)

    def latest(self, uid: str, name: str) -> PostStart | None:
        """The last hook launched for the pod's container `name` and not yet forgotten."""
        with self.lock:
            found = [r for r in self.runs.values()
                     if r.target.pod["metadata"]["uid"] == uid
                     and r.target.container["name"] == name]
        return found[-1] if found else None

    def forget(self, container_id: str) -> None:
        with self.lock:
            self.runs.pop(container_id, None)

    def cancel_pod(self, uid: str) -> None:
        """The pod is being stopped: hooks still sleeping end (as a cancelled context)."""
        with self.lock:
            found = [r for r in self.runs.values() if r.target.pod["metadata"]["uid"] == uid]
            for run in found:
                del self.runs[run.target.container_id]
        for run in found:
            run.target.cancelled.set()


# --- preStop ---------------------------------------------------------------------------------

def run_pre_stop(runner: HandlerRunner, target: Target, handler: Object, grace_s: int,
                 event: EventSink, where: str) -> int:
    """executePreStopHook: run the hook on its own thread and wait for it at most `grace_s`
    seconds; a failure is a FailedPreStopHook warning. The whole seconds it took."""
    start = time.monotonic()

    def hook() -> None:
        try:
            runner.run(target, handler, timeout_s=float(grace_s))
        except HookFailed as e:
            logger.info("preStop hook failed: %s", e)
            event(target.pod, "Warning", PRE_STOP_FAILED, "PreStopHook failed", where)
        except Exception:  # a broken hook must not stop the kill
            logger.exception("preStop hook of %s failed", target.container["name"])

    thread = threading.Thread(target=hook, daemon=True,
                              name=f"prestop-{target.container['name']}")
    thread.start()
    thread.join(grace_s)
    target.cancelled.set()  # a sleep still running ends with the stop
    return int(time.monotonic() - start)


def stop_grace(grace_s: int, spent_s: int, cap_s: int) -> int:
    """The SIGTERM window left after a preStop hook: the rest of the grace period, never
    under MINIMUM_GRACE_S (killContainer), and never over `cap_s` (this kubelet's bound on
    how long a stop may hold a pod's worker)."""
    return min(max(grace_s - spent_s, MINIMUM_GRACE_S), max(cap_s, MINIMUM_GRACE_S))
