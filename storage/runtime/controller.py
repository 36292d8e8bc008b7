"""The worker loop shared by every controller: take a key, reconcile it, decide what next.

A controller is wiring (informer handlers that queue keys) plus `reconcile(key)`, which
re-reads state and is safe to run twice. This module owns what happens around it: success
forgets the key's failure history, `Requeue(delay)` asks to look again later without it
being a failure, a version conflict is routine (someone else wrote first: backoff and re-read),
an object deleted under our feet (404) likewise, and any other error is logged and retried
with per-key exponential backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from storage.runtime import kube as kube_api
from storage.runtime import workqueue

log = logging.getLogger(__name__)
Reconcile = Callable[[str], Awaitable[None]]


class Requeue(Exception):
    """Not an error: look at this key again after `delay` seconds."""

    def __init__(self, delay: float, why: str = "") -> None:
        super().__init__(why or f"requeue after {delay}s")
        self.delay = delay


class RetryLater(Exception):
    """An expected failure already reported (e.g. as an event): retry with backoff, quietly."""


async def process_one(queue: workqueue.WorkQueue, reconcile: Reconcile, key: str) -> None:
    """Run `reconcile(key)` once and requeue according to its outcome."""
    try:
        await reconcile(key)
        queue.forget(key)
    except Requeue as r:
        queue.forget(key)
        queue.add_after(key, r.delay)
    except (kube_api.Conflict, kube_api.NotFound, RetryLater) as e:
        # Routine: someone wrote (or deleted) first; the cache catches up, then we retry.
        delay = queue.add_rate_limited(key)
        log.debug("%s %s: %s; retry in %.3fs", queue.name, key, e, delay)
    except asyncio.CancelledError:
        raise
    except Exception:
        delay = queue.add_rate_limited(key)
        log.exception("%s %s failed; retry in %.3fs", queue.name, key, delay)
    finally:
        queue.done(key)


async def run_worker(queue: workqueue.WorkQueue, reconcile: Reconcile) -> None:
    """Process keys until the queue shuts down."""
    while True:
        try:
            key = await queue.get()
        except workqueue.ShutDown:
            return
        await process_one(queue, reconcile, key)


async def run_workers(queue: workqueue.WorkQueue, reconcile: Reconcile, count: int) -> None:
    """`count` workers on one queue; cancelling this cancels them and shuts the queue down."""
    try:
        await asyncio.gather(*(run_worker(queue, reconcile) for _ in range(count)))
    finally:
        queue.shutdown()


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel background tasks and wait until each has finished, whatever it raised."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
