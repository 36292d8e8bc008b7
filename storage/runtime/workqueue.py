"""A rate-limited work queue of keys, with client-go's semantics, for asyncio workers.

Controllers queue object keys, not objects: a key added ten times before a worker takes it is
processed once (the queue is a set), a key is never processed by two workers at once (if it
is added while being processed it is queued again when the worker calls `done`), and a key
whose reconcile failed comes back after a per-key exponential backoff that `forget` resets.
`add_after` delays a key without counting as a failure (e.g. "check again in 10 s").
Beyond client-go, a key added as urgent (the next step of something half done, such as a
claim whose volume now exists) is served before the others, in its own arrival order: under
a burst of new keys a half-done one then waits for the workers, not for the whole burst.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field


class ShutDown(Exception):
    """`get` was called on (or waited in) a queue that is shutting down."""


@dataclass(frozen=True)
class Backoff:
    """Per-key exponential backoff: base * 2**failures, capped (client-go's defaults)."""

    base: float = 0.005
    cap: float = 300.0

    def delay(self, failures: int) -> float:
        return float(min(self.cap, self.base * (2 ** min(failures, 62))))


@dataclass
class _Delayed:
    heap: list[tuple[float, int, str]] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=itertools.count)


class WorkQueue:
    """Dedup'd FIFO of keys + delayed adds + per-key failure counts."""

    def __init__(self, name: str = "", backoff: Backoff | None = None) -> None:
        self.name = name
        self.backoff = backoff or Backoff()
        self._queue: deque[str] = deque()
        self._urgent: deque[str] = deque()
        self._urgent_keys: set[str] = set()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._delayed = _Delayed()
        # Idle workers, each woken alone: an Event woke every idle worker on every add, and
        # all but one went back to sleep (a third of the PV controller's loop turns).
        self._idle: deque[asyncio.Future[None]] = deque()
        self._timer_changed = asyncio.Event()
        self._shutting_down = False
        self._timer: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._queue) + len(self._urgent)

    def add(self, key: str, *, urgent: bool = False) -> None:
        if self._shutting_down:
            return
        if key in self._dirty:
            if urgent and key not in self._urgent_keys:
                self._promote(key)
            return
        self._dirty.add(key)
        if urgent:
            self._urgent_keys.add(key)
        if key in self._processing:
            return  # `done` puts it back; no two workers on one key
        (self._urgent if urgent else self._queue).append(key)
        self._wake_one()

    def _wake_one(self) -> None:
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _promote(self, key: str) -> None:
        """A key waiting in the ordinary lane became urgent (rare: a linear removal)."""
        self._urgent_keys.add(key)
        if key not in self._processing:
            self._queue.remove(key)
            self._urgent.append(key)

    def add_after(self, key: str, delay: float) -> None:
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        heapq.heappush(self._delayed.heap, (loop.time() + delay, next(self._delayed.counter), key))
        self._ensure_timer()
        self._timer_changed.set()

    def add_rate_limited(self, key: str) -> float:
        """Requeue after this key's next backoff step; returns the delay chosen."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = self.backoff.delay(failures)
        self.add_after(key, delay)
        return delay

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: str) -> None:
        """The key succeeded: its next failure starts the backoff from the base again."""
        self._failures.pop(key, None)

    async def get(self) -> str:
        while not self._queue and not self._urgent:
            if self._shutting_down:
                raise ShutDown(self.name)
            waiter = asyncio.get_running_loop().create_future()
            self._idle.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and (self._queue or self._urgent):
                    self._wake_one()  # woken for a key it will not take: pass it on
                raise
        key = self._urgent.popleft() if self._urgent else self._queue.popleft()
        self._dirty.discard(key)
        self._urgent_keys.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            (self._urgent if key in self._urgent_keys else self._queue).append(key)
            self._wake_one()

    def shutdown(self) -> None:
        self._shutting_down = True
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
        if self._timer is not None:
            self._timer.cancel()

    def _ensure_timer(self) -> None:
        if self._timer is None or self._timer.done():
            self._timer = asyncio.get_running_loop().create_task(self._run_timer())

    async def _run_timer(self) -> None:
        loop = asyncio.get_running_loop()
        heap = self._delayed.heap
        while heap:
            when = heap[0][0]
            if when <= loop.time():
                _, _, key = heapq.heappop(heap)
                self.add(key)
                continue
            self._timer_changed.clear()
            try:
                await asyncio.wait_for(self._timer_changed.wait(), when - loop.time())
            except TimeoutError:
                pass
