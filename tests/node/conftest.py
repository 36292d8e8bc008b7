"""Fixtures shared by the node tests: a real OpenSSH server for the NFS driver's SFTP path."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.node.sshd import Sshd, require_sshd


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """One running server per module, for tests that do not stop it."""
    require_sshd()
    server = Sshd.create(tmp_path_factory.mktemp("sshd")).start()
    try:
        yield server
    finally:
        server.stop()
