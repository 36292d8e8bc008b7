"""The apiserver's configuration, validated once into a frozen value at start."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    """A setting that cannot work; the message names the setting."""


@dataclass(frozen=True)
class ServerConfig:
    """Everything the apiserver needs to start; see `storagelab apiserver --help`."""

    data_dir: Path
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 6443
    tls: bool = True
    hostnames: tuple[str, ...] = ()
    encryption_config: Path | None = None
    token_auth_file: Path | None = None
    authorization: bool = True
    compact_every: float = 60.0
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"port: {self.port} is not a TCP port (1-65535)")
        if self.encryption_config is not None and not self.encryption_config.is_file():
            raise ConfigError(f"encryption-provider-config: {self.encryption_config} "
                              f"does not exist")
        if self.token_auth_file is not None and not self.token_auth_file.is_file():
            raise ConfigError(f"token-auth-file: {self.token_auth_file} does not exist")

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'state.db'}"

    @property
    def pki_dir(self) -> Path:
        return self.data_dir / "pki"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"{self.scheme}://{host}:{self.port}"
