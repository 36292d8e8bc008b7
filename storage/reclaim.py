"""The hook through which the PV controller reclaims storage it did not create itself.

A Released volume whose policy is Delete or Recycle needs its backing storage deleted or
scrubbed, which only the driver that provisioned it knows how to do. The provisioning work
implements `Reclaimer` once per provisioner name (the value it writes into the PV's
`pv.kubernetes.io/provisioned-by` annotation) and registers it in a `Reclaimers`; the
controller owns the loop (phases, events, retries with backoff, deleting the PV object).
As in Kubernetes, a volume provisioned by an external provisioner that is not ours is left to
it, and a volume nobody can delete gets phase Failed and a VolumeFailedDelete event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from storage import matching

Obj = dict[str, Any]


class ReclaimError(Exception):
    """Reclaiming failed; the message is shown to the user in the event and status."""


class VolumeInUse(ReclaimError):
    """The storage is still in use somewhere; retry later without marking the PV Failed."""


@runtime_checkable
class Reclaimer(Protocol):
    """What a provisioner lets the PV controller do with the volumes it made."""

    name: str  # the provisioner name, as in pv.kubernetes.io/provisioned-by

    async def delete(self, volume: Mapping[str, Any]) -> None:
        """Delete the backing storage of `volume`. Idempotent: already gone is success.

        Raise ReclaimError (or VolumeInUse) on failure; the controller retries with backoff.
        """

    async def recycle(self, volume: Mapping[str, Any]) -> None:
        """Remove every file of `volume` so it can serve a new claim. Idempotent.

        Raise ReclaimError on failure, or NotImplementedError if recycling is unsupported.
        """


@dataclass(frozen=True)
class External:
    """Provisioned by a provisioner that is not ours: its own deleter will act."""

    name: str


@dataclass(frozen=True)
class NoPlugin:
    """Nobody can reclaim this volume (statically created, or an unknown in-tree plugin)."""


class Reclaimers:
    """Registered reclaimers by provisioner name."""

    def __init__(self, reclaimers: Iterable[Reclaimer] = ()) -> None:
        self._by_name: dict[str, Reclaimer] = {}
        for r in reclaimers:
            self.register(r)

    def register(self, reclaimer: Reclaimer) -> None:
        self._by_name[reclaimer.name] = reclaimer

    def all(self) -> list[Reclaimer]:
        return list(self._by_name.values())

    def names(self) -> frozenset[str]:
        return frozenset(self._by_name)

    def for_volume(self, volume: Mapping[str, Any]) -> Reclaimer | External | NoPlugin:
        """findDeletablePlugin: by provisioned-by; an unknown non-"kubernetes.io/" name is
        an external provisioner's volume; anything else has no plugin."""
        provisioner = matching.annotations_of(volume).get(matching.ANN_DYNAMICALLY_PROVISIONED)
        if provisioner:
            if provisioner in self._by_name:
                return self._by_name[provisioner]
            if not provisioner.startswith("kubernetes.io/"):
                return External(provisioner)
        return NoPlugin()
