"""Encryption at rest: Kubernetes' on-disk formats, key selection, staleness, config errors."""

from __future__ import annotations

import base64
import copy
import stat
from pathlib import Path
from typing import Any

import nacl.secret
import pytest
import yaml
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from apiserver import encryption
from apiserver.encryption import DecryptError, EncryptionConfigError

K16, K24, K32 = b"k" * 16, b"m" * 24, b"s" * 32
CTX = b"/registry/secrets/default/db"
PLAIN = b'{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}'


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _keyed(kind: str, *keys: tuple[str, bytes]) -> dict[str, Any]:
    return {kind: {"keys": [{"name": n, "secret": _b64(s)} for n, s in keys]}}


def _config(*providers: dict[str, Any], resources: list[str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
            "resources": [{"resources": resources or ["secrets"], "providers": list(providers)}]}


def _secrets(*providers: dict[str, Any]) -> encryption.ResourceTransformer:
    return encryption.transformer_from_config(_config(*providers)).for_resource("secrets")


# --- exact on-disk formats, checked with independent primitives ---------------------------

def test_aesgcm_format() -> None:
    stored = _secrets(_keyed("aesgcm", ("key1", K32))).encrypt(PLAIN, CTX)
    prefix = b"k8s:enc:aesgcm:v1:key1:"
    assert stored.startswith(prefix)
    body = stored[len(prefix):]
    assert len(body) == 12 + len(PLAIN) + 16
    assert AESGCM(K32).decrypt(body[:12], body[12:], CTX) == PLAIN  # AAD = storage key


def test_aescbc_format() -> None:
    stored = _secrets(_keyed("aescbc", ("k", K32))).encrypt(PLAIN, CTX)
    prefix = b"k8s:enc:aescbc:v1:k:"
    body = stored[len(prefix):]
    assert stored.startswith(prefix) and len(body) % 16 == 0
    decryptor = Cipher(algorithms.AES(K32), modes.CBC(body[:16])).decryptor()
    padded = decryptor.update(body[16:]) + decryptor.finalize()
    pad = 16 - len(PLAIN) % 16
    assert padded == PLAIN + bytes([pad]) * pad


def test_aescbc_full_block_of_padding_when_aligned() -> None:
    stored = _secrets(_keyed("aescbc", ("k", K16))).encrypt(b"x" * 32, CTX)
    assert len(stored) == len(b"k8s:enc:aescbc:v1:k:") + 16 + 48


def test_secretbox_format() -> None:
    stored = _secrets(_keyed("secretbox", ("box", K32))).encrypt(PLAIN, CTX)
    prefix = b"k8s:enc:secretbox:v1:box:"
    body = stored[len(prefix):]
    assert stored.startswith(prefix)
    assert len(body) == 24 + 16 + len(PLAIN)  # nonce, poly1305 tag, ciphertext
    assert nacl.secret.SecretBox(K32).decrypt(body[24:], body[:24]) == PLAIN


def test_identity_writes_plaintext() -> None:
    assert _secrets({"identity": {}}).encrypt(PLAIN, CTX) == PLAIN


@pytest.mark.parametrize("provider", [
    _keyed("aesgcm", ("a", K16)), _keyed("aesgcm", ("a", K24)), _keyed("aesgcm", ("a", K32)),
    _keyed("aescbc", ("a", K16)), _keyed("aescbc", ("a", K32)), _keyed("secretbox", ("a", K32)),
    {"identity": {}},
])
def test_round_trip(provider: dict[str, Any]) -> None:
    chain = _secrets(provider)
    for plaintext in (b"", b"x", PLAIN, bytes(range(256)) * 3):
        assert chain.decrypt(chain.encrypt(plaintext, CTX), CTX) == (plaintext, False)


def test_nonces_are_fresh() -> None:
    chain = _secrets(_keyed("aesgcm", ("a", K32)))
    assert chain.encrypt(PLAIN, CTX) != chain.encrypt(PLAIN, CTX)


# --- tampering and wrong keys -------------------------------------------------------------

@pytest.mark.parametrize("kind,prefix_len", [("aesgcm", len(b"k8s:enc:aesgcm:v1:a:")),
                                             ("secretbox", len(b"k8s:enc:secretbox:v1:a:"))])
def test_every_flipped_byte_fails(kind: str, prefix_len: int) -> None:
    chain = _secrets(_keyed(kind, ("a", K32)))
    stored = chain.encrypt(b"short secret", CTX)
    for i in range(prefix_len, len(stored)):
        tampered = bytearray(stored)
        tampered[i] ^= 0x01
        with pytest.raises(DecryptError, match=f'failed to decrypt {CTX.decode()}: {kind} key "a"'):
            chain.decrypt(bytes(tampered), CTX)


def test_aescbc_flipped_padding_fails() -> None:
    chain = _secrets(_keyed("aescbc", ("a", K32)))
    stored = bytearray(chain.encrypt(b"0123", CTX))
    stored[-17] ^= 0xFF  # last IV byte: flips the last plaintext byte, i.e. the padding
    with pytest.raises(DecryptError, match="invalid padding"):
        chain.decrypt(bytes(stored), CTX)


@pytest.mark.parametrize("cut", [1, 17])
def test_aescbc_truncated_fails(cut: int) -> None:
    chain = _secrets(_keyed("aescbc", ("a", K32)))
    stored = chain.encrypt(PLAIN, CTX)
    with pytest.raises(DecryptError, match="block size|shorter"):
        chain.decrypt(stored[:-cut] if cut == 1 else stored[:len(b"k8s:enc:aescbc:v1:a:") + 8],
                      CTX)


def test_aesgcm_context_is_authenticated() -> None:
    chain = _secrets(_keyed("aesgcm", ("a", K32)))
    stored = chain.encrypt(PLAIN, CTX)
    with pytest.raises(DecryptError, match="authentication failed"):
        chain.decrypt(stored, b"/registry/secrets/default/other")


@pytest.mark.parametrize("kind", ["aesgcm", "aescbc", "secretbox"])
def test_wrong_secret_with_the_same_name_fails(kind: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # Deterministic IVs: CBC has no integrity, so whether garbage padding parses depends on them.
    monkeypatch.setattr(encryption, "_random_bytes", lambda n: b"\x07" * n)
    stored = _secrets(_keyed(kind, ("a", K32))).encrypt(PLAIN, CTX)
    with pytest.raises(DecryptError, match=f'{kind} key "a"'):
        _secrets(_keyed(kind, ("a", b"z" * 32))).decrypt(stored, CTX)


def test_value_of_a_removed_key_fails_clearly() -> None:
    stored = _secrets(_keyed("aesgcm", ("old", K32))).encrypt(PLAIN, CTX)
    with pytest.raises(DecryptError, match='prefix "k8s:enc:aesgcm:v1:old:"'):
        _secrets(_keyed("aesgcm", ("new", K32))).decrypt(stored, CTX)


def test_plaintext_is_refused_without_identity() -> None:
    with pytest.raises(DecryptError, match="no identity provider"):
        _secrets(_keyed("secretbox", ("a", K32))).decrypt(PLAIN, CTX)


def test_identity_alone_refuses_encrypted_values() -> None:
    stored = _secrets(_keyed("aesgcm", ("a", K32))).encrypt(PLAIN, CTX)
    with pytest.raises(DecryptError, match='no configured key matches the value.s prefix '
                                           '"k8s:enc:aesgcm:v1:a:"'):
        _secrets({"identity": {}}).decrypt(stored, CTX)


# --- which key reads, staleness -----------------------------------------------------------

def test_second_key_decrypts_and_is_stale() -> None:
    old = _secrets(_keyed("aesgcm", ("key1", K32)))
    both = _secrets(_keyed("aesgcm", ("key2", K16), ("key1", K32)))
    assert both.decrypt(old.encrypt(PLAIN, CTX), CTX) == (PLAIN, True)
    assert both.decrypt(both.encrypt(PLAIN, CTX), CTX) == (PLAIN, False)
    assert both.encrypt(PLAIN, CTX).startswith(b"k8s:enc:aesgcm:v1:key2:")


def test_later_provider_decrypts_and_is_stale() -> None:
    cbc = _secrets(_keyed("aescbc", ("k", K32)))
    chain = _secrets(_keyed("secretbox", ("k", K32)), _keyed("aescbc", ("k", K32)))
    assert chain.decrypt(cbc.encrypt(PLAIN, CTX), CTX) == (PLAIN, True)


def test_identity_last_reads_plaintext_as_stale() -> None:
    chain = _secrets(_keyed("aesgcm", ("a", K32)), {"identity": {}})
    assert chain.decrypt(PLAIN, CTX) == (PLAIN, True)


def test_identity_first_decrypts_old_values_as_stale() -> None:
    stored = _secrets(_keyed("aesgcm", ("a", K32))).encrypt(PLAIN, CTX)
    chain = _secrets({"identity": {}}, _keyed("aesgcm", ("a", K32)))
    assert chain.decrypt(stored, CTX) == (PLAIN, True)
    assert chain.decrypt(PLAIN, CTX) == (PLAIN, False)


def test_for_resource_precedence() -> None:
    config = {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
              "resources": [
                  {"resources": ["secrets", "deployments.apps"],
                   "providers": [_keyed("aesgcm", ("exact", K32))]},
                  {"resources": ["*.apps"], "providers": [_keyed("aescbc", ("group", K32))]},
                  {"resources": ["*.*"], "providers": [_keyed("secretbox", ("all", K32))]},
              ]}
    transformer = encryption.transformer_from_config(config)
    assert transformer.for_resource("secrets").writer == 'aesgcm key "exact"'
    assert transformer.for_resource("deployments.apps").writer == 'aesgcm key "exact"'
    assert transformer.for_resource("statefulsets.apps").writer == 'aescbc key "group"'
    assert transformer.for_resource("configmaps").writer == 'secretbox key "all"'


def test_unconfigured_resource_is_plaintext() -> None:
    transformer = encryption.transformer_from_config(_config(_keyed("aesgcm", ("a", K32))))
    assert transformer.for_resource("configmaps").encrypt(PLAIN, CTX) == PLAIN


def test_core_group_wildcard() -> None:
    config = _config(_keyed("aesgcm", ("a", K32)), resources=["*."])
    transformer = encryption.transformer_from_config(config)
    assert transformer.for_resource("configmaps").writer == 'aesgcm key "a"'
    assert transformer.for_resource("deployments.apps").writer == "identity"


# --- validation ---------------------------------------------------------------------------

def _broken(mutate) -> dict[str, Any]:
    config = _config(_keyed("aesgcm", ("key1", K32)))
    mutate(config)
    return config


P0 = "resources[0].providers[0]"


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c.update(apiVersion="v1"), 'apiVersion: Invalid value: "v1"'),
    (lambda c: c.update(kind="EncryptionConfig"), "kind: Invalid value"),
    (lambda c: c.update(resources=[]), "resources: Required value"),
    (lambda c: c.update(extra=1), 'unknown field "extra"'),
    (lambda c: c["resources"][0].update(resources=[]), "resources[0].resources: Required value"),
    (lambda c: c["resources"][0].update(providers=[]), "resources[0].providers: Required value"),
    (lambda c: c["resources"][0].update(resources=["Secrets"]),
     ("resources[0].resources[0]: Invalid value: \"Secrets\": resource name should not contain "
     "capital letters")),
    (lambda c: c["resources"][0].update(resources=["*"]), "use '*.' to encrypt all"),
    (lambda c: c["resources"][0].update(resources=["secrets.*"]), "across groups"),
    (lambda c: c["resources"][0].update(resources=["secrets", "secrets"]),
     "cannot be specified multiple times"),
    (lambda c: c["resources"][0].update(resources=["secrets", "*."]), "overlapping resources"),
    (lambda c: c["resources"][0].update(resources=["secrets", "*.*"]), "overlapping resources"),
    (lambda c: c["resources"].append(copy.deepcopy(c["resources"][0])),
     'resources[1].resources: Invalid value: "secrets": already configured in resources[0]'),
    (lambda c: c["resources"][0]["providers"][0].update(identity={}),
     f"{P0}: Invalid value: [\"aesgcm\", \"identity\"]: more than one provider"),
    (lambda c: c["resources"][0].update(providers=[{"aesgcmm": {}}]),
     f'{P0}: unknown field "aesgcmm"'),
    (lambda c: c["resources"][0].update(providers=[{}]), "does not contain any of the expected"),
    (lambda c: c["resources"][0].update(providers=[{"kms": {"name": "x"}}]),
     f"{P0}.kms: Invalid value: \"kms\": KMS providers are not supported"),
    (lambda c: c["resources"][0].update(providers=[{"aesgcm": {"keys": []}}]),
     f"{P0}.aesgcm.keys: Required value"),
    (lambda c: c["resources"][0]["providers"][0]["aesgcm"]["keys"][0].pop("name"),
     f"{P0}.aesgcm.keys[0].name: Required value: name is a mandatory field for a key"),
    (lambda c: c["resources"][0]["providers"][0]["aesgcm"]["keys"][0].update(name="a:b"),
     f"{P0}.aesgcm.keys[0].name: Invalid value: \"a:b\": must not contain ':'"),
    (lambda c: c["resources"][0]["providers"][0]["aesgcm"]["keys"].append(
        {"name": "key1", "secret": _b64(K16)}), (f"{P0}.aesgcm.keys[1].name: Invalid value: "
                                                "\"key1\": duplicate key name")),
    (lambda c: c["resources"][0]["providers"][0]["aesgcm"]["keys"][0].pop("secret"),
     f"{P0}.aesgcm.keys[0].secret: Required value: secret is a mandatory field for a key"),
    (lambda c: c["resources"][0]["providers"][0]["aesgcm"]["keys"][0].update(secret="!!notb64"),
     (f"{P0}.aesgcm.keys[0].secret: Invalid value: \"REDACTED\": secrets must be base64 "
     "encoded")),
    (lambda c: c["resources"][0]["providers"][0].update(identity={"x": 1}) or
     c["resources"][0]["providers"][0].pop("aesgcm"), f"{P0}.identity: Invalid value"),
])
def test_malformed_config_names_the_field(mutate, message: str) -> None:
    with pytest.raises(EncryptionConfigError) as caught:
        encryption.transformer_from_config(_broken(mutate))
    assert message in str(caught.value)


@pytest.mark.parametrize("kind,size,ok", [
    ("aesgcm", 16, True), ("aesgcm", 24, True), ("aesgcm", 32, True), ("aesgcm", 8, False),
    ("aesgcm", 33, False), ("aescbc", 16, True), ("aescbc", 32, True), ("aescbc", 31, False),
    ("secretbox", 32, True), ("secretbox", 16, False), ("secretbox", 24, False),
])
def test_key_lengths(kind: str, size: int, ok: bool) -> None:
    config = _config(_keyed(kind, ("k", b"q" * size)))
    if ok:
        encryption.transformer_from_config(config)
        return
    expected = "[32]" if kind == "secretbox" else "[16 24 32]"
    with pytest.raises(EncryptionConfigError) as caught:
        encryption.transformer_from_config(config)
    assert str(caught.value) == (
        f'{P0}.{kind}.keys[0].secret: Invalid value: "REDACTED": secret is not of the expected '
        f"length, got {size}, expected one of {expected}")


def test_several_errors_are_all_reported() -> None:
    config = _config(_keyed("aesgcm", ("a", b"short")), _keyed("secretbox", ("b", K16)))
    with pytest.raises(EncryptionConfigError) as caught:
        encryption.transformer_from_config(config)
    assert len(caught.value.errors) == 2
    assert str(caught.value).startswith("[resources[0].providers[0].aesgcm")


def test_load_from_file_errors(tmp_path: Path) -> None:
    with pytest.raises(EncryptionConfigError, match="cannot be read"):
        encryption.load_encryption_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("resources: [\n")
    with pytest.raises(EncryptionConfigError, match="not valid YAML"):
        encryption.load_encryption_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(EncryptionConfigError, match="must be a YAML or JSON object"):
        encryption.load_encryption_config(bad)


def test_kubernetes_documented_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "enc.yaml"
    path.write_text(f"""\
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources:
      - secrets
      - configmaps
      - pandas.awesome.bears.example
    providers:
      - aesgcm:
          keys:
            - name: key1
              secret: {_b64(K16)}
            - name: key2
              secret: {_b64(K32)}
      - aescbc:
          keys:
            - name: key1
              secret: {_b64(K32)}
      - secretbox:
          keys:
            - name: key1
              secret: {_b64(K32)}
      - identity: {{}}
""")
    transformer = encryption.load_encryption_config(path)
    chain = transformer.for_resource("pandas.awesome.bears.example")
    assert chain.writer == 'aesgcm key "key1"'


# --- generating and rotating --------------------------------------------------------------

def test_generate_default_config(tmp_path: Path) -> None:
    path = tmp_path / "encryption.yaml"
    config = encryption.generate_default_config(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert yaml.safe_load(path.read_text()) == config
    providers = config["resources"][0]["providers"]
    assert [next(iter(p)) for p in providers] == ["secretbox"]  # no plaintext fallback
    assert providers[0]["secretbox"]["keys"][0]["name"] == "key1"
    assert len(base64.b64decode(providers[0]["secretbox"]["keys"][0]["secret"])) == 32
    with pytest.raises(FileExistsError):
        encryption.generate_default_config(path)
    chain = encryption.load_encryption_config(path).for_resource("secrets")
    assert chain.encrypt(PLAIN, CTX).startswith(b"k8s:enc:secretbox:v1:key1:")


def test_ensure_encryption_config_keeps_existing(tmp_path: Path) -> None:
    path = tmp_path / "encryption.yaml"
    stored = encryption.ensure_encryption_config(path).for_resource("secrets").encrypt(PLAIN, CTX)
    again = encryption.ensure_encryption_config(path).for_resource("secrets")
    assert again.decrypt(stored, CTX) == (PLAIN, False)


def test_two_step_rotation(tmp_path: Path) -> None:
    original = encryption.default_config()
    old_value = encryption.transformer_from_config(original).for_resource("secrets").encrypt(
        PLAIN, CTX)

    rotated = encryption.rotated_config(original)
    chain = encryption.transformer_from_config(rotated).for_resource("secrets")
    assert [k["name"] for k in rotated["resources"][0]["providers"][0]["secretbox"]["keys"]] \
        == ["key2", "key1"]
    assert chain.decrypt(old_value, CTX) == (PLAIN, True)
    new_value = chain.encrypt(PLAIN, CTX)
    assert new_value.startswith(b"k8s:enc:secretbox:v1:key2:")
    assert original["resources"][0]["providers"][0]["secretbox"]["keys"][0]["name"] == "key1"

    pruned = encryption.without_old_keys(rotated)
    final = encryption.transformer_from_config(pruned).for_resource("secrets")
    assert final.decrypt(new_value, CTX) == (PLAIN, False)
    with pytest.raises(DecryptError):
        final.decrypt(old_value, CTX)


def test_rotation_errors() -> None:
    with pytest.raises(EncryptionConfigError, match="already in use"):
        encryption.rotated_config(encryption.default_config(), "key1")
    with pytest.raises(EncryptionConfigError, match="does not encrypt"):
        encryption.rotated_config(_config({"identity": {}}))


def test_without_old_keys_keeps_identity_and_drops_old_providers() -> None:
    config = _config(_keyed("aesgcm", ("new", K32), ("old", K32)), _keyed("aescbc", ("x", K32)),
                     {"identity": {}})
    pruned = encryption.without_old_keys(config)
    assert pruned["resources"][0]["providers"] == [_keyed("aesgcm", ("new", K32)),
                                                   {"identity": {}}]


def test_write_refuses_invalid_config(tmp_path: Path) -> None:
    with pytest.raises(EncryptionConfigError):
        encryption.write_encryption_config(tmp_path / "x.yaml", _config({}))
    assert not (tmp_path / "x.yaml").exists()
