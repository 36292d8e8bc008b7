"""Encryption at rest, proven on the bytes: the raw SQLite files (WAL included) and the raw
PostgreSQL rows and WAL segments never hold a Secret's value in clear; a damaged value or a
wrong key fails that one object with a clear error; a bad configuration stops the start and
changes nothing; a full rotation with `storagelab secrets rotate` keeps every Secret
readable at every step.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from apiserver import encryption
from storagelab import cli
from storagelab import secrets as secrets_cli
from tests.conftest import ApiServer, create_namespace, fresh_postgres_database, postgres_url
from tests.support import uniq

PREFIX_KEY1 = b"k8s:enc:secretbox:v1:key1:"


# --- helpers ------------------------------------------------------------------------------

def secret(name: str, value: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "data": {"password": base64.b64encode(value.encode()).decode()},
            "stringData": {"token": value + "-token"}}


def new_namespace(api: httpx.Client) -> str:
    return create_namespace(api, uniq("enc"))


def create_secret(api: httpx.Client, ns: str, name: str, value: str) -> None:
    response = api.post(f"/api/v1/namespaces/{ns}/secrets", json=secret(name, value))
    assert response.status_code == 201, response.text


def read_value(api: httpx.Client, ns: str, name: str) -> str:
    response = api.get(f"/api/v1/namespaces/{ns}/secrets/{name}")
    assert response.status_code == 200, response.text
    return base64.b64decode(response.json()["data"]["password"]).decode()


def forms(value: str) -> list[bytes]:
    """Every spelling of a value that could leak: raw, base64 (as in `data`), JSON-escaped."""
    raw = value.encode()
    return [raw, base64.b64encode(raw), base64.b64encode(raw)[:-4], raw.hex().encode()]


def engine_of(server: ApiServer) -> sa.Engine:
    return sa.create_engine(server.database_url or f"sqlite:///{server.data_dir / 'state.db'}")


def stored_row(server: ApiServer, key: str) -> tuple[int, bytes]:
    engine = engine_of(server)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT id, value FROM kine WHERE name = :k "
                                   "ORDER BY id DESC LIMIT 1"), {"k": key}).one()
    engine.dispose()
    return int(row.id), bytes(row.value)


def overwrite_row(server: ApiServer, revision: int, value: bytes) -> None:
    engine = engine_of(server)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE kine SET value = :v WHERE id = :id"),
                     {"v": value, "id": revision})
    engine.dispose()


def secrets_cmd(server: ApiServer, action: str, monkeypatch: pytest.MonkeyPatch,
                capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`storagelab secrets ACTION` in this process, as a user runs it beside the server."""
    if server.database_url:
        monkeypatch.setenv(secrets_cli.DATABASE_URL_ENV, server.database_url)
    capsys.readouterr()
    code = cli.main(["secrets", action, "--data-dir", str(server.data_dir)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def restart(server: ApiServer) -> None:
    """As after a crash: every acknowledged write must be there (and it is quicker)."""
    server.kill()
    server.start()


def config_of(server: ApiServer) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(
        (server.data_dir / "encryption-config.yaml").read_text())
    return document


def write_config(server: ApiServer, config: dict[str, Any]) -> None:
    encryption.write_encryption_config(server.data_dir / "encryption-config.yaml", config)


def key_names(server: ApiServer) -> list[str]:
    keys = config_of(server)["resources"][0]["providers"][0]["secretbox"]["keys"]
    return [k["name"] for k in keys]


def pg_wal_files() -> list[Path]:
    """PostgreSQL's WAL segments, when this user may read them (root on the CI machine)."""
    url = postgres_url()
    assert url is not None
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            directory = Path(conn.execute(sa.text("SHOW data_directory")).scalar_one())
            conn.execute(sa.text("CHECKPOINT"))
    finally:
        engine.dispose()
    try:
        return sorted(p for p in (directory / "pg_wal").iterdir() if p.is_file())
    except OSError:
        return []


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[ApiServer]:
    """A server of this module's own: these tests damage rows, swap keys and restart it."""
    url = fresh_postgres_database() if request.param == "postgres" else ""
    server = ApiServer(tmp_path_factory.mktemp(f"enc-{request.param}"), url).start()
    yield server
    server.stop()


# --- no plaintext anywhere ----------------------------------------------------------------

def test_sqlite_files_wal_included_hold_no_secret_value(tmp_path: Path) -> None:
    server = ApiServer(tmp_path / "sqlite").start()
    value = f"sqlite-pw-{uuid.uuid4().hex}"
    try:
        with server.client() as api:
            ns = new_namespace(api)
            create_secret(api, ns, "db", value)
            updated = secret("db", value + "-v2")
            assert api.put(f"/api/v1/namespaces/{ns}/secrets/db", json=updated
                           ).status_code == 200
            assert read_value(api, ns, "db") == value + "-v2"
        files = sorted(server.data_dir.glob("state.db*"))
        assert {f.name for f in files} >= {"state.db", "state.db-wal"}
        raw = b"".join(f.read_bytes() for f in files)
    finally:
        server.stop()
    raw += b"".join(f.read_bytes() for f in sorted(server.data_dir.glob("state.db*")))
    assert f"/registry/secrets/{ns}/db".encode() in raw  # the scan does see the rows
    assert PREFIX_KEY1 in raw
    for leaked in forms(value):
        assert leaked not in raw


def test_postgresql_rows_and_wal_hold_no_secret_value(tmp_path: Path) -> None:
    server = ApiServer(tmp_path / "pg", fresh_postgres_database()).start()
    value = f"pg-pw-{uuid.uuid4().hex}"
    try:
        with server.client() as api:
            ns = new_namespace(api)
            create_secret(api, ns, "db", value)
            assert read_value(api, ns, "db") == value
        engine = engine_of(server)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT name, value FROM kine")).all()
        engine.dispose()
    finally:
        server.stop()
    secret_rows = [bytes(r.value) for r in rows if r.name == f"/registry/secrets/{ns}/db"]
    assert secret_rows and all(v.startswith(PREFIX_KEY1) for v in secret_rows)
    everything = b"".join(bytes(r.value) + r.name.encode() for r in rows)
    for leaked in forms(value):
        assert leaked not in everything
    wal = b"".join(p.read_bytes() for p in pg_wal_files())
    if wal:
        assert b"/registry/secrets/" + ns.encode() in wal  # the scan does see our writes
        for leaked in forms(value):
            assert leaked not in wal


# --- one damaged object, one wrong key ----------------------------------------------------

def test_flipped_byte_fails_that_secret_only(lab: ApiServer, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    with lab.client() as api:
        ns = new_namespace(api)
        create_secret(api, ns, "good", "good-value")
        create_secret(api, ns, "bad", "bad-value")
        key = f"/registry/secrets/{ns}/bad"
        revision, original = stored_row(lab, key)
        flipped = bytearray(original)
        flipped[len(PREFIX_KEY1) + 30] ^= 0x01
        overwrite_row(lab, revision, bytes(flipped))
        try:
            broken = api.get(f"/api/v1/namespaces/{ns}/secrets/bad")
            assert broken.status_code == 500
            assert broken.json()["reason"] == "InternalError"
            message = broken.json()["message"]
            assert f"failed to decrypt {key}" in message and 'secretbox key "key1"' in message
            assert "bad-value" not in broken.text
            assert read_value(api, ns, "good") == "good-value"
            listed = api.get(f"/api/v1/namespaces/{ns}/secrets")
            assert listed.status_code == 500 and key in listed.json()["message"]
            assert api.get("/readyz").status_code == 200
            code, out, _ = secrets_cmd(lab, "status", monkeypatch, capsys)
            assert code == 1
            assert f"{ns}   bad    secretbox:key1   unreadable" in out
            assert f"error: {ns}/bad: failed to decrypt {key}" in out
        finally:
            overwrite_row(lab, revision, original)
        assert read_value(api, ns, "bad") == "bad-value"


@pytest.mark.parametrize("lab", ["sqlite"], indirect=True)  # store-independent
def test_wrong_key_fails_secrets_with_clear_error(lab: ApiServer) -> None:
    good = config_of(lab)
    with lab.client() as api:
        ns = new_namespace(api)
        create_secret(api, ns, "s", "kept")
    wrong = encryption.default_config()  # same key name, other bytes
    write_config(lab, wrong)
    restart(lab)
    try:
        with lab.client() as api:
            failed = api.get(f"/api/v1/namespaces/{ns}/secrets/s")
            assert failed.status_code == 500
            assert f"failed to decrypt /registry/secrets/{ns}/s" in failed.json()["message"]
            assert "kept" not in failed.text
            assert api.get(f"/api/v1/namespaces/{ns}").status_code == 200
    finally:
        write_config(lab, good)
        restart(lab)
    with lab.client() as api:
        assert read_value(api, ns, "s") == "kept"


@pytest.mark.parametrize("lab", ["sqlite"], indirect=True)  # store-independent
def test_plaintext_is_read_only_where_identity_is_configured(
        lab: ApiServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    good = config_of(lab)
    keyed = good["resources"][0]["providers"][0]
    # A cluster that used to store Secrets in clear (identity first).
    write_config(lab, {**good, "resources": [{"resources": ["secrets"],
                                              "providers": [{"identity": {}}, keyed]}]})
    restart(lab)
    with lab.client() as api:
        ns = new_namespace(api)
        create_secret(api, ns, "legacy", "was-plain")
    assert stored_row(lab, f"/registry/secrets/{ns}/legacy")[1].startswith(b"{")
    try:
        write_config(lab, good)  # encryption only: plaintext must not be accepted
        restart(lab)
        with lab.client() as api:
            refused = api.get(f"/api/v1/namespaces/{ns}/secrets/legacy")
            assert refused.status_code == 500
            assert "not encrypted and no identity provider" in refused.json()["message"]
        write_config(lab, {**good, "resources": [{"resources": ["secrets"],
                                                  "providers": [keyed, {"identity": {}}]}]})
        restart(lab)
        with lab.client() as api:
            assert read_value(api, ns, "legacy") == "was-plain"
        code, out, _ = secrets_cmd(lab, "status", monkeypatch, capsys)
        assert code == 0 and f"{ns}   legacy   identity         stale" in out
        code, out, _ = secrets_cmd(lab, "rewrite", monkeypatch, capsys)
        assert code == 0, out
        assert stored_row(lab, f"/registry/secrets/{ns}/legacy")[1].startswith(PREFIX_KEY1)
    finally:
        write_config(lab, good)
        restart(lab)
    with lab.client() as api:
        assert read_value(api, ns, "legacy") == "was-plain"


# --- bad configuration --------------------------------------------------------------------

def _config_with(provider: Any) -> dict[str, Any]:
    return {"apiVersion": encryption.API_VERSION, "kind": encryption.KIND,
            "resources": [{"resources": ["secrets"], "providers": [provider]}]}


BAD_CONFIGS = [
    ("short key", _config_with({"secretbox": {"keys": [{"name": "k", "secret": "c2hvcnQ="}]}}),
     ("resources[0].providers[0].secretbox.keys[0].secret: Invalid value: \"REDACTED\": "
      "secret is not of the expected length, got 5, expected one of [32]")),
    ("aes key of 20 bytes", _config_with({"aesgcm": {"keys": [{
        "name": "k", "secret": base64.b64encode(b"x" * 20).decode()}]}}),
     ("resources[0].providers[0].aesgcm.keys[0].secret: Invalid value: \"REDACTED\": "
      "secret is not of the expected length, got 20, expected one of [16 24 32]")),
    ("not base64", _config_with({"aescbc": {"keys": [{"name": "k", "secret": "%%%"}]}}),
     ("resources[0].providers[0].aescbc.keys[0].secret: Invalid value: \"REDACTED\": "
      "secrets must be base64 encoded")),
    ("no keys", _config_with({"secretbox": {"keys": []}}),
     "resources[0].providers[0].secretbox.keys: Required value"),
    ("unknown provider", _config_with({"rot13": {}}),
     'resources[0].providers[0]: unknown field "rot13"'),
    ("wrong kind", {**_config_with({"identity": {}}), "kind": "EncryptionConfig"},
     'kind: Invalid value: "EncryptionConfig"'),
]


@pytest.mark.parametrize("label,config,expected", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_malformed_config_refuses_to_start_naming_the_field(
        tmp_path: Path, label: str, config: dict[str, Any], expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    data_dir = tmp_path / "data"
    with pytest.raises(SystemExit) as refused:
        cli.main(["apiserver", "--data-dir", str(data_dir), "--port", "1",
                  "--encryption-provider-config", str(path)])
    message = str(refused.value.code)
    assert message.startswith("storagelab: apiserver refuses to start: ")
    assert expected in message
    assert not data_dir.exists()  # nothing was created: no store, no PKI


def test_malformed_config_stops_the_real_process(tmp_path: Path) -> None:
    _label, config, expected = BAD_CONFIGS[0]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    server = ApiServer(tmp_path / "data", extra_args=("--encryption-provider-config", str(path)))
    with pytest.raises(RuntimeError, match="apiserver exited"):
        server.start()
    assert server.process is not None and server.process.returncode == 1
    log = server.log.read_text()
    assert "apiserver refuses to start" in log and expected in log, log
    assert "Traceback" not in log
    assert not (server.data_dir / "state.db").exists()


def test_bad_edit_of_existing_config_refuses_start_and_changes_nothing(tmp_path: Path) -> None:
    server = ApiServer(tmp_path / "data").start()
    with server.client() as api:
        ns = new_namespace(api)
        create_secret(api, ns, "s", "survives")
    server.kill()
    config = server.data_dir / "encryption-config.yaml"
    good = config.read_text()
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
              for p in server.data_dir.glob("state.db*")}
    config.write_text(good.replace("secret: ", "secret: AAAA", 1))  # 35 bytes: wrong length
    with pytest.raises(RuntimeError, match="apiserver exited"):
        server.start()
    assert "secretbox.keys[0].secret" in server.log.read_text()
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
             for p in server.data_dir.glob("state.db*")}
    assert after == before
    config.write_text(good)
    server.start()
    try:
        with server.client() as api:
            assert read_value(api, ns, "s") == "survives"
    finally:
        server.kill()


# --- rotation -----------------------------------------------------------------------------

def test_full_rotation_keeps_every_secret_readable(
        lab: ApiServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    with lab.client() as api:
        spaces = [new_namespace(api), new_namespace(api)]
        expected = {(ns, f"s{i}"): f"{ns}-value-{i}" for ns in spaces for i in range(3)}
        for (ns, name), value in expected.items():
            create_secret(api, ns, name, value)
    old = key_names(lab)[0]

    def all_readable() -> None:
        with lab.client() as client:
            for (ns, name), value in expected.items():
                assert read_value(client, ns, name) == value

    def rotate() -> str:
        code, out, err = secrets_cmd(lab, "rotate", monkeypatch, capsys)
        assert code == 0, err
        all_readable()
        return out

    assert "step 1 of 3" in rotate()
    new = key_names(lab)[1]
    assert key_names(lab)[0] == old
    restart(lab)
    all_readable()
    assert "step 2 of 3" in rotate()
    assert key_names(lab) == [new, old]
    # The apiserver was not restarted: it still writes with the old key, so the rewrite
    # cannot move anything and the old key must stay.
    code, _, err = secrets_cmd(lab, "rotate", monkeypatch, capsys)
    assert code == 2 and "Was the apiserver restarted after step 2?" in err
    assert key_names(lab) == [new, old]
    all_readable()
    restart(lab)
    all_readable()
    with lab.client() as api:  # written mid-rotation, under the new key
        create_secret(api, spaces[0], "late", "late-value")
        expected[(spaces[0], "late")] = "late-value"
    code, out, _ = secrets_cmd(lab, "status", monkeypatch, capsys)
    assert code == 0 and f"secretbox:{old}   stale" in out
    assert "step 3 of 3" in rotate()
    assert key_names(lab) == [new]
    restart(lab)
    all_readable()
    code, out, _ = secrets_cmd(lab, "status", monkeypatch, capsys)
    assert code == 0
    for ns, name in expected:
        assert stored_row(lab, f"/registry/secrets/{ns}/{name}")[1].startswith(
            f"k8s:enc:secretbox:v1:{new}:".encode())
    assert f"secretbox:{old}" not in out
