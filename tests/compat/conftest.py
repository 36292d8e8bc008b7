"""Fixtures for the compatibility tests: real kubectl and the official Python client.

The compat tests prove that unmodified clients work against our apiserver, so they drive it
only through those clients (and through the admin httpx client for set-up that the clients
do not cover). Namespaces made here are emptied of PVC finalizers before they are deleted:
no controller-manager runs in these tests, so nothing else would ever release them and the
server's namespace housekeeping would keep walking them for the rest of the session.
"""

from __future__ import annotations

import contextlib
import queue
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import pytest

from tests.conftest import ApiServer, kubectl_available, require_real

MANIFESTS = Path(__file__).resolve().parent / "manifests"


@dataclass(frozen=True)
class Kubectl:
    """The real kubectl pointed at one server's kubeconfig, in one namespace."""

    server: ApiServer
    namespace: str

    def run(self, *args: str, check: bool = True, input: str | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return self.server.kubectl("-n", self.namespace, *args, check=check, input=input,
                                   timeout=timeout)

    def out(self, *args: str, input: str | None = None) -> str:
        """stdout of a command that must succeed."""
        return self.run(*args, input=input).stdout

    def fails(self, *args: str, input: str | None = None) -> str:
        """stderr of a command that must fail, as a user would read it."""
        result = self.run(*args, check=False, input=input)
        assert result.returncode != 0, f"kubectl {' '.join(args)} succeeded: {result.stdout}"
        return result.stderr.strip()

    def background(self, *args: str) -> Background:
        """A long-running kubectl (`get -w`, `wait`) whose output is read line by line."""
        cmd = ["kubectl", "--kubeconfig", str(self.server.kubeconfig), "-n", self.namespace,
               *args]
        return Background(subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True))


class Background:
    """A kubectl process started by a test; stopped by the test that started it."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.streams: dict[str, queue.Queue[str]] = {"stdout": queue.Queue(),
                                                     "stderr": queue.Queue()}
        self.seen: list[str] = []
        for name in self.streams:
            threading.Thread(target=self._pump, args=(name,), daemon=True).start()

    def _pump(self, name: str) -> None:
        stream = getattr(self.process, name)
        for line in stream:
            self.streams[name].put(line.rstrip("\n"))

    def wait_for_line(self, pattern: str, timeout: float = 10, stream: str = "stdout") -> str:
        """The first new line of `stream` matching `pattern` (a regex), or fail with what came."""
        lines = self.streams[stream]
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                break
            self.seen.append(line)
            if re.search(pattern, line):
                return line
        self.stop()
        raise AssertionError(f"no {stream} line matching {pattern!r} within {timeout}s; "
                             f"saw {self.seen!r}; stderr: {self._drain('stderr')!r}")

    def _drain(self, stream: str) -> str:
        lines = self.streams[stream]
        rest = []
        while not lines.empty():
            rest.append(lines.get())
        return "\n".join(rest)

    def finish(self, timeout: float = 15) -> tuple[int, str]:
        """Wait for the process to end by itself: (returncode, the stdout not yet read)."""
        self.process.wait(timeout)
        time.sleep(0.1)  # let the pump threads drain the last lines
        return self.process.returncode, self._drain("stdout")

    def stop(self) -> None:
        """Kill this process (ours, by its handle) if it still runs."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(5)


def parse_table(text: str) -> list[dict[str, str]]:
    """kubectl's column output as rows of {header: cell}, by the headers' positions.

    kubectl pads columns with spaces and leaves empty cells blank, so cells are cut at the
    offsets where the headers start rather than split on whitespace.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0]
    starts = [m.start() for m in re.finditer(r"(?:(?<=\s\s)|^)\S", header)]
    names = [header[a:b].strip() for a, b in zip(starts, starts[1:] + [len(header) + 999])]
    rows = []
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, starts[1:] + [len(line) + 999])]
        rows.append(dict(zip(names, cells)))
    return rows


def header_of(text: str) -> list[str]:
    """The column names of kubectl's table output, as kubectl prints them."""
    return re.split(r"\s{2,}", text.splitlines()[0].strip())


def render_manifest(name: str, tmp_path: Path, **values: str) -> Path:
    """`manifests/<name>` with `$placeholders` filled, written where kubectl can read it."""
    text = Template((MANIFESTS / name).read_text()).substitute(values)
    target = tmp_path / name
    target.write_text(text)
    return target


def _release_and_delete(server: ApiServer, name: str) -> None:
    with server.client() as api:
        base = f"/api/v1/namespaces/{name}/persistentvolumeclaims"
        for item in api.get(base).json().get("items", []):
            if item["metadata"].get("finalizers"):
                api.patch(f"{base}/{item['metadata']['name']}",
                          json={"metadata": {"finalizers": None}},
                          headers={"content-type": "application/merge-patch+json"})
        api.delete(f"/api/v1/namespaces/{name}")


@contextlib.contextmanager
def fresh_namespace(server: ApiServer) -> Iterator[str]:
    """A new namespace on `server`, released and deleted afterwards."""
    name = f"c-{uuid.uuid4().hex[:10]}"
    with server.client() as api:
        response = api.post("/api/v1/namespaces", json={
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        assert response.status_code == 201, response.text
    try:
        yield name
    finally:
        _release_and_delete(server, name)


@pytest.fixture()
def ns(server: ApiServer) -> Iterator[str]:
    """A fresh namespace on each store's server."""
    with fresh_namespace(server) as name:
        yield name


@pytest.fixture()
def sqlite_ns(sqlite_server: ApiServer) -> Iterator[str]:
    """A fresh namespace on the SQLite server only (for the slower tests)."""
    with fresh_namespace(sqlite_server) as name:
        yield name


def _require_kubectl() -> None:
    require_real(kubectl_available(), "kubectl is not installed")


@pytest.fixture()
def kubectl(server: ApiServer, ns: str) -> Kubectl:
    """kubectl in a fresh namespace, on each store."""
    _require_kubectl()
    return Kubectl(server, ns)


@pytest.fixture()
def sqlite_kubectl(sqlite_server: ApiServer, sqlite_ns: str) -> Kubectl:
    """kubectl in a fresh namespace, on the SQLite server only."""
    _require_kubectl()
    return Kubectl(sqlite_server, sqlite_ns)


def python_client(server: ApiServer) -> Any:
    """A `kubernetes.client.ApiClient` configured from the server's kubeconfig file."""
    from kubernetes import config

    return config.new_client_from_config(config_file=str(server.kubeconfig))


@pytest.fixture()
def api_client(server: ApiServer) -> Iterator[Any]:
    client = python_client(server)
    yield client
    client.close()


@pytest.fixture()
def core_v1(api_client: Any) -> Any:
    """The official client's CoreV1Api, as the admin, on each store."""
    from kubernetes import client

    return client.CoreV1Api(api_client)


@pytest.fixture()
def sqlite_core_v1(sqlite_server: ApiServer) -> Iterator[Any]:
    """The official client's CoreV1Api on the SQLite server only."""
    from kubernetes import client

    api_client = python_client(sqlite_server)
    yield client.CoreV1Api(api_client)
    api_client.close()
