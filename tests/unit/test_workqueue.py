"""The work queue keeps client-go's promises: dedup, one worker per key, per-key backoff."""

from __future__ import annotations

import asyncio

import pytest

from storage.runtime import workqueue


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 5))


def test_a_key_added_twice_is_processed_once() -> None:
    async def scenario() -> list[str]:
        q = workqueue.WorkQueue()
        for key in ("a", "b", "a"):
            q.add(key)
        got = [await q.get(), await q.get()]
        assert len(q) == 0
        return got
    assert run(scenario()) == ["a", "b"]


def test_a_key_added_while_processing_comes_back_only_after_done() -> None:
    async def scenario() -> None:
        q = workqueue.WorkQueue()
        q.add("a")
        assert await q.get() == "a"
        q.add("a")
        assert len(q) == 0  # not handed to a second worker while the first holds it
        q.done("a")
        assert await q.get() == "a"
    run(scenario())


@pytest.mark.parametrize(("failures", "expected"), [
    (0, 0.005), (1, 0.01), (2, 0.02), (10, 5.12), (30, 300.0), (1000, 300.0)])
def test_backoff_doubles_per_failure_up_to_the_cap(failures: int, expected: float) -> None:
    assert workqueue.Backoff().delay(failures) == pytest.approx(expected)


def test_rate_limited_adds_back_off_per_key_and_forget_resets() -> None:
    async def scenario() -> None:
        q = workqueue.WorkQueue(backoff=workqueue.Backoff(0.01, 1.0))
        delays = [q.add_rate_limited("a") for _ in range(3)]
        assert delays == [0.01, 0.02, 0.04]
        assert q.add_rate_limited("b") == 0.01  # another key has its own history
        q.forget("a")
        assert q.failures("a") == 0
        assert q.add_rate_limited("a") == 0.01
    run(scenario())


def test_add_after_delivers_in_time_order() -> None:
    async def scenario() -> None:
        q = workqueue.WorkQueue()
        loop = asyncio.get_running_loop()
        start = loop.time()
        q.add_after("late", 0.2)
        q.add_after("soon", 0.05)
        assert await q.get() == "soon"
        assert await q.get() == "late"
        assert loop.time() - start >= 0.19
    run(scenario())


def test_shutdown_wakes_waiting_workers() -> None:
    async def scenario() -> None:
        q = workqueue.WorkQueue()
        waiter = asyncio.create_task(q.get())
        await asyncio.sleep(0.01)
        q.shutdown()
        with pytest.raises(workqueue.ShutDown):
            await waiter
        q.add("ignored")
        assert len(q) == 0
    run(scenario())


def test_urgent_keys_go_first_in_their_own_arrival_order() -> None:
    async def scenario() -> list[str]:
        q = workqueue.WorkQueue()
        for key in ("new-1", "new-2"):
            q.add(key)
        q.add("half-1", urgent=True)
        q.add("new-3")
        q.add("half-2", urgent=True)
        q.add("new-2", urgent=True)  # promoted out of the ordinary lane, not duplicated
        got = [await q.get() for _ in range(5)]
        assert len(q) == 0
        return got
    assert run(scenario()) == ["half-1", "half-2", "new-2", "new-1", "new-3"]


def test_an_urgent_add_while_processing_comes_back_urgent_after_done() -> None:
    async def scenario() -> list[str]:
        q = workqueue.WorkQueue()
        q.add("a")
        assert await q.get() == "a"
        q.add("b")
        q.add("a", urgent=True)
        assert len(q) == 1  # only b: a is still with its worker
        q.done("a")
        return [await q.get(), await q.get()]
    assert run(scenario()) == ["a", "b"]


def test_an_add_wakes_one_idle_worker_and_a_cancelled_one_passes_its_key_on() -> None:
    async def scenario() -> tuple[list[str], int]:
        q = workqueue.WorkQueue()
        workers = [asyncio.create_task(q.get()) for _ in range(3)]
        await asyncio.sleep(0)  # all three idle
        q.add("a")
        workers[0].cancel()  # woken for "a", then cancelled before it could take it
        await asyncio.sleep(0.01)
        got = [w.result() for w in workers[1:] if w.done()]
        still_idle = sum(1 for w in workers[1:] if not w.done())
        for w in workers:
            w.cancel()
        return got, still_idle
    assert run(scenario()) == (["a"], 1)
