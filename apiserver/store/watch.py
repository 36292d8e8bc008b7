"""Fan-out of committed changes to watchers.

The log publishes every committed event here; each watcher has a bounded queue on its own
event loop. A watcher that stops reading fills its queue and is dropped alone (its stream
ends, the client re-watches from its last revision), so one slow client neither blocks
writers nor grows memory without bound.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from apiserver.store.log import Event

QUEUE_LIMIT = 10_000
BYTES_LIMIT = 32 * 1024 * 1024


@dataclass(eq=False)
class Subscription:
    """One watcher's view: events under `prefix`, delivered on `loop` into `queue`."""

    prefix: str
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Event | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    overflowed: bool = False
    queued_bytes: int = 0

    def offer(self, event: Event) -> None:
        """Runs on the subscription's loop; a full queue ends this watcher only.

        Full means 10,000 events or 32 MiB of values waiting, whichever comes first, so
        a stalled client of large objects cannot pin the server's memory.
        """
        if self.overflowed:
            return
        size = len(event.row.value) + len(event.prev_value or b"")
        if self.queued_bytes + size > BYTES_LIMIT:
            self.overflowed = True
            self._drain_and_close()
            return
        try:
            self.queue.put_nowait(event)
            self.queued_bytes += size
        except asyncio.QueueFull:
            self.overflowed = True
            self._drain_and_close()

    def taken(self, event: Event) -> None:
        """The consumer took `event` off the queue."""
        self.queued_bytes -= len(event.row.value) + len(event.prev_value or b"")

    def _drain_and_close(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queued_bytes = 0
        self.queue.put_nowait(None)


class Broadcaster:
    """Thread-safe publisher of events to asyncio subscribers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: set[Subscription] = set()

    def subscribe(self, prefix: str) -> Subscription:
        sub = Subscription(prefix, asyncio.get_running_loop())
        with self._lock:
            self._subscriptions.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(sub)

    def publish(self, event: Event) -> None:
        with self._lock:
            targets = [s for s in self._subscriptions if event.row.key.startswith(s.prefix)]
        for sub in targets:
            try:
                sub.loop.call_soon_threadsafe(sub.offer, event)
            except RuntimeError:
                # The watcher's loop is closed: it is gone.
                self.unsubscribe(sub)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._subscriptions)
