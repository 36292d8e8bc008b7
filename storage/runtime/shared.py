"""One informer per kind, shared by all controllers of a controller-manager.

Several controllers watch PVCs and pods; sharing the informer means one list and one watch
per kind however many controllers look, as client-go's SharedInformerFactory does. Controllers
ask for informers and add their handlers first; then `run` starts them all.
"""

from __future__ import annotations

import asyncio

from storage.runtime import informer
from storage.runtime import kube as kube_api


class Informers:
    def __init__(self, kube: kube_api.Kube, resync: float = 0.0) -> None:
        self.kube = kube
        self.resync = resync
        self._by_kind: dict[str, informer.Informer] = {}

    def for_kind(self, kind: str) -> informer.Informer:
        if kind not in self._by_kind:
            self._by_kind[kind] = informer.Informer(self.kube, kind, resync=self.resync)
        return self._by_kind[kind]

    async def run(self) -> None:
        await asyncio.gather(*(i.run() for i in self._by_kind.values()))

    async def wait_synced(self) -> None:
        await asyncio.gather(*(i.wait_synced() for i in self._by_kind.values()))
