"""Reliability of the apiserver as a process: crashes, write storms and stalled watchers.

Each test runs real `storagelab apiserver` processes (SQLite and PostgreSQL) and checks the
promises a Kubernetes client relies on: an acknowledged write survives `kill -9`, the
`resourceVersion` never goes backwards, a watch resumed from its last revision misses nothing
and repeats nothing, 50 concurrent writers never see a 5xx, two updates from one version
give exactly one winner and one `409 Conflict`, and a watcher that stops reading is dropped
alone while the server's memory stays bounded and the other watchers keep flowing.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ApiServer, create_namespace, fresh_postgres_database

Obj = dict[str, Any]
STORES = ["sqlite", "postgres"]
MIB = 1024 * 1024


# ---- helpers ----------------------------------------------------------------------------

def cm(name: str, value: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"v": value}}


def cm_path(namespace: str, name: str = "") -> str:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    return f"{base}/{name}" if name else base


def new_server(store: str, data_dir: Path) -> ApiServer:
    url = fresh_postgres_database() if store == "postgres" else ""
    return ApiServer(data_dir, url)


def current_revision(client: httpx.Client, namespace: str) -> int:
    r = client.get(cm_path(namespace))
    assert r.status_code == 200, r.text
    return int(r.json()["metadata"]["resourceVersion"])


def rss_kib(pid: int, field_name: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field_name} missing for pid {pid}")


def revision_of(obj: Obj) -> int:
    return int(obj["metadata"]["resourceVersion"])


@dataclass(frozen=True)
class Ack:
    """A write the server answered with 2xx: the object's name, revision and data."""

    name: str
    revision: int
    data: Obj
    at: float


@dataclass(frozen=True)
class Seen:
    """One event as a watcher received it."""

    revision: int
    type: str
    name: str
    data: Obj
    at: float

    @property
    def identity(self) -> tuple[int, str, str, str]:
        return self.revision, self.type, self.name, json.dumps(self.data, sort_keys=True)


class WatchRecorder(threading.Thread):
    """A watch stream read in its own thread, each event stamped with its arrival time.

    Ends when the server ends the stream, when it dies, or at the event for `stop_name`.
    """

    def __init__(self, server: ApiServer, namespace: str, from_revision: int,
                 stop_name: str = "") -> None:
        super().__init__(daemon=True)
        self.server, self.namespace = server, namespace
        self.from_revision, self.stop_name = from_revision, stop_name
        self.events: list[Seen] = []
        self.error: BaseException | None = None
        self.ready = threading.Event()

    def run(self) -> None:
        params = {"watch": "1", "resourceVersion": str(self.from_revision),
                  "timeoutSeconds": "300"}
        try:
            with self.server.client() as client, \
                    client.stream("GET", cm_path(self.namespace), params=params) as r:
                assert r.status_code == 200, r.read()
                self.ready.set()
                self._read(r.iter_lines())
        except (httpx.HTTPError, OSError) as e:
            self.error = e  # the server died under us: expected in the crash test
        finally:
            self.ready.set()

    def _read(self, lines: Iterator[str]) -> None:
        for line in lines:
            if not line:
                continue
            event = json.loads(line)
            if event["type"] == "ERROR":
                self.error = RuntimeError(f"watch ERROR event: {event['object']}")
                return
            if event["type"] == "BOOKMARK":
                continue
            obj = event["object"]
            name = obj["metadata"]["name"]
            self.events.append(Seen(revision_of(obj), event["type"], name,
                                    obj.get("data") or {}, time.monotonic()))
            if name == self.stop_name:
                return

    @property
    def last_revision(self) -> int:
        return self.events[-1].revision if self.events else self.from_revision

    def finish(self, timeout: float = 30) -> list[Seen]:
        self.join(timeout)
        assert not self.is_alive(), f"watch did not reach {self.stop_name!r} in {timeout}s"
        if self.stop_name:
            assert self.events and self.events[-1].name == self.stop_name, \
                f"watch ended before {self.stop_name!r}: {self.error!r}"
        return self.events


def start_watch(server: ApiServer, namespace: str, from_revision: int,
                stop_name: str = "") -> WatchRecorder:
    recorder = WatchRecorder(server, namespace, from_revision, stop_name)
    recorder.start()
    assert recorder.ready.wait(10), "watch did not start"
    return recorder


def history(server: ApiServer, namespace: str, from_revision: int) -> list[Seen]:
    """Every ConfigMap event after `from_revision`, replayed from the log."""
    stop = f"history-end-{uuid.uuid4().hex[:6]}"
    with server.client() as client:
        assert client.post(cm_path(namespace), json=cm(stop, "")).status_code == 201
    events = start_watch(server, namespace, from_revision, stop).finish()
    return [e for e in events if e.name != stop]


def assert_no_gaps_or_repeats(got: list[Seen], expected: list[Seen]) -> None:
    revisions = [e.revision for e in got]
    assert revisions == sorted(set(revisions)), "events out of order or repeated"
    missing = sorted({e.revision for e in expected} - set(revisions))
    extra = sorted(set(revisions) - {e.revision for e in expected})
    assert (missing, extra) == ([], []), f"missing revisions {missing[:20]}, extra {extra[:20]}"
    assert [e.identity for e in got] == [e.identity for e in expected]


# ---- writers --------------------------------------------------------------------------

@dataclass
class WriterLog:
    """What one writer thread was told: acks, the write in flight, unexpected answers."""

    acks: list[Ack] = field(default_factory=list)
    in_flight: tuple[str, Obj] | None = None
    unexpected: list[tuple[int, str]] = field(default_factory=list)
    error: BaseException | None = None


def ack_of(response: httpx.Response) -> Ack:
    obj = response.json()
    return Ack(obj["metadata"]["name"], revision_of(obj), obj.get("data") or {},
               time.monotonic())


def write_loop(server: ApiServer, namespace: str, prefix: str, log: WriterLog,
               keep_going: Callable[[int], bool], payload: int = 0) -> None:
    """Create a ConfigMap, update it twice (conditionally), create the next one, and so on.

    Stops at the first transport error (the server was killed) or when `keep_going` says so.
    """
    current: Obj | None = None
    try:
        with server.client() as client:
            i = 0
            while keep_going(i):
                value = f"{prefix}-{i}" + "x" * payload
                if i % 3 == 0:
                    name = f"{prefix}-{i // 3}"
                    log.in_flight = (name, {"v": value})
                    r = client.post(cm_path(namespace), json=cm(name, value))
                else:
                    assert current is not None
                    log.in_flight = (current["metadata"]["name"], {"v": value})
                    r = client.put(cm_path(namespace, current["metadata"]["name"]),
                                   json=dict(current, data={"v": value}))
                if not r.is_success:
                    log.unexpected.append((r.status_code, r.text[:300]))
                    return
                current = r.json()
                log.acks.append(ack_of(r))
                log.in_flight = None
                i += 1
    except (httpx.HTTPError, OSError) as e:
        log.error = e


def run_writers(server: ApiServer, namespace: str, prefixes: list[str],
                keep_going: Callable[[int], bool], payload: int = 0
                ) -> tuple[list[threading.Thread], list[WriterLog]]:
    logs = [WriterLog() for _ in prefixes]
    threads = [threading.Thread(target=write_loop, daemon=True,
                                args=(server, namespace, p, log, keep_going, payload))
               for p, log in zip(prefixes, logs)]
    for t in threads:
        t.start()
    return threads, logs


def join_all(threads: list[threading.Thread], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "writers hung"


# ---- kill -9 during writes ------------------------------------------------------------

@dataclass(frozen=True)
class CrashRun:
    """What the clients knew when the server was killed."""

    start_revision: int
    acks: list[Ack]
    in_flight: dict[str, Obj]
    last_watched: int


def write_until_killed(server: ApiServer, namespace: str, writers: int = 6,
                       acks_before_kill: int = 150) -> CrashRun:
    with server.client() as client:
        start = current_revision(client, namespace)
    live = start_watch(server, namespace, start)
    stop = threading.Event()
    threads, logs = run_writers(server, namespace, [f"pre{w}" for w in range(writers)],
                                lambda _i: not stop.is_set())
    deadline = time.monotonic() + 30
    while sum(len(log.acks) for log in logs) < acks_before_kill and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()  # SIGKILL in the middle of the storm: several writes are in flight
    stop.set()
    join_all(threads)
    live.join(10)
    assert [u for log in logs for u in log.unexpected] == []
    acks = [a for log in logs for a in log.acks]
    assert len(acks) >= acks_before_kill, "writers too slow to reach the kill point"
    in_flight = {log.in_flight[0]: log.in_flight[1] for log in logs if log.in_flight}
    return CrashRun(start, acks, in_flight, live.last_revision)


@pytest.mark.slow
@pytest.mark.parametrize("store", STORES)
def test_kill_9_during_writes_loses_nothing_acknowledged(store: str, tmp_path: Path) -> None:
    server = new_server(store, tmp_path / "data").start()
    try:
        namespace = "crash"
        with server.client() as client:
            create_namespace(client, namespace)
        crash = write_until_killed(server, namespace)
        server.start()  # same data dir, same database URL
        resumed = start_watch(server, namespace, crash.last_watched, stop_name="after-end")
        after = write_after_restart(server, namespace)
        with server.client() as client:
            assert client.post(cm_path(namespace), json=cm("after-end", "")).status_code == 201
        resumed_events = resumed.finish()
        full = history(server, namespace, crash.start_revision)
        with server.client() as client:
            state = {o["metadata"]["name"]: o for o in client.get(cm_path(namespace)).json()["items"]}
    finally:
        server.stop()

    by_revision = {e.revision: e for e in full}
    for ack in crash.acks:  # durable, with the value it was acknowledged with
        seen = by_revision.get(ack.revision)
        assert seen is not None, f"acknowledged write {ack} lost by the crash"
        assert (seen.name, seen.data) == (ack.name, ack.data)
    assert_state_is_last_ack_or_in_flight(state, crash)
    # resourceVersion never goes backwards across the restart
    before = max(max(a.revision for a in crash.acks), crash.last_watched)
    assert min(a.revision for a in after) > before
    # the resumed watch: every later event exactly once, in order
    assert_no_gaps_or_repeats(resumed_events,
                              [e for e in full if e.revision > crash.last_watched])
    counts = Counter(e.revision for e in resumed_events)
    assert all(counts[a.revision] == 1 for a in after)


def write_after_restart(server: ApiServer, namespace: str) -> list[Ack]:
    threads, logs = run_writers(server, namespace, [f"after{w}" for w in range(3)],
                                lambda i: i < 12)
    join_all(threads)
    assert [(log.unexpected, log.error) for log in logs] == [([], None)] * 3
    return [a for log in logs for a in log.acks]


def assert_state_is_last_ack_or_in_flight(state: dict[str, Obj], crash: CrashRun) -> None:
    """Each key holds its last acknowledged value, or the unanswered write that followed it."""
    last: dict[str, Ack] = {}
    for ack in sorted(crash.acks, key=lambda a: a.revision):
        last[ack.name] = ack
    for name, ack in last.items():
        obj = state.get(name)
        assert obj is not None, f"{name} acknowledged at {ack.revision} but missing"
        allowed = [ack.data] + ([crash.in_flight[name]] if name in crash.in_flight else [])
        assert obj["data"] in allowed, f"{name}: {obj['data']} is neither {allowed}"
        assert revision_of(obj) >= ack.revision


# ---- live watch under concurrent writers ---------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("store", STORES)
def test_live_watch_under_concurrent_writers_misses_nothing(store: str, tmp_path: Path) -> None:
    """Revisions commit in order but are published by each writer's thread: a watcher must
    still get every one of them, since a client resumes from the last revision it saw."""
    server = new_server(store, tmp_path / "data").start()
    try:
        with server.client() as client:
            create_namespace(client, "live")
            start = current_revision(client, "live")
        live = start_watch(server, "live", start, stop_name="live-end")
        threads, logs = run_writers(server, "live", [f"w{i}" for i in range(30)],
                                    lambda i: i < 15)
        join_all(threads)
        assert [(log.unexpected, log.error) for log in logs] == [([], None)] * 30
        with server.client() as client:
            assert client.post(cm_path("live"), json=cm("live-end", "")).status_code == 201
        got = live.finish()
        full = history(server, "live", start)
    finally:
        server.stop()
    assert_no_gaps_or_repeats(got, full)


# ---- 50 concurrent writers ------------------------------------------------------------

@pytest.mark.slow
def test_fifty_concurrent_writers_never_see_a_5xx(server: ApiServer, namespace: str) -> None:
    barrier = threading.Barrier(50)

    def keep_going(i: int) -> bool:
        if i == 0:
            barrier.wait(30)  # all 50 start together, for the most contention
        return i < 9
    threads, logs = run_writers(server, namespace, [f"c{w}" for w in range(50)], keep_going)
    races = race_pairs(server, namespace, rounds=10)
    join_all(threads, timeout=120)
    assert [u for log in logs for u in log.unexpected] == []
    assert [log.error for log in logs if log.error] == []
    assert sum(len(log.acks) for log in logs) == 50 * 9
    with server.client() as client:
        names = {o["metadata"]["name"] for o in client.get(cm_path(namespace)).json()["items"]}
    assert {f"c{w}-{k}" for w in range(50) for k in range(3)} <= names
    for outcome in races:
        assert outcome == ONE_WINNER, outcome


@dataclass(frozen=True)
class RaceOutcome:
    """Two updates from one resourceVersion: the codes, the loser's reason, who is stored."""

    codes: tuple[int, int]
    loser_reason: str
    stored_is_winner: bool


ONE_WINNER = RaceOutcome((200, 409), "Conflict", stored_is_winner=True)


def race_pairs(server: ApiServer, namespace: str, rounds: int) -> list[RaceOutcome]:
    outcomes = []
    with server.client() as first, server.client() as second:
        for k in range(rounds):
            r = first.post(cm_path(namespace), json=cm(f"race-{k}", "0"))
            assert r.status_code == 201, r.text
            outcomes.append(race_once(first, second, namespace, r.json()))
    return outcomes


def race_once(a: httpx.Client, b: httpx.Client, namespace: str, obj: Obj) -> RaceOutcome:
    barrier = threading.Barrier(2)
    answers: dict[str, httpx.Response] = {}

    def update(client: httpx.Client, value: str) -> None:
        barrier.wait(10)
        answers[value] = client.put(cm_path(namespace, obj["metadata"]["name"]),
                                    json=dict(obj, data={"v": value}))
    threads = [threading.Thread(target=update, args=(c, v)) for c, v in ((a, "A"), (b, "B"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    ordered = sorted(answers.items(), key=lambda kv: kv[1].status_code)
    codes = (ordered[0][1].status_code, ordered[-1][1].status_code)
    loser = ordered[-1][1].json()
    stored = a.get(cm_path(namespace, obj["metadata"]["name"])).json()
    return RaceOutcome(codes, loser.get("reason", ""), stored["data"] == {"v": ordered[0][0]})


# ---- a watcher that stops reading -----------------------------------------------------

FLOOD_OBJECTS = 1500
FLOOD_PAYLOAD = 100 * 1024
RSS_GROWTH_BOUND_MIB = 128  # the flood is 146 MiB: a server queueing it all for one
# stalled watcher grows past this; one that drops the watcher stays far below it.


class StalledWatch:
    """A watch request on a raw TLS socket with a tiny receive buffer that is never read."""

    def __init__(self, server: ApiServer, namespace: str, from_revision: int) -> None:
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", server.port))
        context = ssl.create_default_context(cafile=str(server.pki / "ca.crt"))
        context.load_cert_chain(str(server.pki / "admin.crt"), str(server.pki / "admin.key"))
        self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        self.sock.sendall(
            f"GET {cm_path(namespace)}?watch=1&resourceVersion={from_revision}"
            f"&timeoutSeconds=600 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Accept: application/json\r\n\r\n".encode())

    def drain(self, idle: float = 5.0) -> tuple[int, bool]:
        """Read what the server sends now: (events received, whether the stream ended)."""
        self.sock.settimeout(idle)
        events, tail = 0, b""
        try:
            while True:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    return events, True
                events += (tail + chunk).count(b'{"type":"') - tail.count(b'{"type":"')
                tail = (tail + chunk)[-16:]
                if tail.endswith(b"\r\n0\r\n\r\n"):
                    return events, True
        except TimeoutError:
            return events, False
        finally:
            self.sock.close()


@dataclass(frozen=True)
class FloodRun:
    """Observations of one flood of large writes while one watcher stalls."""

    acks: list[Ack]
    fast_events: list[Seen]
    baseline_rss_mib: float
    peak_rss_mib: float
    stalled_events: int
    stalled_ended: bool


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.05)


@pytest.fixture(scope="module")
def flood(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FloodRun]:
    server = ApiServer(tmp_path_factory.mktemp("flood")).start()
    try:
        yield run_flood(server)
    finally:
        server.stop()


def run_flood(server: ApiServer) -> FloodRun:
    assert server.process is not None
    with server.client() as client:
        create_namespace(client, "flood")
        start = current_revision(client, "flood")
    stalled = StalledWatch(server, "flood", start)
    fast = start_watch(server, "flood", start, stop_name="flood-end")
    time.sleep(0.5)
    baseline = rss_kib(server.process.pid)
    sampler = RssSampler(server.process.pid)
    sampler.start()
    per_writer = FLOOD_OBJECTS // 4
    threads, logs = run_writers(server, "flood", [f"f{w}" for w in range(4)],
                                lambda i: i < per_writer, payload=FLOOD_PAYLOAD)
    join_all(threads, timeout=150)
    with server.client() as client:
        assert client.post(cm_path("flood"), json=cm("flood-end", "")).status_code == 201
    fast_events = fast.finish(60)[:-1]
    sampler.stop.set()
    sampler.join()
    assert [(log.unexpected, log.error) for log in logs] == [([], None)] * 4
    stalled_events, ended = stalled.drain()
    return FloodRun([a for log in logs for a in log.acks], fast_events, baseline / 1024,
                    sampler.peak / 1024, stalled_events, ended)


@pytest.mark.slow
def test_stalled_watcher_does_not_hold_back_other_watchers(flood: FloodRun) -> None:
    acked = {a.revision: a for a in flood.acks}
    got = [e.revision for e in flood.fast_events]
    assert got == sorted(acked), "the reading watcher missed, repeated or reordered events"
    lags = sorted(e.at - acked[e.revision].at for e in flood.fast_events)
    p99 = lags[int(len(lags) * 0.99)]
    assert p99 < 1.0 and lags[-1] < 5.0, f"events late: p99 {p99:.3f}s, max {lags[-1]:.3f}s"


@pytest.mark.slow
def test_stalled_watcher_is_dropped_and_memory_stays_bounded(flood: FloodRun) -> None:
    growth = flood.peak_rss_mib - flood.baseline_rss_mib
    assert growth < RSS_GROWTH_BOUND_MIB, (
        f"server RSS grew {growth:.0f} MiB ({flood.baseline_rss_mib:.0f} -> "
        f"{flood.peak_rss_mib:.0f}) while {FLOOD_OBJECTS} x 100 KiB events were written")
    assert flood.stalled_ended, "the stalled watch was not ended by the server"
    assert flood.stalled_events < FLOOD_OBJECTS, "the stalled watch was given every event"
