"""Encryption at rest with Kubernetes' EncryptionConfiguration file and on-disk formats.

The file (apiserver.config.k8s.io/v1, kind EncryptionConfiguration) lists, per resource, an
ordered chain of providers: aesgcm, aescbc, secretbox or identity. The first provider's first
key encrypts every write; every configured key can decrypt, picked by the value's prefix
`k8s:enc:<provider>:v1:<key name>:`; a value read by anything but the first key is stale and
should be rewritten. Values are byte-compatible with kube-apiserver's. A value that fails to
decrypt is an error for that one object: plaintext is only accepted where identity is
configured. The file is validated strictly at start and every problem names its field.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import nacl.exceptions
import nacl.secret
import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"
ENCRYPTED_PREFIX = b"k8s:enc:"
KEY_SIZES = {"aesgcm": (16, 24, 32), "aescbc": (16, 24, 32), "secretbox": (32,)}
KEYED_PROVIDERS = tuple(KEY_SIZES)
PROVIDERS = (*KEYED_PROVIDERS, "identity", "kms")

_GCM_NONCE = 12
_GCM_TAG = 16
_CBC_BLOCK = 16
_BOX_NONCE = nacl.secret.SecretBox.NONCE_SIZE

# Indirection so tests can make nonces and IVs deterministic.
_random_bytes: Callable[[int], bytes] = os.urandom


class EncryptionConfigError(ValueError):
    """The EncryptionConfiguration is malformed; `errors` name each offending field."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = tuple(errors)
        text = self.errors[0] if len(self.errors) == 1 else "[" + ", ".join(self.errors) + "]"
        super().__init__(text)


class DecryptError(Exception):
    """A stored value cannot be decrypted: modified, wrong key, unknown key or plaintext."""


# --- the ciphers --------------------------------------------------------------------------

class _Cipher(Protocol):
    def seal(self, plaintext: bytes, context: bytes) -> bytes: ...

    def open(self, data: bytes, context: bytes) -> bytes:
        """Decrypt `data` (without its prefix); raise DecryptError when it is not genuine."""
        ...


@dataclass(frozen=True)
class _AesGcm:
    """nonce(12) || ciphertext || tag(16); the storage key is the authenticated data."""

    key: bytes

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = _random_bytes(_GCM_NONCE)
        return nonce + AESGCM(self.key).encrypt(nonce, plaintext, context)

    def open(self, data: bytes, context: bytes) -> bytes:
        if len(data) < _GCM_NONCE + _GCM_TAG:
            raise DecryptError("the stored data was shorter than the required size")
        try:
            return AESGCM(self.key).decrypt(data[:_GCM_NONCE], data[_GCM_NONCE:], context)
        except InvalidTag as e:
            raise DecryptError("message authentication failed: the value was modified, "
                               "stored under another key, or encrypted with a different "
                               "secret of this name") from e


@dataclass(frozen=True)
class _AesCbc:
    """iv(16) || AES-CBC(PKCS#7 padded plaintext). Unauthenticated, as in Kubernetes."""

    key: bytes

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        iv = _random_bytes(_CBC_BLOCK)
        pad = _CBC_BLOCK - len(plaintext) % _CBC_BLOCK
        encryptor = Cipher(algorithms.AES(self.key), modes.CBC(iv)).encryptor()
        return iv + encryptor.update(plaintext + bytes([pad]) * pad) + encryptor.finalize()

    def open(self, data: bytes, context: bytes) -> bytes:
        if len(data) < 2 * _CBC_BLOCK:
            raise DecryptError("the stored data was shorter than the required size")
        if len(data) % _CBC_BLOCK:
            raise DecryptError("the stored data is not a multiple of the block size")
        decryptor = Cipher(algorithms.AES(self.key), modes.CBC(data[:_CBC_BLOCK])).decryptor()
        padded = decryptor.update(data[_CBC_BLOCK:]) + decryptor.finalize()
        return _unpad(padded)


def _unpad(padded: bytes) -> bytes:
    pad = padded[-1]
    if pad == 0 or pad > _CBC_BLOCK or padded[-pad:] != bytes([pad]) * pad:
        raise DecryptError("invalid padding on input: the value was modified or encrypted "
                           "with a different secret of this name")
    return padded[:-pad]


@dataclass(frozen=True)
class _SecretBox:
    """nonce(24) || NaCl secretbox (poly1305 tag || XSalsa20 ciphertext)."""

    key: bytes

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = _random_bytes(_BOX_NONCE)
        return bytes(nacl.secret.SecretBox(self.key).encrypt(plaintext, nonce))

    def open(self, data: bytes, context: bytes) -> bytes:
        if len(data) < _BOX_NONCE + nacl.secret.SecretBox.MACBYTES:
            raise DecryptError("the stored data was shorter than the required size")
        try:
            return nacl.secret.SecretBox(self.key).decrypt(data[_BOX_NONCE:], data[:_BOX_NONCE])
        except nacl.exceptions.CryptoError as e:
            raise DecryptError("output array was not authentic: the value was modified or "
                               "encrypted with a different secret of this name") from e


class _Identity:
    """Plaintext; refuses values that carry an encryption prefix."""

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        return plaintext

    def open(self, data: bytes, context: bytes) -> bytes:
        if data.startswith(ENCRYPTED_PREFIX):
            raise DecryptError("identity transformer tried to read encrypted data")
        return data


# --- the transformer chain ----------------------------------------------------------------

@dataclass(frozen=True)
class _Entry:
    """One key of one provider: its value prefix and how it seals."""

    prefix: bytes
    cipher: _Cipher
    description: str


class ResourceTransformer:
    """The provider chain of one resource: first entry writes, any matching entry reads."""

    def __init__(self, entries: Sequence[_Entry]) -> None:
        if not entries:
            raise ValueError("a transformer needs at least one provider")
        self._entries = tuple(entries)

    @property
    def writer(self) -> str:
        return self._entries[0].description

    def encrypt(self, plaintext: bytes, context: bytes) -> bytes:
        entry = self._entries[0]
        return entry.prefix + entry.cipher.seal(plaintext, context)

    def decrypt(self, stored: bytes, context: bytes) -> tuple[bytes, bool]:
        """(plaintext, stale): stale when read by any key but the one that now writes."""
        errors: list[str] = []
        for i, entry in enumerate(self._entries):
            if not stored.startswith(entry.prefix):
                continue
            try:
                plaintext = entry.cipher.open(stored[len(entry.prefix):], context)
            except DecryptError as e:
                if entry.prefix:
                    raise DecryptError(_failure(context, f"{entry.description}: {e}")) from e
                errors.append(str(e))  # identity: an encrypted value may match a later key
                continue
            return plaintext, i != 0
        raise DecryptError(_failure(context, _no_match(stored, errors)))


def _no_match(stored: bytes, errors: list[str]) -> str:
    if stored.startswith(ENCRYPTED_PREFIX):
        label = stored.split(b":")[:5]
        name = b":".join(label).decode("utf-8", "replace")
        return (f"no configured key matches the value's prefix \"{name}:\"; the key that "
                f"encrypted it was removed from the EncryptionConfiguration")
    if errors:
        return "; ".join(errors)
    return ("the value is not encrypted and no identity provider is configured to read "
            "plaintext")


def _failure(context: bytes, detail: str) -> str:
    where = context.decode("utf-8", "replace") or "value"
    return f"failed to decrypt {where}: {detail}"


IDENTITY = ResourceTransformer([_Entry(b"", _Identity(), "identity")])


class Transformer:
    """The whole configuration: which chain applies to which resource."""

    def __init__(self, by_resource: dict[tuple[str, str], ResourceTransformer]) -> None:
        self._by_resource = by_resource

    def for_resource(self, resource: str) -> ResourceTransformer:
        """`secrets`, `deployments.apps`: exact match, then `*.<group>`, then `*.*`."""
        group_resource = _parse_group_resource(resource)
        for key in (group_resource, (group_resource[0], "*"), ("*", "*")):
            if key in self._by_resource:
                return self._by_resource[key]
        return IDENTITY


def _parse_group_resource(value: str) -> tuple[str, str]:
    """(group, resource) of `resource.group`; the core group is ""."""
    resource, _, group = value.partition(".")
    return group, resource


# --- loading and validation ---------------------------------------------------------------

def load_encryption_config(path: Path) -> Transformer:
    """Read, validate and build the transformer; EncryptionConfigError names each bad field."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise EncryptionConfigError([f"{path}: cannot be read: {e}"]) from e
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise EncryptionConfigError([f"{path}: not valid YAML or JSON: {e}"]) from e
    return transformer_from_config(document)


def transformer_from_config(document: Any) -> Transformer:
    errors = _validate(document)
    if errors:
        raise EncryptionConfigError(errors)
    by_resource: dict[tuple[str, str], ResourceTransformer] = {}
    for entry in document["resources"]:
        chain = ResourceTransformer([e for p in entry["providers"] for e in _entries(p)])
        for resource in entry["resources"]:
            # The first entry naming a resource wins, as in kube-apiserver.
            by_resource.setdefault(_parse_group_resource(resource), chain)
    return Transformer(by_resource)


def _entries(provider: dict[str, Any]) -> list[_Entry]:
    kind = next(iter(provider))
    if kind == "identity":
        return [_Entry(b"", _Identity(), "identity")]
    make: dict[str, Callable[[bytes], _Cipher]] = {
        "aesgcm": _AesGcm, "aescbc": _AesCbc, "secretbox": _SecretBox}
    return [_Entry(f"k8s:enc:{kind}:v1:{key['name']}:".encode(),
                   make[kind](base64.b64decode(key["secret"])),
                   f"{kind} key \"{key['name']}\"")
            for key in provider[kind]["keys"]]


def _required(path: str, detail: str) -> str:
    return f"{path}: Required value: {detail}"


def _invalid(path: str, value: Any, detail: str) -> str:
    return f"{path}: Invalid value: {json.dumps(value, default=str)}: {detail}"


def _unknown(path: str, key: Any) -> str:
    return f"{path}: unknown field \"{key}\""


def _validate(document: Any) -> list[str]:
    if not isinstance(document, dict):
        return ["EncryptionConfiguration must be a YAML or JSON object"]
    errors = [f'unknown field "{k}"' for k in document
              if k not in ("apiVersion", "kind", "resources")]
    if document.get("apiVersion") != API_VERSION:
        errors.append(_invalid("apiVersion", document.get("apiVersion"),
                               f"must be {API_VERSION}"))
    if document.get("kind") != KIND:
        errors.append(_invalid("kind", document.get("kind"), f"must be {KIND}"))
    resources = document.get("resources")
    if not isinstance(resources, list) or not resources:
        return errors + [_required("resources", "at least one resources is required")]
    for i, entry in enumerate(resources):
        errors += _validate_entry(entry, f"resources[{i}]")
    return errors + _validate_no_repeats(resources)


def _validate_entry(entry: Any, path: str) -> list[str]:
    if not isinstance(entry, dict):
        return [_invalid(path, entry, "must be an object with resources and providers")]
    errors = [_unknown(path, k) for k in entry if k not in ("resources", "providers")]
    names = entry.get("resources")
    if not isinstance(names, list) or not names:
        errors.append(_required(f"{path}.resources",
                                f"at least one {path}.resources is required"))
    else:
        errors += _validate_resource_names(names, f"{path}.resources")
    providers = entry.get("providers")
    if not isinstance(providers, list) or not providers:
        errors.append(_required(f"{path}.providers",
                                f"at least one {path}.providers is required"))
    else:
        for j, provider in enumerate(providers):
            errors += _validate_provider(provider, f"{path}.providers[{j}]")
    return errors


def _validate_resource_names(names: list[Any], path: str) -> list[str]:
    errors: list[str] = []
    for i, name in enumerate(names):
        at = f"{path}[{i}]"
        if not isinstance(name, str) or not name:
            errors.append(_invalid(at, name, "must be a non-empty string"))
        elif name != name.lower():
            errors.append(_invalid(at, name, "resource name should not contain capital letters"))
        elif name == "*":
            errors.append(_invalid(at, name, "use '*.' to encrypt all the resources from core "
                                             "API group or *.* to encrypt all resources"))
        elif _parse_group_resource(name)[0] == "*" and _parse_group_resource(name)[1] != "*":
            errors.append(_invalid(at, name, "encrypting the same resource across groups is "
                                             "not supported"))
    if errors:
        return errors
    parsed = [_parse_group_resource(n) for n in names]
    if len(set(parsed)) != len(parsed):
        errors.append(_invalid(path, names, "the same resource cannot be specified multiple "
                                            "times"))
    if _overlaps(parsed):
        errors.append(_invalid(path, names, "using overlapping resources such as 'secrets' "
                                            "and '*.' in the same resource list is not "
                                            "allowed as they will be masked"))
    return errors


def _overlaps(parsed: list[tuple[str, str]]) -> bool:
    distinct = set(parsed)
    if len(distinct) < 2:
        return False
    if ("*", "*") in distinct:
        return True
    return any(r == "*" and sum(1 for g2, _ in distinct if g2 == g) > 1 for g, r in distinct)


def _validate_no_repeats(resources: list[Any]) -> list[str]:
    """A resource named by two entries: the second would silently never apply."""
    seen: dict[tuple[str, str], int] = {}
    errors: list[str] = []
    for i, entry in enumerate(resources):
        names = entry.get("resources") if isinstance(entry, dict) else None
        for name in set(names) if isinstance(names, list) else ():
            if not isinstance(name, str):
                continue
            key = _parse_group_resource(name)
            if key in seen and seen[key] != i:
                errors.append(_invalid(f"resources[{i}].resources", name,
                                       f"already configured in resources[{seen[key]}]"))
            seen.setdefault(key, i)
    return errors


def _validate_provider(provider: Any, path: str) -> list[str]:
    if not isinstance(provider, dict) or not provider:
        return [_invalid(path, provider, "provider does not contain any of the expected "
                                         "providers: AESGCM, AESCBC, Secretbox, Identity")]
    unknown = [_unknown(path, k) for k in provider if k not in PROVIDERS]
    if unknown:
        return unknown
    if len(provider) > 1:
        return [_invalid(path, sorted(provider), "more than one provider specified in a "
                                                 "single element, should split into different "
                                                 "list elements")]
    kind, body = next(iter(provider.items()))
    if kind == "kms":
        return [_invalid(f"{path}.kms", "kms", "KMS providers are not supported by "
                                               "storagelab; use aesgcm, aescbc or secretbox")]
    if kind == "identity":
        if body not in (None, {}):
            return [_invalid(f"{path}.identity", body, "identity takes no settings")]
        return []
    return _validate_keyed(body, f"{path}.{kind}", KEY_SIZES[kind])


def _validate_keyed(body: Any, path: str, sizes: tuple[int, ...]) -> list[str]:
    if not isinstance(body, dict):
        return [_required(f"{path}.keys", "at least one keys is required")]
    errors = [_unknown(path, k) for k in body if k != "keys"]
    keys = body.get("keys")
    if not isinstance(keys, list) or not keys:
        return errors + [_required(f"{path}.keys", "at least one keys is required")]
    names: set[str] = set()
    for i, key in enumerate(keys):
        errors += _validate_key(key, f"{path}.keys[{i}]", sizes, names)
    return errors


def _validate_key(key: Any, path: str, sizes: tuple[int, ...], seen: set[str]) -> list[str]:
    if not isinstance(key, dict):
        return [_invalid(path, "REDACTED", "must be an object with name and secret")]
    errors = [_unknown(path, k) for k in key if k not in ("name", "secret")]
    name = key.get("name")
    if not name or not isinstance(name, str):
        errors.append(_required(f"{path}.name", "name is a mandatory field for a key"))
    elif ":" in name:
        errors.append(_invalid(f"{path}.name", name, "must not contain ':' (it ends the "
                                                     "value's prefix)"))
    elif name in seen:
        errors.append(_invalid(f"{path}.name", name, "duplicate key name in this provider"))
    else:
        seen.add(name)
    return errors + _validate_secret(key.get("secret"), f"{path}.secret", sizes)


def _validate_secret(secret: Any, path: str, sizes: tuple[int, ...]) -> list[str]:
    if not secret:
        return [_required(path, "secret is a mandatory field for a key")]
    if not isinstance(secret, str):
        return [_invalid(path, "REDACTED", "secrets must be base64 encoded")]
    try:
        raw = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        return [_invalid(path, "REDACTED", "secrets must be base64 encoded")]
    if len(raw) not in sizes:
        expected = "[" + " ".join(str(s) for s in sizes) + "]"
        return [_invalid(path, "REDACTED", f"secret is not of the expected length, got "
                                           f"{len(raw)}, expected one of {expected}")]
    return []


# --- making and rotating configurations ---------------------------------------------------

def new_key_secret(size: int = 32) -> str:
    return base64.b64encode(secrets.token_bytes(size)).decode("ascii")


def default_config() -> dict[str, Any]:
    """Secrets sealed with secretbox (the strongest of the local providers), no plaintext."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "resources": [{
            "resources": ["secrets"],
            "providers": [{"secretbox": {"keys": [{"name": "key1",
                                                   "secret": new_key_secret()}]}}],
        }],
    }


def generate_default_config(path: Path) -> dict[str, Any]:
    """Write a new configuration (0600) for a new cluster; never overwrites an existing file."""
    config = default_config()
    write_encryption_config(path, config, exclusive=True)
    return config


def ensure_encryption_config(path: Path) -> Transformer:
    """Load `path`, generating the default configuration first when it does not exist."""
    if not path.exists():
        generate_default_config(path)
    return load_encryption_config(path)


def write_encryption_config(path: Path, config: dict[str, Any], *,
                            exclusive: bool = False) -> None:
    transformer_from_config(config)  # never write a file the server would refuse
    data = yaml.safe_dump(config, sort_keys=False).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    if exclusive:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        _write_all(fd, data)
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    _write_all(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), data)
    os.replace(tmp, path)


def _write_all(fd: int, data: bytes) -> None:
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def rotated_config(config: dict[str, Any], new_key_name: str | None = None) -> dict[str, Any]:
    """Step 1 of a rotation: a new random key first in every first provider.

    Old keys stay so existing values still decrypt (and read as stale); after every value
    has been rewritten, `without_old_keys` is step 2.
    """
    rotated = copy.deepcopy(config)
    for i, entry in enumerate(rotated["resources"]):
        kind, body = next(iter(entry["providers"][0].items()))
        if kind not in KEYED_PROVIDERS:
            raise EncryptionConfigError([_invalid(
                f"resources[{i}].providers[0]", kind,
                "the first provider does not encrypt; there is no key to rotate")])
        taken = {k["name"] for k in body["keys"]}
        name = new_key_name or _next_key_name(taken)
        if name in taken:
            raise EncryptionConfigError([_invalid(
                f"resources[{i}].providers[0].{kind}.keys", name, "key name already in use")])
        body["keys"].insert(0, {"name": name, "secret": new_key_secret(max(KEY_SIZES[kind]))})
    transformer_from_config(rotated)
    return rotated


def without_old_keys(config: dict[str, Any]) -> dict[str, Any]:
    """Step 2 of a rotation: keep only the writing key; identity stays if it was configured."""
    pruned = copy.deepcopy(config)
    for entry in pruned["resources"]:
        first, *rest = entry["providers"]
        kind, body = next(iter(first.items()))
        if kind in KEYED_PROVIDERS:
            body["keys"] = body["keys"][:1]
        entry["providers"] = [first, *(p for p in rest if "identity" in p)]
    transformer_from_config(pruned)
    return pruned


def _next_key_name(taken: set[str]) -> str:
    n = 1
    while f"key{n}" in taken:
        n += 1
    return f"key{n}"
