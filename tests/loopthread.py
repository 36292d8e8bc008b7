"""Running async controllers inside a test: one event loop in its own thread.

API tests start real controllers in-process against a real apiserver; this base class owns
the loop, the thread and a clean stop, so each test only says what runs (`run`).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Self


class LoopThread:
    """Runs `self.run()` on a private event loop in a daemon thread; `stop()` cancels it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    async def run(self) -> None:
        raise NotImplementedError

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(self.run())
        try:
            self.loop.run_until_complete(self.task)
        except asyncio.CancelledError:
            pass  # stopped
        except BaseException as e:  # noqa: BLE001 - recorded for the test to inspect
            self.error = e

    def start_thread(self) -> None:
        self.thread.start()

    def start(self) -> Self:
        """Start the thread; returns self, so a fixture reads `running = Stack(...).start()`."""
        self.start_thread()
        return self

    def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(15)
