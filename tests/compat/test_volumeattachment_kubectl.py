"""The real kubectl on VolumeAttachments: `get` prints Kubernetes' columns (NAME, ATTACHER,
PV, NODE, ATTACHED, AGE), `explain` knows the kind, `create` shows the validation errors."""

from __future__ import annotations

import json
import re
import uuid

from tests.compat.conftest import Kubectl, header_of, parse_table


def manifest(name: str, **spec: object) -> str:
    full = {"attacher": "nfs.storagelab.io", "nodeName": "node-1",
            "source": {"persistentVolumeName": "pv-1"}} | spec
    return json.dumps({"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
                       "metadata": {"name": name}, "spec": full})


def test_get_prints_kubernetes_columns(sqlite_kubectl: Kubectl) -> None:
    name = f"csi-{uuid.uuid4().hex}"
    sqlite_kubectl.out("create", "-f", "-", input=manifest(name))
    try:
        out = sqlite_kubectl.out("get", "volumeattachments", name)
        assert header_of(out) == ["NAME", "ATTACHER", "PV", "NODE", "ATTACHED", "AGE"]
        row = parse_table(out)[0]
        assert (row["NAME"], row["ATTACHER"], row["PV"], row["NODE"], row["ATTACHED"]) == (
            name, "nfs.storagelab.io", "pv-1", "node-1", "false")
        assert re.fullmatch(r"\d+s", row["AGE"])
        wide = sqlite_kubectl.out("get", "volumeattachment", name, "-o", "wide")
        assert header_of(wide) == header_of(out)  # Kubernetes has no wide columns here
    finally:
        sqlite_kubectl.run("delete", "volumeattachment", name, check=False)


def test_explain_volume_attachment_spec(sqlite_kubectl: Kubectl) -> None:
    out = sqlite_kubectl.out("explain", "volumeattachment.spec")
    assert out.startswith("GROUP:      storage.k8s.io\nKIND:       VolumeAttachment\n"
                          "VERSION:    v1\n\nFIELD: spec <VolumeAttachmentSpec>\n")
    fields = {name: (type_, required) for name, type_, required in
              re.findall(r"^  (\w+)\t<([^>]+)>( -required-)?$", out, re.MULTILINE)}
    assert fields == {"attacher": ("string", " -required-"),
                      "nodeName": ("string", " -required-"),
                      "source": ("VolumeAttachmentSource", " -required-")}


def test_create_invalid_is_refused_field_by_field(sqlite_kubectl: Kubectl) -> None:
    name = f"csi-{uuid.uuid4().hex}"
    err = sqlite_kubectl.fails("create", "-f", "-", input=manifest(name, source={}))
    assert err == (f'The VolumeAttachment "{name}" is invalid: spec.source: Required value: '
                   "must specify exactly one of inlineVolumeSpec and persistentVolumeName")
