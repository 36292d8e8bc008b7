"""The StorageClass `storagelab up` creates, so a claim without a class just works.

Like kind's `standard` class (rancher local-path), it provisions local directories, is the
default class (`storageclass.kubernetes.io/is-default-class: "true"`), waits for the first
consumer so the volume lands on the node the pod is scheduled to, and deletes the volume
with its claim. An existing `standard` class is left as the administrator made it.
"""

from __future__ import annotations

from typing import Any

from storage.runtime import kube as kube_api

Obj = dict[str, Any]
NAME = "standard"
PROVISIONER = "storagelab.io/local"
ANN_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"


def default_storage_class() -> Obj:
    return {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": NAME, "annotations": {ANN_DEFAULT_CLASS: "true"}},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": True,
    }


async def ensure_default_storage_class(kube: kube_api.Kube) -> bool:
    """Create `standard` unless it exists; True when this call created it.

    Needs a client allowed to create storageclasses (the admin's; the controller-manager's
    identity may only read them).
    """
    try:
        await kube.create("StorageClass", default_storage_class())
    except kube_api.AlreadyExists:
        return False
    return True
