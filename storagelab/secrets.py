"""`storagelab secrets status|rewrite|rotate`: encryption at rest, run as Kubernetes documents.

Kubernetes has no single command for this; an administrator edits the EncryptionConfiguration,
restarts kube-apiserver and runs `kubectl get secrets -A -o json | kubectl replace -f -`. This
module does the same steps with checks between them. `rewrite` goes through the API (the
kubeconfig's user needs get, list and update on Secrets): each Secret is read and PUT back
unchanged, and the server re-encrypts it with the key that now comes first. `status` reads the
raw store beside the server (SQLite in the data dir, or `--database-url`), because only the
stored bytes say which key sealed a value and the API must never tell; it is an admin tool
for the machine that holds the keys anyway. `rotate` cannot restart an apiserver it did not
start, so it is resumable: each run performs the next step of Kubernetes' documented rotation
(add the new key second; make it first; rewrite every Secret and drop the old key), records
where it stands next to the configuration, and says which restart must come before the next
run. Before the old key is dropped, the raw store must show every Secret under the new key,
which also proves the apiserver was really restarted with it.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import ssl
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx
import sqlalchemy as sa
import yaml

from apiserver import encryption
from apiserver.store import log as store_log
from storagelab import commands

SECRETS_PREFIX = "/registry/secrets/"
DEFAULT_KUBECONFIG = Path(".storagelab") / "kubeconfig"
DATABASE_URL_ENV = "STORAGELAB_DATABASE_URL"
CONFIG_ENV = "STORAGELAB_ENCRYPTION_PROVIDER_CONFIG"
CONFLICT_RETRIES = 5

HELP = """\
status   which key seals each Secret (reads the store: <data dir>/state.db, or --database-url
         / $STORAGELAB_DATABASE_URL); exit 1 when a Secret cannot be decrypted.
rewrite  read every Secret through the API and PUT it back unchanged, so it is re-encrypted
         with the first key (kubectl get secrets -A -o json | kubectl replace -f -).
rotate   the next step of Kubernetes' key rotation; run it, restart the apiserver when told,
         run it again: 1) add a new key second, 2) make it first, 3) rewrite every Secret,
         check the store holds none under the old key, and drop the old key.
The EncryptionConfiguration is <data dir>/encryption-config.yaml unless
--encryption-provider-config (or $STORAGELAB_ENCRYPTION_PROVIDER_CONFIG) names another.
"""


class SecretsError(commands.UserError):
    """A step that cannot be done as asked; printed for the user, exit status 2."""


# --- where things are ---------------------------------------------------------------------

@dataclass(frozen=True)
class Paths:
    """The files and the store one cluster's secrets commands work on."""

    data_dir: Path
    config: Path
    database_url: str
    kubeconfig: Path

    @property
    def rotation_state(self) -> Path:
        return self.config.with_name(self.config.name + ".rotation.json")


def locate(args: argparse.Namespace) -> Paths:
    data_dir = Path(args.data_dir).resolve()
    config = getattr(args, "encryption_provider_config", None) or os.environ.get(CONFIG_ENV)
    database_url = getattr(args, "database_url", "") or os.environ.get(DATABASE_URL_ENV, "")
    kubeconfig = Path(getattr(args, "kubeconfig", None) or DEFAULT_KUBECONFIG)
    if kubeconfig == DEFAULT_KUBECONFIG:
        kubeconfig = data_dir / "kubeconfig"  # the default follows --data-dir
    return Paths(data_dir=data_dir,
                 config=Path(config) if config else data_dir / "encryption-config.yaml",
                 database_url=database_url, kubeconfig=kubeconfig)


def run(args: argparse.Namespace) -> int:
    """Entry point of `storagelab secrets ACTION`."""
    paths = locate(args)
    out = sys.stdout
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise here
    if args.action == "status":
        return print_status(status(paths), writer_label(load_config(paths.config)), out)
    if args.action == "rewrite":
        with ApiClient.from_kubeconfig(paths.kubeconfig) as client:
            result = rewrite(client)
        return print_rewrite(result, out)
    return rotate(paths, out)


# --- the configuration --------------------------------------------------------------------

def load_config(path: Path) -> dict[str, Any]:
    """The EncryptionConfiguration as a dict, validated as the server validates it."""
    if not path.is_file():
        raise SecretsError(f"no EncryptionConfiguration at {path}: start the cluster first, "
                           f"or pass the file the apiserver uses")
    try:
        encryption.load_encryption_config(path)
    except encryption.EncryptionConfigError as e:
        raise SecretsError(f"{path}: {e}") from e
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def secrets_entry(config: dict[str, Any]) -> dict[str, Any]:
    """The resources entry that applies to Secrets (exact name first, as the server picks)."""
    entries = config["resources"]
    for names in (("secrets",), ("*.",), ("*.*",)):
        for entry in entries:
            if any(n in names for n in entry["resources"]):
                return dict(entry)
    raise SecretsError("the EncryptionConfiguration does not cover secrets: they are stored "
                       "in plain text; add a resources entry for secrets first")


def first_provider(config: dict[str, Any]) -> tuple[str, list[dict[str, str]]]:
    """(provider kind, its keys) of the provider that encrypts Secrets now."""
    kind, body = next(iter(secrets_entry(config)["providers"][0].items()))
    if kind not in encryption.KEYED_PROVIDERS:
        raise SecretsError(f"Secrets are written by the {kind} provider, which has no key; "
                           f"put an aesgcm, aescbc or secretbox provider first")
    keys: list[dict[str, str]] = body["keys"]
    return kind, keys


def writer_label(config: dict[str, Any]) -> str:
    try:
        kind, keys = first_provider(config)
    except SecretsError:
        return "identity"
    return f"{kind}:{keys[0]['name']}"


# --- status: what the store holds ---------------------------------------------------------

@dataclass(frozen=True)
class SecretState:
    """One stored Secret: the key its value names and whether the configuration reads it."""

    namespace: str
    name: str
    key: str  # "secretbox:key1", or "identity" for plain text
    state: str  # "current", "stale" or "unreadable"
    detail: str = ""


def stored_label(value: bytes) -> str:
    """`provider:key name` from a value's `k8s:enc:<provider>:v1:<name>:` prefix."""
    if not value.startswith(encryption.ENCRYPTED_PREFIX):
        return "identity"
    parts = value.split(b":", 5)
    if len(parts) < 6:
        return "unknown"
    return f"{parts[2].decode('utf-8', 'replace')}:{parts[4].decode('utf-8', 'replace')}"


def classify(transformer: encryption.ResourceTransformer, key: str,
             value: bytes) -> SecretState:
    namespace, _, name = key[len(SECRETS_PREFIX):].partition("/")
    label = stored_label(value)
    try:
        _plain, stale = transformer.decrypt(value, key.encode())
    except encryption.DecryptError as e:
        return SecretState(namespace, name, label, "unreadable", str(e))
    return SecretState(namespace, name, label, "stale" if stale else "current")


def stored_secrets(database_url: str) -> list[tuple[str, bytes]]:
    """(storage key, stored value) of every live Secret, read straight from the store."""
    kine = store_log.kine
    latest = (sa.select(sa.func.max(kine.c.id).label("id"))
              .where(kine.c.name >= SECRETS_PREFIX,
                     kine.c.name < store_log.prefix_end(SECRETS_PREFIX))
              .group_by(kine.c.name).subquery())
    query = (sa.select(kine.c.name, kine.c.value).join(latest, kine.c.id == latest.c.id)
             .where(kine.c.deleted == 0).order_by(kine.c.name))
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return [(str(r.name), bytes(r.value)) for r in conn.execute(query)]
    except sa.exc.SQLAlchemyError as e:
        raise SecretsError(f"cannot read the store at {_redacted(database_url)}: "
                           f"{getattr(e, 'orig', e)}") from e
    finally:
        engine.dispose()


def store_url(paths: Paths) -> str:
    if paths.database_url:
        return paths.database_url
    db = paths.data_dir / "state.db"
    if not db.is_file():
        raise SecretsError(f"no store at {db}: pass --database-url (or ${DATABASE_URL_ENV}) "
                           f"when the apiserver uses PostgreSQL")
    return f"sqlite:///{db}"


def status(paths: Paths) -> list[SecretState]:
    load_config(paths.config)  # a clear error when missing or malformed
    transformer = encryption.load_encryption_config(paths.config).for_resource("secrets")
    return [classify(transformer, key, value) for key, value in stored_secrets(store_url(paths))]


def print_status(states: Sequence[SecretState], writer: str, out: TextIO) -> int:
    rows = [("NAMESPACE", "NAME", "KEY", "STATE")]
    rows += [(s.namespace, s.name, s.key, s.state) for s in states]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    out.writelines("   ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n"
                   for row in rows)
    for s in states:
        if s.detail:
            out.write(f"error: {s.namespace}/{s.name}: {s.detail}\n")
    counts = {k: sum(1 for s in states if s.state == k)
              for k in ("current", "stale", "unreadable")}
    out.write(f"{len(states)} secrets: {counts['current']} under the writing key {writer}, "
              f"{counts['stale']} stale (run `storagelab secrets rewrite`), "
              f"{counts['unreadable']} unreadable\n")
    return 1 if counts["unreadable"] else 0


def _redacted(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    if parsed.password:
        netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
        return urllib.parse.urlunsplit(parsed._replace(netloc=netloc))
    return url


# --- rewrite: through the API -------------------------------------------------------------

class ApiClient:
    """Just enough of a kubeconfig-driven client for listing and replacing Secrets."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    @classmethod
    @contextmanager
    def from_kubeconfig(cls, path: Path) -> Iterator[ApiClient]:
        cluster, user = _current_context(path)
        headers = {"Accept": "application/json"}
        if user.get("token"):
            headers["Authorization"] = f"Bearer {user['token']}"
        with _ssl_context(cluster, user) as context, \
                httpx.Client(base_url=str(cluster["server"]), verify=context,
                             headers=headers, timeout=30) as http:
            yield cls(http)

    def get(self, path: str) -> httpx.Response:
        return self._call("GET", path)

    def put(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self._call("PUT", path, body)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None
              ) -> httpx.Response:
        try:
            return self.http.request(method, path, json=body)
        except httpx.HTTPError as e:
            raise SecretsError(f"cannot reach the apiserver at {self.http.base_url}: "
                               f"{e}") from e


def _current_context(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        doc = yaml.safe_load(path.read_text())
        context_name = doc["current-context"]
        context = _named(doc["contexts"], context_name)["context"]
        cluster = _named(doc["clusters"], context["cluster"])["cluster"]
        user = _named(doc["users"], context["user"])["user"]
    except (OSError, yaml.YAMLError, KeyError, TypeError, StopIteration) as e:
        raise SecretsError(f"cannot use kubeconfig {path}: {e!r}") from e
    return cluster, user


def _named(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(i for i in items if i.get("name") == name)


@contextmanager
def _ssl_context(cluster: dict[str, Any], user: dict[str, Any]) -> Iterator[ssl.SSLContext]:
    """Full verification against the kubeconfig's CA, with its client certificate if any."""
    context = ssl.create_default_context(cadata=_pem(cluster, "certificate-authority"))
    if cluster.get("insecure-skip-tls-verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if not (user.get("client-certificate-data") or user.get("client-certificate")):
        yield context
        return
    # ssl wants files for the key pair; they live 0600 in a private directory for a moment.
    with tempfile.TemporaryDirectory(prefix="storagelab-") as tmp:
        cert, key = Path(tmp) / "client.crt", Path(tmp) / "client.key"
        for file, field_name in ((cert, "client-certificate"), (key, "client-key")):
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(_pem(user, field_name) or "")
        context.load_cert_chain(cert, key)
        yield context


def _pem(section: dict[str, Any], field_name: str) -> str | None:
    if section.get(f"{field_name}-data"):
        return base64.b64decode(section[f"{field_name}-data"]).decode()
    if section.get(field_name):
        return Path(section[field_name]).read_text()
    return None


@dataclass(frozen=True)
class RewriteResult:
    rewritten: int
    failures: tuple[str, ...]


def rewrite(client: ApiClient) -> RewriteResult:
    """Read every Secret and PUT it back unchanged, namespace by namespace.

    One namespace whose list fails (a Secret that cannot be decrypted fails the whole list,
    as in Kubernetes) is reported and the others go on.
    """
    namespaces = _items(client.get("/api/v1/namespaces"), "namespaces")
    rewritten, failures = 0, []
    for ns in namespaces:
        namespace = ns["metadata"]["name"]
        response = client.get(f"/api/v1/namespaces/{namespace}/secrets")
        if response.status_code != 200:
            failures.append(f"namespace {namespace}: {_message(response)}")
            continue
        for secret in response.json()["items"]:
            error = _replace_unchanged(client, namespace, secret)
            if error:
                failures.append(f"{namespace}/{secret['metadata']['name']}: {error}")
            else:
                rewritten += 1
    return RewriteResult(rewritten, tuple(failures))


def _replace_unchanged(client: ApiClient, namespace: str, secret: dict[str, Any]) -> str:
    """PUT the Secret as read; on a conflict re-read and try again, as the docs advise."""
    path = f"/api/v1/namespaces/{namespace}/secrets/{secret['metadata']['name']}"
    for _ in range(CONFLICT_RETRIES):
        secret = {**secret, "kind": "Secret", "apiVersion": "v1"}
        response = client.put(path, secret)
        if response.status_code in (200, 201, 404):  # 404: deleted meanwhile, nothing to do
            return ""
        if response.status_code != 409:
            return _message(response)
        fresh = client.get(path)
        if fresh.status_code != 200:
            return "" if fresh.status_code == 404 else _message(fresh)
        secret = fresh.json()
    return "conflicting writes kept winning; run the rewrite again"


def _items(response: httpx.Response, what: str) -> list[dict[str, Any]]:
    if response.status_code != 200:
        raise SecretsError(f"cannot list {what}: {_message(response)}")
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    return f"HTTP {response.status_code}: {body.get('message', body)}"


def print_rewrite(result: RewriteResult, out: TextIO) -> int:
    out.write(f"rewrote {result.rewritten} secrets\n")
    out.writelines(f"error: {failure}\n" for failure in result.failures)
    return 1 if result.failures else 0


# --- rotate: Kubernetes' documented procedure, one step per run -------------------------

STEP_ADDED = "added"
STEP_PROMOTED = "promoted"


def rotate(paths: Paths, out: TextIO) -> int:
    config = load_config(paths.config)
    state = _read_state(paths.rotation_state)
    if state is None:
        return _add_key(paths, config, out)
    if state["step"] == STEP_ADDED:
        return _promote_key(paths, config, state["key"], out)
    return _rewrite_and_prune(paths, config, state["key"], out)


def _add_key(paths: Paths, config: dict[str, Any], out: TextIO) -> int:
    kind, keys = first_provider(config)
    taken = {k["name"] for k in keys}
    name = next(f"key{n}" for n in range(1, len(taken) + 2) if f"key{n}" not in taken)
    size = max(encryption.KEY_SIZES[kind])
    keys.insert(1, {"name": name, "secret": encryption.new_key_secret(size)})
    _write_config(paths.config, config)
    _write_state(paths.rotation_state, {"step": STEP_ADDED, "key": name})
    out.write(f"step 1 of 3: added {kind} key \"{name}\" second in {paths.config}; it can "
              f"decrypt but does not encrypt yet.\nBack up the new key, restart every "
              f"apiserver so each can read values sealed with it, then run "
              f"`storagelab secrets rotate` again.\n")
    return 0


def _promote_key(paths: Paths, config: dict[str, Any], name: str, out: TextIO) -> int:
    kind, keys = first_provider(config)
    new = [k for k in keys if k["name"] == name]
    if not new:
        raise SecretsError(f"key \"{name}\" added by the rotation is no longer in "
                           f"{paths.config}; remove {paths.rotation_state} to start over")
    keys[:] = new + [k for k in keys if k["name"] != name]
    _write_config(paths.config, config)
    _write_state(paths.rotation_state, {"step": STEP_PROMOTED, "key": name})
    out.write(f"step 2 of 3: {kind} key \"{name}\" is now first: new writes will use it.\n"
              f"Restart every apiserver, then run `storagelab secrets rotate` again to "
              f"rewrite every Secret and drop the old key.\n")
    return 0


def _rewrite_and_prune(paths: Paths, config: dict[str, Any], name: str, out: TextIO) -> int:
    kind, keys = first_provider(config)
    if keys[0]["name"] != name:
        raise SecretsError(f"key \"{name}\" is not first in {paths.config} any more; remove "
                           f"{paths.rotation_state} to start over")
    with ApiClient.from_kubeconfig(paths.kubeconfig) as client:
        result = rewrite(client)
    if result.failures:
        print_rewrite(result, out)
        raise SecretsError("some Secrets were not rewritten; the old key stays. Fix the "
                           "errors above and run `storagelab secrets rotate` again")
    _check_all_under(paths, f"{kind}:{name}")
    dropped = [k["name"] for k in keys[1:]]
    keys[:] = keys[:1]
    _write_config(paths.config, config)
    paths.rotation_state.unlink()
    out.write(f"step 3 of 3: rewrote {result.rewritten} secrets; the store holds every "
              f"Secret under {kind} key \"{name}\"; removed key(s) {', '.join(dropped)} from "
              f"{paths.config}.\nRestart every apiserver so the old key leaves memory too. "
              f"Rotation complete.\n")
    return 0


def _check_all_under(paths: Paths, label: str) -> None:
    """The proof that the old key is no longer needed, taken from the stored bytes."""
    behind = [s for s in status(paths) if s.key != label or s.state != "current"]
    if behind:
        listed = ", ".join(f"{s.namespace}/{s.name} ({s.key}, {s.state})" for s in behind[:5])
        raise SecretsError(
            f"{len(behind)} Secrets are not under {label} after the rewrite: {listed}. Was "
            f"the apiserver restarted after step 2? Restart it and run `storagelab secrets "
            f"rotate` again; the old key stays until then")


def _write_config(path: Path, config: dict[str, Any]) -> None:
    try:
        encryption.write_encryption_config(path, config)
    except encryption.EncryptionConfigError as e:
        raise SecretsError(f"the rotated configuration would be invalid: {e}") from e


def _read_state(path: Path) -> dict[str, str] | None:
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
        if state.get("step") in (STEP_ADDED, STEP_PROMOTED) and state.get("key"):
            return {"step": str(state["step"]), "key": str(state["key"])}
    except (OSError, ValueError, AttributeError):
        pass
    raise SecretsError(f"{path} is not a rotation record; remove it to start over")


def _write_state(path: Path, state: dict[str, str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(state) + "\n")
    os.replace(tmp, path)
