"""`storagelab up`: the embedded cluster as child processes, started in order, stopped together.

The apiserver starts first; once it answers `/readyz`, the controller-manager and (when a
Docker engine is reachable) one kubelet named after this host join it, each with its own
identity. Every child logs to a file under the data dir. Ctrl-C, or any child dying, stops
the rest; nothing is left running.
"""

from __future__ import annotations

import dataclasses
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from apiserver import config, server


@dataclasses.dataclass
class Child:
    name: str
    args: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.args, stdout=out, stderr=out,
                                            start_new_session=True)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "storagelab.cli", *args]


def wait_ready(cfg: config.ServerConfig, child: Child, timeout: float = 60.0) -> None:
    context = ssl.create_default_context(cafile=str(cfg.pki_dir / "ca.crt")) if cfg.tls else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"the apiserver exited; see {child.log}")
        try:
            with urllib.request.urlopen(f"{cfg.url}/readyz", context=context, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the apiserver did not become ready in {timeout:.0f}s; see {child.log}")


def docker_available() -> bool:
    try:
        import docker  # type: ignore[import-untyped]
        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means "no Docker here"
        return False


def has_command(name: str) -> bool:
    """Whether this build of the CLI has subcommand `name` (components land one by one)."""
    import argparse

    from storagelab import cli
    for action in cli.build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return name in action.choices
    return False


def components(cfg: config.ServerConfig, server_args: Sequence[str]) -> list[Child]:
    logs = cfg.data_dir / "logs"
    children = [Child("apiserver", _cli("apiserver", *server_args), logs / "apiserver.log")]
    if has_command("controllers"):
        children.append(Child("controllers", _cli(
            "controllers", "--kubeconfig", str(cfg.data_dir / "controller-manager.kubeconfig"),
            "--data-dir", str(cfg.data_dir)), logs / "controllers.log"))
    return children


def kubelet_child(cfg: config.ServerConfig) -> Child | None:
    if not has_command("kubelet"):
        return None
    if not docker_available():
        print("storagelab: no Docker engine reachable: running without a kubelet "
              "(pods stay Pending). Start dockerd and run `make up` again.")
        return None
    _ensure_busybox()
    node = socket.gethostname().lower()
    kubeconfig = server.write_node_kubeconfig(cfg, node)
    return Child("kubelet", _cli("kubelet", "--node", node, "--kubeconfig", str(kubeconfig),
                                 "--data-dir", str(cfg.data_dir),
                                 "--root-dir", str(cfg.data_dir / "kubelet")),
                 cfg.data_dir / "logs" / "kubelet.log")


def _stop_on_sigterm() -> None:
    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def _ensure_busybox() -> None:
    """`image: busybox` must run offline: build it from busybox-static when missing."""
    import docker

    from storagelab import images
    try:
        docker.from_env(timeout=10).images.get("busybox:latest")
        return
    except docker.errors.ImageNotFound:
        pass
    try:
        print("storagelab: building busybox:latest locally from busybox-static", flush=True)
        images.build_busybox()
    except images.ImageBuildError as e:
        print(f"storagelab: could not build busybox ({e}); pods using it will fail to start")


def run(cfg: config.ServerConfig, server_args: Sequence[str]) -> int:
    children = components(cfg, server_args)
    _stop_on_sigterm()
    try:
        children[0].start()
        wait_ready(cfg, children[0])
        for child in children[1:]:
            child.start()
        kubelet = kubelet_child(cfg)
        if kubelet is not None:
            kubelet.start()
            children.append(kubelet)
        _ensure_default_class(cfg)
        _announce(cfg, children)
        while all(c.alive() for c in children):
            time.sleep(0.5)
        dead = [c for c in children if not c.alive()]
        print(f"storagelab: {dead[0].name} exited; see {dead[0].log}. Stopping.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstoragelab: stopping")
        return 0
    finally:
        for child in reversed(children):
            child.stop()


def _ensure_default_class(cfg: config.ServerConfig) -> None:
    """`standard` on the local driver, so a claim with no class just works (like kind)."""
    import asyncio
    import logging

    from storage import defaults_sc
    from storage.runtime import kube as kube_api
    logging.getLogger("httpx2").setLevel(logging.WARNING)

    async def ensure() -> None:
        kube = kube_api.Kube.from_kubeconfig(str(cfg.data_dir / "kubeconfig"))
        try:
            await defaults_sc.ensure_default_storage_class(kube)
        finally:
            await kube.close()
    try:
        asyncio.run(ensure())
    except Exception as e:  # noqa: BLE001 - the cluster runs without it; say so
        print(f"storagelab: could not create the default StorageClass: {e}")


def _announce(cfg: config.ServerConfig, children: list[Child]) -> None:
    kubeconfig = cfg.data_dir / "kubeconfig"
    print(f"storagelab: running {', '.join(c.name for c in children)} "
          f"(logs in {cfg.data_dir / 'logs'})")
    print(f"storagelab: API at {cfg.url}; admin kubeconfig: {kubeconfig}")
    print(f"storagelab: try:  export KUBECONFIG={kubeconfig}; kubectl get nodes,ns")
    print("storagelab: press Ctrl-C to stop", flush=True)
