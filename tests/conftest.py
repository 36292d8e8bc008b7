"""Shared fixtures: real apiservers (SQLite and PostgreSQL) started as processes, and what a
test talks to them with: `api` (the admin client) and `ns` (a fresh namespace). A module that
runs controllers in-process overrides `controllers`, so `api` waits for them; the helpers those
modules share (waiting, building claims, the in-process stacks) are in tests/support.py.

Tests that need a real part (PostgreSQL, kubectl, Docker, FUSE) call `require_real`, which
skips with the reason on a laptop without it and fails under STORAGELAB_REQUIRE_REAL=1, as
CI sets it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

REQUIRE_REAL = os.environ.get("STORAGELAB_REQUIRE_REAL") == "1"
REPO = Path(__file__).resolve().parent.parent


def require_real(available: bool, reason: str) -> None:
    """Skip (or, in CI, fail) a test whose real dependency is missing."""
    if available:
        return
    if REQUIRE_REAL:
        pytest.fail(f"required for this test but missing: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_url() -> str | None:
    return os.environ.get("STORAGELAB_TEST_PG") or None


def fresh_postgres_database() -> str:
    """A new empty database on the test PostgreSQL; returns its SQLAlchemy URL."""
    import sqlalchemy as sa

    base = postgres_url()
    require_real(base is not None, "PostgreSQL (STORAGELAB_TEST_PG) is not configured")
    assert base is not None
    name = f"storagelab_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    head, _, query = base.partition("?")
    head = head.rsplit("/", 1)[0]
    return f"{head}/{name}" + (f"?{query}" if query else "")


class ApiServer:
    """A real `storagelab apiserver` process with its own data dir and port."""

    def __init__(self, data_dir: Path, database_url: str = "", *, tls: bool = True,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.tls = tls
        self.port = free_port()
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "apiserver.log"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    @property
    def pki(self) -> Path:
        return self.data_dir / "pki"

    def start(self) -> ApiServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "storagelab.cli", "apiserver", "--data-dir",
                str(self.data_dir), "--port", str(self.port), *self.extra_args]
        if self.database_url:
            args += ["--database-url", self.database_url]
        if not self.tls:
            args.append("--insecure-http")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=log)
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"apiserver exited: {self.log.read_text()[-3000:]}")
            try:
                if self.client().get("/readyz").status_code == 200:
                    return
            except (httpx.HTTPError, OSError):
                pass  # not listening yet, or certificates not written yet
            time.sleep(0.1)
        raise RuntimeError(f"apiserver not ready: {self.log.read_text()[-3000:]}")

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client authenticated as the admin (system:masters)."""
        if not self.tls:
            return httpx.Client(base_url=self.url, timeout=30, **kwargs)
        import ssl
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        cert = kwargs.pop("cert", (str(self.pki / "admin.crt"), str(self.pki / "admin.key")))
        if cert:
            context.load_cert_chain(*cert)
        return httpx.Client(base_url=self.url, verify=context, timeout=30, **kwargs)

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), *args],
                                capture_output=True, text=True, input=input, timeout=timeout,
                                check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        terminate(self.process)


def terminate(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL after 10 s: how every test stops the processes it started."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = ApiServer(tmp_path_factory.mktemp("apiserver-sqlite")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = ApiServer(tmp_path_factory.mktemp("apiserver-pg"), fresh_postgres_database()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest) -> ApiServer:
    """The same tests against each store."""
    fixture = "sqlite_server" if request.param == "sqlite" else "postgres_server"
    result: ApiServer = request.getfixturevalue(fixture)
    return result


def create_namespace(api: httpx.Client, name: str) -> str:
    response = api.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace",
                                                    "metadata": {"name": name}})
    assert response.status_code == 201, response.text
    return name


@pytest.fixture()
def controllers() -> None:
    """What must run before a test talks to the apiserver: nothing here. A module that runs
    controllers in-process overrides this with its own (module-scoped) fixture."""


@pytest.fixture()
def api(server: ApiServer, controllers: object) -> Iterator[httpx.Client]:
    """The admin client of `server`, once the module's `controllers` run."""
    with server.client() as client:
        yield client


@pytest.fixture()
def namespace(api: httpx.Client) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards."""
    name = create_namespace(api, f"t-{uuid.uuid4().hex[:10]}")
    yield name
    api.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The local driver's base directory for node-a and node-b, a new pair per module."""
    root = tmp_path_factory.mktemp("local-volumes")
    return {"node-a": root / "node-a", "node-b": root / "node-b"}


@pytest.fixture()
def ns(api: httpx.Client) -> str:
    """A fresh namespace per test, left in place with what the test made in it (the module's
    own server stops with the module)."""
    return create_namespace(api, f"t-{uuid.uuid4().hex[:8]}")


def kubectl_available() -> bool:
    return shutil.which("kubectl") is not None


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real OpenSSH server on a loopback port (the NFS driver's SFTP path), one per module,
    for tests that do not stop it."""
    from tests.node.sshd import Sshd, require_sshd  # needs root and openssh-server
    require_sshd()
    server = Sshd.create(tmp_path_factory.mktemp("sshd")).start()
    try:
        yield server
    finally:
        server.stop()
