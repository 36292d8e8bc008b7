"""Decoding the protobuf bodies kubectl's typed commands send (field numbers of generated.proto)."""

from __future__ import annotations

import pytest

from apimachinery import errors
from apiserver import protowire


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, value: bytes | str | int) -> bytes:
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def entry(number: int, key: str, value: bytes | str) -> bytes:
    return field(number, field(1, key) + field(2, value))


def envelope(api_version: str, kind: str, message: bytes) -> bytes:
    type_meta = field(1, api_version) + field(2, kind)
    return protowire.MAGIC + field(1, type_meta) + field(2, message)


def meta(name: str, **labels: str) -> bytes:
    body = field(1, name) + field(2, "")
    for k, v in labels.items():
        body += entry(11, k, v)
    return body


def test_secret_data_becomes_base64_and_empty_strings_are_dropped() -> None:
    message = field(1, meta("s1", app="db")) + entry(2, "pw", b"\x00s3cret") + field(3, "Opaque")
    obj = protowire.decode(envelope("v1", "Secret", message))
    assert obj == {"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "s1", "labels": {"app": "db"}},
                   "data": {"pw": "AHMzY3JldA=="}, "type": "Opaque"}


def test_config_map_and_namespace() -> None:
    cm = protowire.decode(envelope("v1", "ConfigMap", field(1, meta("c")) + entry(2, "a", "b")
                                   + field(4, 1)))
    assert cm["data"] == {"a": "b"} and cm["immutable"] is True
    ns = protowire.decode(envelope("v1", "Namespace", field(1, meta("n"))
                                   + field(2, field(1, "kubernetes"))))
    assert ns["metadata"] == {"name": "n"} and ns["spec"] == {"finalizers": ["kubernetes"]}


def test_access_review_attributes() -> None:
    attrs = field(1, "ns") + field(2, "get") + field(5, "secrets")
    review = protowire.decode(envelope("authorization.k8s.io/v1", "SelfSubjectAccessReview",
                                       field(2, field(1, attrs))))
    assert review["spec"] == {"resourceAttributes": {"namespace": "ns", "verb": "get",
                                                     "resource": "secrets"}}


@pytest.mark.parametrize("body", [b"not protobuf", protowire.MAGIC + b"\x0a\xff"])
def test_garbage_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(errors.APIError) as info:
        protowire.decode(body)
    assert info.value.code == 400


def test_other_kinds_are_refused_with_415() -> None:
    with pytest.raises(errors.APIError) as info:
        protowire.decode(envelope("v1", "Pod", field(1, meta("p"))))
    assert info.value.code == 415
