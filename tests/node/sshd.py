"""A real OpenSSH server on a loopback port, for the SFTP path of the NFS provisioner.

Each server has its own directory with its config, an ed25519 host key and one authorized
client key (root may log in with it, or with a password, which root on the test machine does
not have: a wrong password is always wrong). `stop()` and `start()` keep the port and keys,
so a test can take the server down and bring the same one back.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port, require_real, terminate

SSHD = "/usr/sbin/sshd"


def require_sshd() -> None:
    require_real(os.path.exists(SSHD) and shutil.which("ssh-keygen") is not None,
                 "OpenSSH server missing (Debian openssh-server)")
    require_real(os.geteuid() == 0, "sshd with its own config needs root")


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True, timeout=30)


@dataclass
class Sshd:
    home: Path
    port: int
    private_key: str
    known_hosts: str
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, home: Path) -> Sshd:
        """Keys and config in `home` (not started)."""
        _keygen(home / "host_key")
        _keygen(home / "client_key")
        shutil.copy(home / "client_key.pub", home / "authorized_keys")
        port = free_port()
        (home / "sshd_config").write_text("\n".join([
            f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {home}/host_key",
            f"AuthorizedKeysFile {home}/authorized_keys", "PermitRootLogin yes",
            "PasswordAuthentication yes", "KbdInteractiveAuthentication no", "UsePAM no",
            "StrictModes no", f"PidFile {home}/sshd.pid", "Subsystem sftp internal-sftp",
            "LogLevel ERROR", ""]))
        host_key = (home / "host_key.pub").read_text().split()
        return cls(home, port, (home / "client_key").read_text(),
                   f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}")

    def secrets(self, **changes: str) -> dict[str, str]:
        """What the provisioner Secret holds for this server."""
        return {"username": "root", "privateKey": self.private_key,
                "knownHosts": self.known_hosts, **changes}

    def start(self) -> Sshd:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation dir
        log = self.home / "sshd.log"
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.home / "sshd_config")],
                stdout=out, stderr=out)
        self._wait_banner(log)
        return self

    def stop(self) -> None:
        """Stop the server (idempotent); the port refuses connections afterwards."""
        process, self.process = self.process, None
        terminate(process)

    def _wait_banner(self, log: Path) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"sshd not ready: {log.read_text()}")
