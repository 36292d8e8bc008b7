"""What each `storagelab` subcommand does, apart from parsing its arguments."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from apiserver import config, kubeconfig, pki, server


class UserError(Exception):
    """A mistake the user can fix; printed without a traceback."""


def server_config(args: argparse.Namespace) -> config.ServerConfig:
    try:
        return config.ServerConfig(
            data_dir=args.data_dir.resolve(), database_url=args.database_url,
            host=args.host, port=args.port, tls=not args.insecure_http,
            hostnames=tuple(args.hostname),
            encryption_config=args.encryption_provider_config,
            token_auth_file=args.token_auth_file)
    except config.ConfigError as e:
        raise UserError(str(e)) from e


def run(args: argparse.Namespace) -> int:
    handler = {"up": up, "apiserver": apiserver, "kubeconfig": print_kubeconfig,
               "secrets": secrets, "kubelet": kubelet, "images": images,
               "controllers": controllers}[args.command]
    return handler(args)


def apiserver(args: argparse.Namespace) -> int:
    server.serve(server_config(args))
    return 0


def up(args: argparse.Namespace) -> int:
    """The apiserver, the controllers and a kubelet, in the foreground until Ctrl-C."""
    from storagelab import supervisor
    cfg = server.prepare(server_config(args))
    print(f"storagelab: starting the control plane on {cfg.url} (state in {cfg.data_dir})",
          flush=True)
    return supervisor.run(cfg, _server_argv(args, cfg))


def _server_argv(args: argparse.Namespace, cfg: config.ServerConfig) -> list[str]:
    argv = ["--data-dir", str(cfg.data_dir), "--host", cfg.host, "--port", str(cfg.port)]
    if cfg.database_url:
        argv += ["--database-url", cfg.database_url]
    for name in cfg.hostnames:
        argv += ["--hostname", name]
    if cfg.encryption_config:
        argv += ["--encryption-provider-config", str(cfg.encryption_config)]
    if cfg.token_auth_file:
        argv += ["--token-auth-file", str(cfg.token_auth_file)]
    if not cfg.tls:
        argv.append("--insecure-http")
    return argv


def print_kubeconfig(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir.resolve()
    if not (data_dir / "pki" / "ca.crt").exists():
        raise UserError(f"no cluster in {data_dir}: run `make up` (or `storagelab up`) first")
    issued = pki.ensure_pki(data_dir / "pki")
    server_url = args.server or _server_of(data_dir)
    if args.user:
        doc = kubeconfig.user_kubeconfig(issued, server_url, args.user, args.group)
    else:
        doc = kubeconfig.admin_kubeconfig(issued, server_url)
    sys.stdout.write(kubeconfig.dump_kubeconfig(doc))
    return 0


def _server_of(data_dir: Path) -> str:
    import yaml
    path = data_dir / "kubeconfig"
    if path.exists():
        doc = yaml.safe_load(path.read_text())
        return str(doc["clusters"][0]["cluster"]["server"])
    return "https://127.0.0.1:6443"


def secrets(args: argparse.Namespace) -> int:
    from storagelab import secrets as secrets_module
    return secrets_module.run(args)


def kubelet(args: argparse.Namespace) -> int:
    from kubelet import agent
    from kubelet import config as kubelet_config
    data_dir: Path = args.data_dir.resolve()
    path = args.kubeconfig
    if path is None:
        path = data_dir / f"kubelet-{args.node}.kubeconfig"
        if not path.exists():
            if not (data_dir / "pki" / "ca.crt").exists():
                raise UserError(f"no cluster in {data_dir}: start the apiserver first, or "
                                f"pass --kubeconfig")
            try:
                path = server.write_node_kubeconfig(_saved_config(data_dir), args.node)
            except pki.PkiError as e:
                raise UserError(str(e)) from e
    root = (args.root_dir or data_dir / "kubelet" / args.node).resolve()
    cert, key, client_ca = _kubelet_serving_files(args, data_dir, path.resolve(), root)
    try:
        cfg = kubelet_config.KubeletConfig(node_name=args.node, root_dir=root,
                                           port=args.kubelet_port, node_ip=args.node_ip,
                                           tls_cert_file=cert, tls_private_key_file=key,
                                           client_ca_file=client_ca,
                                           kubeconfig=path.resolve(),
                                           backoff_initial_s=args.restart_backoff,
                                           nfs_mounter=args.nfs_mounter,
                                           local_paths=tuple(
                                               str(Path(p).resolve()) for p in args.local_path)
                                           or (str(data_dir / "local-volumes"),),
                                           nfs_mount_defaults=tuple(
                                               o for o in args.nfs_mount_defaults.split(",")
                                               if o))
    except kubelet_config.ConfigError as e:
        raise UserError(str(e)) from e
    agent.main(cfg)
    return 0


def _kubelet_serving_files(args: argparse.Namespace, data_dir: Path, kubeconfig_path: Path,
                           root: Path) -> tuple[Path | None, Path | None, Path | None]:
    """The kubelet's serving certificate, key and client CA: as given, or a certificate for
    the node's IP and name issued now from the cluster CA (the data dir's, else the one
    beside the kubeconfig), written under the root dir."""
    given = (args.tls_cert_file, args.tls_private_key_file, args.client_ca_file)
    if any(given):
        return given
    pki_dir = next((d for d in (data_dir / "pki", kubeconfig_path.parent / "pki")
                    if (d / "ca.key").exists()), None)
    if pki_dir is None:
        print(f"storagelab: no cluster CA in {data_dir / 'pki'}: kubectl logs and exec will "
              f"not reach node {args.node} (pass --data-dir or --tls-cert-file)",
              file=sys.stderr)
        return None, None, None
    try:
        issued = pki.ensure_pki(pki_dir)
        cert_pem, key_pem = pki.serving_cert_for(issued, [args.node_ip, args.node],
                                                 common_name=f"system:node:{args.node}")
    except (pki.PkiError, ValueError) as e:
        raise UserError(f"kubelet serving certificate: {e}") from e
    target = root / "pki"
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_private(target / "kubelet.key", key_pem)
    (target / "kubelet.crt").write_bytes(cert_pem)
    return target / "kubelet.crt", target / "kubelet.key", issued.ca.cert


def _write_private(path: Path, data: bytes) -> None:
    """Write a key readable by its owner only, from the first byte on."""
    import os
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def _saved_config(data_dir: Path) -> config.ServerConfig:
    from urllib.parse import urlparse
    url = urlparse(_server_of(data_dir))
    return config.ServerConfig(data_dir=data_dir, host=url.hostname or "127.0.0.1",
                               port=url.port or 6443)


def images(args: argparse.Namespace) -> int:
    from storagelab import images as images_module
    try:
        return images_module.run(args)
    except images_module.ImageBuildError as e:
        raise UserError(str(e)) from e


def controllers(args: argparse.Namespace) -> int:
    """The storage controllers until SIGTERM/Ctrl-C; exit 1 when leadership is lost."""
    import logging

    from storage import manager
    from storage.runtime import leaderelection
    for noisy in ("httpx2", "httpcore2"):  # one line per request drowns the controllers' logs
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from storage import provisioner
    try:
        provisioning = None
        if not args.no_provisioner:
            paths = provisioner.parse_local_paths(args.local_path) if args.local_path \
                else provisioner.default_local_paths(str(args.data_dir.resolve()))
            for base in {p for ps in paths.values() for p in ps}:
                Path(base).mkdir(parents=True, exist_ok=True)
            provisioning = provisioner.ProvisionerConfig(
                local_paths=paths, enable_nfs=not args.no_nfs_provisioner)
            provisioning.drivers()  # validate the configuration now, naming the flag
        cfg = manager.ManagerConfig(kubeconfig=args.kubeconfig.resolve(),
                                    leader_elect=args.leader_elect,
                                    lease_name=args.lease_name, resync=args.resync,
                                    provisioning=provisioning,
                                    run_scheduler=not args.no_scheduler)
    except (manager.ConfigError, provisioner.ConfigError) as e:
        raise UserError(str(e)) from e
    try:
        _run_until_signalled(manager.run(cfg))
    except leaderelection.LeadershipLost as e:
        print(f"storagelab: {e}", file=sys.stderr)
        return 1
    return 0


def _run_until_signalled(main: Coroutine[Any, Any, None]) -> None:
    """Run `main`; SIGTERM and SIGINT cancel it so that it can clean up (release leases)."""
    import asyncio
    import signal

    async def runner() -> None:
        task = asyncio.ensure_future(main)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(runner())
