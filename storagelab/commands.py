"""What each `storagelab` subcommand does, apart from parsing its arguments."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
               "secrets": secrets}[args.command]
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
