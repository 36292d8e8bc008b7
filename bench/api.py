"""Benchmark of the apiserver: create latency, large lists and watch delivery, per store.

For each store (SQLite, PostgreSQL) it starts a real `storagelab apiserver` and measures:
create latency p50/p99 of 10,000 PVCs under 20 concurrent clients (closed loop, as fast as
the server answers; target p99 <= 50 ms), create latency at a steady 30 qps (open loop, the
rate of k3s' published SQLite load test), the list of those 10,000 PVCs whole and in pages
of `limit=500`, and watch delivery latency: the time from a write's acknowledgement reaching
its client to its event reaching a watcher in another process (target p99 <= 100 ms).
Clients run in 4 worker processes of 5 threads each so the client's own GIL does not
inflate the server's numbers. Every result is one JSON line:
`{"metric", "value", "unit", "n", "store", "anchor", "anchor_value", ...}`.
Run: `python bench/api.py --store sqlite|postgres|both` (PostgreSQL needs
`. ./.test-env`, written by scripts/prepare-test-env.sh).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common

PROCESSES = 4
K8S_MUTATING_SLO_MS = 1000.0
K8S_NAMESPACE_LIST_SLO_S = 5.0
K3S_SQLITE_MEAN_MS_AT_30QPS = 170.0
TARGET_CREATE_P99_MS = 50.0
TARGET_WATCH_P99_MS = 100.0
MUTATING_ANCHOR = "Kubernetes SLO: p99 of mutating API calls <= 1 s"
K3S_ANCHOR = "k3s on SQLite, published load test: mean 0.17 s at 30 qps"


@dataclass(frozen=True)
class Load:
    """Creates of `count` objects named `<prefix>-<i>`, spread over `clients` clients.

    `qps` 0 is a closed loop (each client sends its next request on the answer); otherwise
    request i is due at start + i/qps and its latency counts from then, so a slow answer
    cannot hide the requests queued behind it.
    """

    kind: str
    namespace: str
    prefix: str
    count: int
    clients: int = 20
    qps: float = 0.0


@dataclass(frozen=True)
class Sample:
    latency: float
    acked_at: float
    revision: int
    status: int


def body(kind: str, name: str) -> dict[str, Any]:
    if kind == "pvc":
        return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}}}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"k": name}}


def collection(kind: str, namespace: str) -> str:
    plural = "persistentvolumeclaims" if kind == "pvc" else "configmaps"
    return f"/api/v1/namespaces/{namespace}/{plural}"


# ---- load generation (runs in worker processes) ---------------------------------------

def _client_loop(server: common.ServerHandle, load: Load, client_id: int, start_at: float,
                 out: list[Sample]) -> None:
    with server.client() as client:
        client.get("/readyz")  # the TLS handshake happens before the clock starts
        time.sleep(max(0.0, start_at - time.monotonic()))
        path = collection(load.kind, load.namespace)
        for i in range(client_id, load.count, load.clients):
            due = start_at + i / load.qps if load.qps else time.monotonic()
            time.sleep(max(0.0, due - time.monotonic()))
            r = client.post(path, json=body(load.kind, f"{load.prefix}-{i}"))
            done = time.monotonic()
            revision = int(r.json()["metadata"]["resourceVersion"]) if r.is_success else 0
            out.append(Sample(done - due, done, revision, r.status_code))


def _worker(server: common.ServerHandle, load: Load, client_ids: list[int],
            start_at: float) -> list[tuple[float, float, int, int]]:
    """Plain tuples go back to the parent: classes of a `__main__` do not unpickle there."""
    out: list[Sample] = []
    threads = [threading.Thread(target=_client_loop, args=(server, load, c, start_at, out))
               for c in client_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [(s.latency, s.acked_at, s.revision, s.status) for s in out]


def _noop() -> None:
    """Forces a pool worker to start before the clock does."""


def run_load(pool: ProcessPoolExecutor, server: common.ServerHandle, load: Load) -> list[Sample]:
    for f in [pool.submit(_noop) for _ in range(PROCESSES)]:
        f.result()
    start_at = time.monotonic() + 1.5  # monotonic is system-wide on Linux: one clock for all
    groups = [list(range(p, load.clients, PROCESSES)) for p in range(PROCESSES)]
    futures = [pool.submit(_worker, server, load, ids, start_at) for ids in groups if ids]
    samples = [Sample(*t) for f in futures for t in f.result()]
    failed = [s.status for s in samples if not 200 <= s.status < 300]
    if failed:
        raise common.BenchError(f"{len(failed)} creates failed, codes {sorted(set(failed))}")
    return samples


# ---- the watcher (runs in its own process) --------------------------------------------

def watch_until(server: common.ServerHandle, namespace: str, from_revision: int,
                stop_name: str, ready: Any) -> list[tuple[int, float]]:
    """(revision, arrival time) of every ConfigMap event until the one named `stop_name`."""
    seen: list[tuple[int, float]] = []
    params = {"watch": "1", "resourceVersion": str(from_revision), "timeoutSeconds": "600"}
    with server.client() as client, \
            client.stream("GET", collection("cm", namespace), params=params) as r:
        ready.set()
        for line in r.iter_lines():
            if not line:
                continue
            arrived = time.monotonic()
            obj = json.loads(line)["object"]
            seen.append((int(obj["metadata"]["resourceVersion"]), arrived))
            if obj["metadata"]["name"] == stop_name:
                return seen
    return seen


# ---- the measurements -----------------------------------------------------------------

def bench_creates(pool: ProcessPoolExecutor, server: common.ServerHandle, store: str,
                  count: int) -> None:
    started = time.monotonic()
    samples = run_load(pool, server, Load("pvc", "bench", "pvc", count))
    elapsed = time.monotonic() - started - 1.5
    ms = [s.latency * 1000 for s in samples]
    for p in (50, 99):
        common.emit(f"create_latency_p{p}_20_clients", common.percentile(ms, p), "ms",
                    len(ms), store=store, anchor=MUTATING_ANCHOR,
                    anchor_value=K8S_MUTATING_SLO_MS, target=TARGET_CREATE_P99_MS,
                    resource="persistentvolumeclaims")
    common.emit("create_throughput_20_clients", len(ms) / elapsed, "req/s", len(ms),
                store=store, anchor=K3S_ANCHOR, anchor_value=30.0)


def bench_paced_creates(pool: ProcessPoolExecutor, server: common.ServerHandle, store: str,
                        count: int) -> None:
    samples = run_load(pool, server, Load("cm", "bench", "paced", count, qps=30.0))
    ms = [s.latency * 1000 for s in samples]
    common.emit("create_latency_mean_at_30qps", sum(ms) / len(ms), "ms", len(ms), store=store,
                anchor=K3S_ANCHOR, anchor_value=K3S_SQLITE_MEAN_MS_AT_30QPS)
    common.emit("create_latency_p99_at_30qps", common.percentile(ms, 99), "ms", len(ms),
                store=store, anchor=MUTATING_ANCHOR, anchor_value=K8S_MUTATING_SLO_MS)


def bench_lists(server: common.ServerHandle, store: str, count: int, repeat: int = 5) -> None:
    path = collection("pvc", "bench")
    anchor = "Kubernetes SLO: p99 of namespace-scope LIST <= 5 s"
    with server.client(timeout=300) as client:
        whole = [_timed_list(client, path, {}, count) for _ in range(repeat)]
        common.emit(f"list_{count}_pvcs", common.percentile(whole, 50), "s", repeat, store=store,
                    items=count, anchor=anchor, anchor_value=K8S_NAMESPACE_LIST_SLO_S)
        pages: list[float] = []
        walks = [_timed_walk(client, path, count, pages) for _ in range(repeat)]
    common.emit(f"list_{count}_pvcs_paginated_500_total", common.percentile(walks, 50), "s",
                repeat, store=store, items=count, anchor=anchor,
                anchor_value=K8S_NAMESPACE_LIST_SLO_S)
    for p in (50, 99):
        common.emit(f"list_page_500_latency_p{p}", common.percentile(pages, p) * 1000, "ms",
                    len(pages), store=store, anchor=anchor,
                    anchor_value=K8S_NAMESPACE_LIST_SLO_S * 1000)


def _timed_list(client: Any, path: str, params: dict[str, str], expect: int) -> float:
    started = time.monotonic()
    r = client.get(path, params=params)
    elapsed = time.monotonic() - started
    items = len(r.json()["items"])
    if r.status_code != 200 or items != expect:
        raise common.BenchError(f"list gave {r.status_code} with {items} items")
    return elapsed


def _timed_walk(client: Any, path: str, expect: int, pages: list[float]) -> float:
    started, token, items = time.monotonic(), "", 0
    while True:
        params = {"limit": "500"} | ({"continue": token} if token else {})
        page_start = time.monotonic()
        r = client.get(path, params=params)
        pages.append(time.monotonic() - page_start)
        data = r.json()
        items += len(data["items"])
        token = data["metadata"].get("continue", "")
        if not token:
            break
    if items != expect:
        raise common.BenchError(f"paginated list gave {items} items, expected {expect}")
    return time.monotonic() - started


def bench_watch(pool: ProcessPoolExecutor, server: common.ServerHandle, store: str,
                count: int) -> None:
    with server.client() as client:
        client.post("/api/v1/namespaces", json={"metadata": {"name": "watch"}})
        start = int(client.get(collection("cm", "watch")).json()["metadata"]["resourceVersion"])
    with multiprocessing.get_context("spawn").Manager() as manager, \
            ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as wpool:
        ready = manager.Event()
        watcher = wpool.submit(watch_until, server, "watch", start, "stop", ready)
        if not ready.wait(30):
            raise common.BenchError("watch did not start")
        samples = run_load(pool, server, Load("cm", "watch", "w", count))
        with server.client() as client:
            client.post(collection("cm", "watch"), json=body("cm", "stop"))
        arrived = dict(watcher.result(timeout=120))
    missed = sorted(s.revision for s in samples if s.revision not in arrived)
    common.emit("watch_events_missed", len(missed), "events", len(samples), store=store,
                anchor="every acknowledged write reaches every watcher", anchor_value=0,
                first_missed=missed[:10])
    delays = [max(0.0, arrived[s.revision] - s.acked_at) * 1000 for s in samples
              if s.revision in arrived]
    for p in (50, 99):
        common.emit(f"watch_delivery_p{p}", common.percentile(delays, p), "ms", len(delays),
                    store=store, anchor="target (ours); Kubernetes sets no watch-latency SLO",
                    anchor_value=TARGET_WATCH_P99_MS, writers=20,
                    note="event before its acknowledgement counts as 0")


# ---- main -----------------------------------------------------------------------------

@contextlib.contextmanager
def database_for(store: str) -> Iterator[str]:
    if store == "sqlite":
        yield ""
        return
    with common.postgres_database(common.postgres_base_url()) as url:
        yield url


def bench_store(store: str, args: argparse.Namespace) -> None:
    spawn = multiprocessing.get_context("spawn")
    with database_for(store) as url, common.apiserver(url) as server, \
            ProcessPoolExecutor(PROCESSES, mp_context=spawn) as pool:
        with server.client() as client:
            client.post("/api/v1/namespaces", json={"metadata": {"name": "bench"}})
        bench_creates(pool, server, store, args.pvcs)
        bench_paced_creates(pool, server, store, args.paced)
        bench_lists(server, store, args.pvcs)
        bench_watch(pool, server, store, args.watch_writes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--pvcs", type=int, default=10_000, help="PVCs to create and list")
    parser.add_argument("--paced", type=int, default=450, help="creates at 30 qps")
    parser.add_argument("--watch-writes", type=int, default=1000, help="writes while watching")
    args = parser.parse_args()
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    for store in stores:
        try:
            bench_store(store, args)
        except common.BenchError as e:
            print(f"bench/api.py: {store}: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
