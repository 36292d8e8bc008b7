"""The store the API layer talks to: the revision log plus its watchers and compaction.

Every write goes to the log and, once committed, to the broadcaster; watchers that start
from an older revision first replay the log, then follow the broadcast without gap or
repeat. A background thread compacts the log, keeping at least the last 1000 revisions and
the last 5 minutes, as the API promises.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator

from apiserver.store import errors, log, watch

logger = logging.getLogger(__name__)


class Store:
    """Keys and versioned values; see `log.Log` for the write rules."""

    def __init__(self, url: str, *, compact_every: float = 60.0,
                 keep_revisions: int = 1000, keep_seconds: float = 300.0) -> None:
        self.url = url
        self.broadcaster = watch.Broadcaster()
        # Events are published by the log inside its write lock, so in revision order.
        self.log = log.Log(log.make_engine(url), publish=self.broadcaster.publish)
        self._keep = (keep_revisions, keep_seconds)
        self._stop = threading.Event()
        self._compactor = threading.Thread(target=self._compact_loop, args=(compact_every,),
                                           name="store-compactor", daemon=True)
        self._compactor.start()

    @property
    def revision(self) -> int:
        return self.log.revision

    def get(self, key: str, *, for_write: bool = False) -> log.Row | None:
        return self.log.get(key, for_write=for_write)

    def list(self, prefix: str, *, revision: int = 0, start_after: str = "",
             limit: int = 0) -> tuple[int, list[log.Row]]:
        return self.log.list(prefix, revision=revision, start_after=start_after, limit=limit)

    def create(self, key: str, value: bytes) -> log.Event:
        return self.log.create(key, value)

    def update(self, key: str, value: bytes, expected_revision: int) -> log.Event:
        return self.log.update(key, value, expected_revision)

    def delete(self, key: str, expected_revision: int = 0) -> log.Event:
        return self.log.delete(key, expected_revision)

    async def watch(self, prefix: str, revision: int) -> AsyncIterator[log.Event | None]:
        """Events under `prefix` after `revision` (0 = from now), in revision order.

        Yields None once if this watcher fell too far behind and was dropped. Raises
        `errors.Compacted` when `revision` is older than the compaction horizon.
        """
        sub = self.broadcaster.subscribe(prefix)
        try:
            last = revision or self.log.revision
            if revision:
                replay = self.log.events_after(prefix, revision)
                for event in replay:
                    yield event
                if replay:
                    last = replay[-1].row.revision
            while True:
                live = await sub.queue.get()
                if live is None:
                    yield None
                    return
                sub.taken(live)
                if live.row.revision > last:
                    last = live.row.revision
                    yield live
        finally:
            self.broadcaster.unsubscribe(sub)

    def _compact_loop(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self.log.compact(keep_revisions=self._keep[0], keep_seconds=self._keep[1])
            except Exception:  # compaction retries next round
                logger.exception("compaction failed; will retry")

    def compact(self) -> int:
        return self.log.compact(keep_revisions=self._keep[0], keep_seconds=self._keep[1])

    def close(self) -> None:
        self._stop.set()
        self.log.close()


__all__ = ["Store", "errors"]
