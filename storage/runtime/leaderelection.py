"""Leader election on a coordination.k8s.io/v1 Lease, so two controller-managers never both act.

This follows client-go's leaderelection: a candidate takes the Lease when it is free or its
holder has not renewed it for `lease_duration` (measured on our own clock from when we last
saw the record change, so clock skew between machines does not matter); the leader renews
every `retry_period` and, if it could not renew for `renew_deadline`, stops acting *before*
the lease can expire for others (renew_deadline < lease_duration). Every write carries the
resourceVersion we read, so two candidates racing for a free lease cannot both win. A leader
that stops cleanly releases the lease, so the next one takes over at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from storage.runtime import kube as kube_api

Obj = dict[str, Any]
log = logging.getLogger(__name__)


class LeadershipLost(Exception):
    """The lease could not be renewed within renew_deadline; everything led was stopped."""


class ConfigError(ValueError):
    """Leader election timings that would let two leaders overlap."""


@dataclass(frozen=True)
class LeaseConfig:
    name: str
    identity: str
    namespace: str = "kube-system"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.renew_deadline < self.lease_duration:
            raise ConfigError("renew_deadline must be shorter than lease_duration")
        if not 0 < self.retry_period < self.renew_deadline:
            raise ConfigError("retry_period must be positive and shorter than renew_deadline")


async def _stop(task: asyncio.Task[None]) -> None:
    if not task.done():
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(self, kube: kube_api.Kube, config: LeaseConfig) -> None:
        self.kube = kube
        self.config = config
        self._observed: Obj | None = None
        self._observed_at = 0.0
        self.is_leader = False

    async def run(self, lead: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Wait to become leader, run `lead()` while leading; release when it returns.

        Raises LeadershipLost (after cancelling `lead`) if the lease slips away.
        """
        while not await self.try_acquire_or_renew():
            await asyncio.sleep(self.config.retry_period)
        log.info("became leader on lease %s/%s as %s", self.config.namespace, self.config.name,
                 self.config.identity)
        self.is_leader = True
        task = asyncio.create_task(lead())
        try:
            await self._renew_while(task)
        except LeadershipLost:
            await _stop(task)
            raise
        except asyncio.CancelledError:
            await _stop(task)  # shutting down: hand the lease over quickly
            await asyncio.shield(self.release())
            raise
        finally:
            self.is_leader = False
        await self.release()
        task.result()  # re-raise what stopped the led work, if anything

    async def _renew_while(self, task: asyncio.Task[None]) -> None:
        last_renew = time.monotonic()
        while not task.done():
            await asyncio.wait({task}, timeout=self.config.retry_period)
            if task.done():
                return
            if await self._renew_once():
                last_renew = time.monotonic()
            elif time.monotonic() - last_renew > self.config.renew_deadline:
                raise LeadershipLost(f"failed to renew lease {self.config.name}")

    async def _renew_once(self) -> bool:
        try:
            return await asyncio.wait_for(self.try_acquire_or_renew(),
                                          self.config.retry_period)
        except TimeoutError:
            return False

    async def try_acquire_or_renew(self) -> bool:
        try:
            return await self._try()
        except kube_api.KubeError as e:
            log.debug("lease %s: %s", self.config.name, e)
            return False

    async def _try(self) -> bool:
        cfg = self.config
        try:
            lease = await self.kube.get("Lease", cfg.name, cfg.namespace)
        except kube_api.NotFound:
            await self.kube.create("Lease", self._lease({"metadata": {}}, transitions=0))
            return True
        spec = lease.get("spec") or {}
        if spec != self._observed:
            self._observed, self._observed_at = spec, time.monotonic()
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or cfg.lease_duration)
        if holder and holder != cfg.identity and \
                time.monotonic() < self._observed_at + duration:
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (holder != cfg.identity)
        updated = await self.kube.replace("Lease", self._lease(lease, transitions))
        self._observed, self._observed_at = updated.get("spec") or {}, time.monotonic()
        return True

    def _lease(self, lease: Obj, transitions: int) -> Obj:
        cfg = self.config
        old = lease.get("spec") or {}
        now = _micro_time()
        acquire = old.get("acquireTime") if old.get("holderIdentity") == cfg.identity else now
        meta = dict(lease.get("metadata") or {})
        meta.update({"name": cfg.name, "namespace": cfg.namespace})
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                "spec": {"holderIdentity": cfg.identity,
                         "leaseDurationSeconds": max(1, round(cfg.lease_duration)),
                         "acquireTime": acquire or now, "renewTime": now,
                         "leaseTransitions": transitions}}

    async def release(self) -> None:
        """Give the lease up (holder cleared, 1 s duration) so a successor need not wait."""
        cfg = self.config
        try:
            lease = await self.kube.get("Lease", cfg.name, cfg.namespace)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != cfg.identity:
                return
            lease["spec"] = {**spec, "holderIdentity": "", "leaseDurationSeconds": 1,
                             "renewTime": _micro_time()}
            await self.kube.replace("Lease", lease)
        except kube_api.KubeError as e:
            log.warning("could not release lease %s: %s", cfg.name, e)
