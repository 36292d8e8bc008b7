"""storage.k8s.io/v1 VolumeAttachment served as kube-apiserver serves it: validation with
pkg/apis/storage/validation's messages (422, nothing stored), the status reset on create,
the read-only spec, the status subresource, discovery and the Table columns."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ApiServer
from tests.support import uniq

Obj = dict[str, Any]
PATH = "/apis/storage.k8s.io/v1/volumeattachments"
MERGE = {"content-type": "application/merge-patch+json"}
SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
             "characters, '-' or '.', and must start and end with an alphanumeric character "
             "(e.g. 'example.com', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
EXACTLY_ONE = "must specify exactly one of inlineVolumeSpec and persistentVolumeName"


@pytest.fixture(scope="module")
def api(sqlite_server: ApiServer) -> Iterator[httpx.Client]:
    with sqlite_server.client() as client:
        yield client


def body(name: str, **spec: Any) -> Obj:
    full = {"attacher": "nfs.storagelab.io", "nodeName": "node-1",
            "source": {"persistentVolumeName": "pv-1"}} | spec
    return {"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
            "metadata": {"name": name}, "spec": {k: v for k, v in full.items() if v != ...}}


def causes(r: httpx.Response) -> list[tuple[str, str]]:
    assert r.status_code == 422, r.text
    status = r.json()
    assert (status["kind"], status["reason"]) == ("Status", "Invalid")
    assert status["details"]["kind"] == "VolumeAttachment"
    return [(c["field"], c["message"]) for c in status["details"]["causes"]]


@pytest.mark.parametrize(("spec", "expected"), [
    ({"attacher": ...}, [("spec.attacher", "Required value"),
                         ("spec.attacher", f'Invalid value: "": {SUBDOMAIN}')]),
    ({"attacher": "Bad_Driver"},
     [("spec.attacher", f'Invalid value: "Bad_Driver": {SUBDOMAIN}')]),
    ({"nodeName": ...}, [("spec.nodeName", f'Invalid value: "": {SUBDOMAIN}')]),
    ({"nodeName": "Node_1"}, [("spec.nodeName", f'Invalid value: "Node_1": {SUBDOMAIN}')]),
    ({"source": {}}, [("spec.source", f"Required value: {EXACTLY_ONE}")]),
    ({"source": {"persistentVolumeName": "pv-1", "inlineVolumeSpec": {}}},
     [("spec.source", f"Forbidden: {EXACTLY_ONE}")]),
    ({"source": {"persistentVolumeName": ""}},
     [("spec.source.persistentVolumeName",
       "Required value: must specify non empty persistentVolumeName"),
      ("spec.source.persistentVolumeName", f'Invalid value: "": {SUBDOMAIN}')]),
])
def test_invalid_spec_is_refused_and_not_stored(api: httpx.Client, spec: Obj,
                                                expected: list[tuple[str, str]]) -> None:
    name = uniq("va")
    assert causes(api.post(PATH, json=body(name, **spec))) == expected
    assert api.get(f"{PATH}/{name}").status_code == 404


def test_create_resets_status_and_spec_is_immutable(api: httpx.Client) -> None:
    name = uniq("va")
    sent = body(name) | {"status": {"attached": True}}
    r = api.post(PATH, json=sent)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["status"] == {"attached": False}  # a v1 client cannot set it on create
    r = api.patch(f"{PATH}/{name}", json={"spec": {"nodeName": "node-2"}}, headers=MERGE)
    assert [f for f, _ in causes(r)] == ["spec"]
    assert causes(r)[0][1].endswith("field is immutable")
    assert api.get(f"{PATH}/{name}").json()["spec"]["nodeName"] == "node-1"
    # the main resource ignores status; the status subresource ignores the rest
    r = api.patch(f"{PATH}/{name}", json={"status": {"attached": True}}, headers=MERGE)
    assert r.status_code == 200 and r.json()["status"] == {"attached": False}
    r = api.patch(f"{PATH}/{name}/status", headers=MERGE, json={
        "status": {"attached": True, "attachmentMetadata": {"k": "v"}},
        "metadata": {"labels": {"x": "y"}}})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["status"] == {"attached": True, "attachmentMetadata": {"k": "v"}}
    assert "labels" not in got["metadata"]
    assert api.delete(f"{PATH}/{name}").status_code == 200


def test_status_errors_are_validated(api: httpx.Client) -> None:
    name = uniq("va")
    assert api.post(PATH, json=body(name)).status_code == 201
    r = api.patch(f"{PATH}/{name}/status", headers=MERGE, json={"status": {
        "attachError": {"message": "x" * 1025}, "detachError": {"errorCode": -1}}})
    assert causes(r) == [
        ("status.attachError.message", "Too long: may not be more than 262144 bytes"),
        ("status.detachError.errorCode",
         "Invalid value: -1: must be between 0 and 2147483647, inclusive")]
    assert api.get(f"{PATH}/{name}").json()["status"] == {"attached": False}
    assert api.delete(f"{PATH}/{name}").status_code == 200


def test_discovery_lists_the_kind_and_its_status(api: httpx.Client) -> None:
    listing = api.get("/apis/storage.k8s.io/v1").json()["resources"]
    by_name = {r["name"]: r for r in listing}
    va = by_name["volumeattachments"]
    assert (va["kind"], va["namespaced"], va.get("shortNames", [])) == (
        "VolumeAttachment", False, [])
    assert "volumeattachments/status" in by_name


def test_table_columns_are_kubernetes(api: httpx.Client) -> None:
    name = uniq("va")
    assert api.post(PATH, json=body(name)).status_code == 201
    table = api.get(f"{PATH}/{name}", headers={
        "accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}).json()
    columns = [(c["name"], c["type"], c["format"]) for c in table["columnDefinitions"]]
    assert columns == [("Name", "string", "name"), ("Attacher", "string", "name"),
                       ("PV", "string", ""), ("Node", "string", ""),
                       ("Attached", "boolean", ""), ("Age", "string", "")]
    cells = table["rows"][0]["cells"]
    assert cells[:5] == [name, "nfs.storagelab.io", "pv-1", "node-1", False]
    assert api.delete(f"{PATH}/{name}").status_code == 200
