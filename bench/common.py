"""What the benchmarks share: one JSON line per result, percentiles, a real apiserver process.

The benches measure the apiserver as users meet it, a separate `storagelab apiserver`
process over HTTPS with client certificates, on SQLite or on a fresh PostgreSQL database
(taken from `STORAGELAB_TEST_PG`, as the tests do, and dropped afterwards). Each result is
printed at once as `{"metric", "value", "unit", "n", ...}` so a long run can be read live.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]


class BenchError(RuntimeError):
    """The bench cannot run as asked (a store missing, a server that does not start)."""


def emit(metric: str, value: float, unit: str, n: int, **extra: Any) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 3), "unit": unit, "n": n,
                      **extra}), flush=True)


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile (p in 0..100) of `values`."""
    ordered = sorted(values)
    if not ordered:
        raise BenchError("no samples")
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


@dataclass(frozen=True)
class ServerHandle:
    """How to reach a running apiserver: its URL, the admin's certificate, its process id."""

    url: str
    pki: Path
    pid: int

    def client(self, timeout: float = 60) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return httpx.Client(base_url=self.url, verify=context, timeout=timeout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def apiserver(database_url: str = "") -> Iterator[ServerHandle]:
    """A `storagelab apiserver` on a fresh data dir (and `database_url`), stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="storagelab-bench-") as tmp:
        data, port = Path(tmp), _free_port()
        args = [sys.executable, "-m", "storagelab.cli", "apiserver", "--data-dir", str(data),
                "--port", str(port)] + (["--database-url", database_url] if database_url else [])
        with open(data / "apiserver.log", "ab") as log:
            process = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=log)
        try:
            handle = ServerHandle(f"https://127.0.0.1:{port}", data / "pki", process.pid)
            _wait_ready(handle, process, data / "apiserver.log")
            yield handle
        finally:
            stop(process, 10)


def start_controllers(data_dir: Path, *flags: str) -> subprocess.Popen[bytes]:
    """A real `storagelab controllers` (the controller-manager `make up` runs) against the
    apiserver whose data dir is `data_dir`; its log is `controllers.log` there."""
    with open(data_dir / "controllers.log", "ab") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "storagelab.cli", "controllers", "--kubeconfig",
             str(data_dir / "controller-manager.kubeconfig"), *flags],
            cwd=REPO, stdout=log, stderr=log)


def stop(process: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """SIGTERM (a clean shutdown: the controllers release their lease), SIGKILL after
    `grace` seconds."""
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_ready(handle: ServerHandle, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"apiserver exited: {log.read_text()[-2000:]}")
        try:
            with handle.client(timeout=2) as client:
                if client.get("/readyz").status_code == 200:
                    return
        except (httpx.HTTPError, OSError):
            pass  # not listening yet, or certificates not written yet
        time.sleep(0.1)
    raise BenchError(f"apiserver not ready: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def postgres_database(base_url: str) -> Iterator[str]:
    """A new empty database next to `base_url`'s, dropped afterwards; yields its URL."""
    import sqlalchemy as sa

    name = f"storagelab_bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    head, _, query = base_url.partition("?")
    try:
        yield f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def postgres_base_url() -> str:
    url = os.environ.get("STORAGELAB_TEST_PG", "")
    if not url:
        raise BenchError("PostgreSQL is not configured: run scripts/prepare-test-env.sh and "
                         "`. ./.test-env` (sets STORAGELAB_TEST_PG)")
    return url
