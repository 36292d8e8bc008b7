"""The kubelet's configuration, validated once at start into a frozen value."""

from __future__ import annotations

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
    nfs_mounter: nfs.Preference = "auto"  # --nfs-mounter: kernel when available, else FUSE
    nfs_mount_defaults: tuple[str, ...] = ()  # --nfs-mount-defaults, as nfsmount.conf's

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
