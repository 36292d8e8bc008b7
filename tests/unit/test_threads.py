"""The apiserver's thread pool: results, errors and cancellation reach the right caller."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from apiserver import threads


def test_results_and_errors_come_back_to_their_callers() -> None:
    def work(i: int) -> tuple[int, str]:
        time.sleep(0.01)
        if i % 5 == 0:
            raise ValueError(f"bad {i}")
        return i, threading.current_thread().name

    async def scenario() -> list[object]:
        return await asyncio.gather(*(threads.run(work, i) for i in range(60)),
                                    return_exceptions=True)
    got = asyncio.run(scenario())
    for i, outcome in enumerate(got):
        if i % 5 == 0:
            assert isinstance(outcome, ValueError) and str(outcome) == f"bad {i}"
        else:
            assert isinstance(outcome, tuple) and outcome[0] == i
            assert outcome[1].startswith("apiserver")  # never on the loop's thread


def test_a_cancelled_caller_leaves_the_pool_working() -> None:
    started = threading.Event()

    def slow() -> str:
        started.set()
        time.sleep(0.2)
        return "done"

    async def scenario() -> str:
        task = asyncio.ensure_future(threads.run(slow))
        while not started.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await threads.run(lambda: "next")
    assert asyncio.run(scenario()) == "next"
