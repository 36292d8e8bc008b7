"""The kubelet's configuration, validated once at start into a frozen value."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from apimachinery import names
from kubelet.mounters import nfs


class ConfigError(ValueError):
    """A bad setting; the message names the field."""


@dataclass(frozen=True)
class KubeletConfig:
    node_name: str
    root_dir: Path
    kubeconfig: Path
    backoff_initial_s: float = 10.0  # Kubernetes' restart back-off: 10s doubling to 300s
    backoff_max_s: float = 300.0
    sync_period_s: float = 1.0
    # How often disk emptyDirs with a sizeLimit are measured (Kubernetes' eviction manager
    # looks every 10 s; a walk is cheap here and a runaway writer is stopped sooner).
    eviction_period_s: float = 2.0
    nfs_mounter: nfs.Preference = "auto"  # --nfs-mounter: kernel when available, else FUSE
    nfs_mount_defaults: tuple[str, ...] = ()  # --nfs-mount-defaults, as nfsmount.conf's
    # --local-path: the base paths of the storagelab.io/local driver on this node.
    local_paths: tuple[str, ...] = ()
    # The HTTPS server for logs and exec (--kubelet-port, --node-ip, TLS files); without the
    # files the kubelet runs pods but serves neither.
    port: int = 10250
    node_ip: str = "127.0.0.1"
    tls_cert_file: Path | None = None
    tls_private_key_file: Path | None = None
    client_ca_file: Path | None = None

    def __post_init__(self) -> None:
        problems = names.is_dns1123_subdomain(self.node_name)
        if problems:
            raise ConfigError(f"--node {self.node_name!r}: {'; '.join(problems)}")
        if not self.root_dir.is_absolute():
            raise ConfigError(f"--root-dir {self.root_dir}: must be an absolute path")
        if self.nfs_mounter not in ("auto", "kernel", "userspace"):
            raise ConfigError(f"--nfs-mounter {self.nfs_mounter!r}: must be auto, kernel or "
                              f"userspace")
        try:
            nfs.parse_options(self.nfs_mount_defaults)
        except nfs.InvalidMountOption as e:
            raise ConfigError(f"--nfs-mount-defaults: {e}") from e
        if not self.kubeconfig.exists():
            raise ConfigError(f"--kubeconfig {self.kubeconfig}: no such file")
        self._check_serving()

    def _check_serving(self) -> None:
        if not 0 <= self.port < 65536:
            raise ConfigError(f"--kubelet-port {self.port}: not a TCP port (0-65535)")
        try:
            ipaddress.ip_address(self.node_ip)
        except ValueError as e:
            raise ConfigError(f"--node-ip {self.node_ip!r}: not an IP address") from e
        files = {"--tls-cert-file": self.tls_cert_file,
                 "--tls-private-key-file": self.tls_private_key_file,
                 "--client-ca-file": self.client_ca_file}
        given = {flag: path for flag, path in files.items() if path is not None}
        if given and len(given) != len(files):
            missing = sorted(set(files) - set(given))
            raise ConfigError(f"{', '.join(missing)}: needed with {', '.join(sorted(given))}")
        for flag, path in given.items():
            if not path.is_file():
                raise ConfigError(f"{flag} {path}: no such file")

    @property
    def serves(self) -> bool:
        """Whether the logs/exec server runs (it needs its certificate, key and client CA)."""
        return self.tls_cert_file is not None
