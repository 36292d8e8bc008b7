"""The one API call of the scheduler that `runtime.kube` lacks: `pods/binding`.

Nodes, CSIDrivers and CSIStorageCapacities are ordinary kinds of `runtime.kube.Kube` (the
scheduler, the capacity publisher and the attach/detach controller read and write them there);
binding a pod is a POST to a subresource with a body of its own kind, so it lives here.
"""

from __future__ import annotations

from typing import Any

import httpx2
from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources import core_v1

from storage.runtime import kube as kube_api

Obj = dict[str, Any]
NODE = "Node"
CSI_DRIVER = "CSIDriver"
CSI_STORAGE_CAPACITY = "CSIStorageCapacity"
VOLUME_ATTACHMENT = "VolumeAttachment"


class SchedulingKube(kube_api.Kube):
    """`Kube` plus `bind_pod`."""

    async def bind_pod(self, namespace: str, name: str, node: str, uid: str = "") -> None:
        """POST pods/{name}/binding (what kube-scheduler's DefaultBinder does)."""
        binding = core_v1.PodBinding(
            metadata=ObjectMeta(name=name, namespace=namespace, uid=uid or None),
            target=ObjectReference(apiVersion="v1", kind="Node", name=node))
        try:
            await self._api.create(binding, name=name, namespace=namespace)
        except (ApiError, httpx2.HTTPError) as e:
            raise kube_api._translate(e) from e
        except (TypeError, KeyError, ValueError):
            # The answer is a Status, not a Binding; lightkube may fail to decode it after
            # the server succeeded (errors would have been ApiError above).
            pass
