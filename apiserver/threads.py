"""Blocking calls (the registry, the store) run off the event loop, in one thread pool that
every part of the server uses.

Every request hands at least one call to a thread, so the hand-off is on every request's
path. Starlette's `run_in_threadpool` goes through anyio's worker threads (a `queue.Queue`
with a Condition per call, plus capacity-limiter bookkeeping: about a tenth of the
apiserver's CPU under `bench/provisioning.py`); `loop.run_in_executor` chains a
`concurrent.futures.Future` to an asyncio one (still 4-5% in py-spy, and an extra turn of
the loop before the caller resumes). This pool takes work from a C `SimpleQueue` and answers
the caller's asyncio future directly from the worker with `call_soon_threadsafe`. Forty
threads at most, started as needed: a call blocks at most on the store's group commit,
which serves all waiting writers at once.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

MAX_THREADS = 40
_Work = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any],
              tuple[Any, ...], dict[str, Any]]


class _Pool:
    """Worker threads fed from one queue; each answers its caller's future on its loop."""

    def __init__(self, max_threads: int) -> None:
        self.max_threads = max_threads
        self._work: queue.SimpleQueue[_Work] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def submit(self, work: _Work) -> None:
        self._work.put(work)
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # an idle thread takes it
                return
            if self._threads >= self.max_threads:
                return  # the next thread to finish takes it
            self._threads += 1
            name = f"apiserver-{self._threads}"
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def _serve(self) -> None:
        while True:
            loop, future, fn, args, kwargs = self._work.get()
            try:
                result = fn(*args, **kwargs)
            except BaseException as e:  # noqa: BLE001 - the caller's task raises it
                _answer(loop, future, None, e)
            else:
                _answer(loop, future, result, None)
            del loop, future, fn, args, kwargs  # nothing kept alive while idle
            with self._lock:
                self._idle += 1


def _answer(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], result: Any,
            error: BaseException | None) -> None:
    def settle() -> None:
        if future.cancelled():
            return  # the caller went away; the call itself has finished regardless
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:
        pass  # the loop is closed: nobody is waiting any more


POOL = _Pool(MAX_THREADS)


async def run(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args, **kwargs)` in the pool; the caller's task waits without blocking the loop.
    Cancelling the caller does not stop the call (as with `run_in_executor`)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    POOL.submit((loop, future, fn, args, kwargs))
    return await future
