"""Blocking calls (the registry, the store) run off the event loop, in one thread pool that
every part of the server uses.

Starlette's `run_in_threadpool` goes through anyio's worker threads, whose hand-off (a
`queue.Queue` with a Condition per call, plus capacity-limiter bookkeeping) took about a tenth
of the apiserver's CPU under `bench/provisioning.py` (py-spy). A `ThreadPoolExecutor` hands
work over through a C `SimpleQueue`. Forty threads, as anyio's default limit: a call blocks
at most on the store's group commit, which serves all waiting writers at once.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

EXECUTOR = ThreadPoolExecutor(max_workers=40, thread_name_prefix="apiserver")


async def run(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args, **kwargs)` in the pool; the caller's task waits without blocking the loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(EXECUTOR, functools.partial(fn, *args, **kwargs))
