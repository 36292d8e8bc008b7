"""The revision log on real SQLite and real PostgreSQL: concurrency, history, compaction."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from apiserver.store import backend, errors
from tests.conftest import fresh_postgres_database


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[backend.Store]:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if request.param == "sqlite" \
        else fresh_postgres_database()
    s = backend.Store(url, compact_every=3600, keep_revisions=2, keep_seconds=0)
    yield s
    s.close()


def test_revisions_are_global_and_increase(store: backend.Store) -> None:
    a = store.create("/registry/pods/ns/a", b"1").row.revision
    b = store.create("/registry/pods/ns/b", b"1").row.revision
    c = store.update("/registry/pods/ns/a", b"2", a).row.revision
    assert a < b < c == store.revision


def test_create_twice_is_key_exists(store: backend.Store) -> None:
    store.create("/registry/pods/ns/a", b"1")
    with pytest.raises(errors.KeyExists):
        store.create("/registry/pods/ns/a", b"2")


def test_update_from_stale_revision_conflicts(store: backend.Store) -> None:
    first = store.create("/registry/pods/ns/a", b"1").row.revision
    store.update("/registry/pods/ns/a", b"2", first)
    with pytest.raises(errors.RevisionConflict):
        store.update("/registry/pods/ns/a", b"3", first)
    assert store.get("/registry/pods/ns/a").value == b"2"  # type: ignore[union-attr]


def test_concurrent_updates_from_one_revision_exactly_one_wins(store: backend.Store) -> None:
    rev = store.create("/registry/pods/ns/a", b"0").row.revision
    outcomes: list[str] = []

    def writer(i: int) -> None:
        try:
            store.update("/registry/pods/ns/a", str(i).encode(), rev)
            outcomes.append("won")
        except errors.RevisionConflict:
            outcomes.append("conflict")
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("won") == 1 and outcomes.count("conflict") == 7


def test_delete_leaves_tombstone_and_allows_recreate(store: backend.Store) -> None:
    rev = store.create("/registry/pods/ns/a", b"1").row.revision
    gone = store.delete("/registry/pods/ns/a", rev)
    assert gone.type == "DELETED" and gone.row.value == b"1"
    assert store.get("/registry/pods/ns/a") is None
    again = store.create("/registry/pods/ns/a", b"2")
    assert again.type == "ADDED" and again.row.create_revision == again.row.revision


def test_list_is_consistent_at_a_revision(store: backend.Store) -> None:
    store.create("/registry/pods/ns/a", b"1")
    at = store.create("/registry/pods/ns/b", b"1").row.revision
    store.create("/registry/pods/ns/c", b"1")
    store.delete("/registry/pods/ns/a")
    _, now = store.list("/registry/pods/")
    _, then = store.list("/registry/pods/", revision=at)
    assert [r.key for r in now] == ["/registry/pods/ns/b", "/registry/pods/ns/c"]
    assert [r.key for r in then] == ["/registry/pods/ns/a", "/registry/pods/ns/b"]


def test_prefix_does_not_leak_into_neighbours(store: backend.Store) -> None:
    store.create("/registry/pods/ns/a", b"1")
    store.create("/registry/pods/ns2/a", b"1")
    store.create("/registry/podsx/ns/a", b"1")
    _, rows = store.list("/registry/pods/ns/")
    assert [r.key for r in rows] == ["/registry/pods/ns/a"]


def test_compaction_keeps_latest_and_expires_old_revisions(store: backend.Store) -> None:
    rev = store.create("/registry/pods/ns/a", b"1").row.revision
    for i in range(5):
        rev = store.update("/registry/pods/ns/a", str(i).encode(), rev).row.revision
    store.create("/registry/pods/ns/gone", b"x")
    store.delete("/registry/pods/ns/gone")
    store.create("/registry/pods/ns/z", b"1")
    horizon = store.compact()
    assert horizon == store.revision - 2
    assert store.get("/registry/pods/ns/a").value == b"4"  # type: ignore[union-attr]
    with pytest.raises(errors.Compacted):
        store.list("/registry/pods/", revision=1)
    with pytest.raises(errors.Compacted):
        store.log.events_after("/registry/pods/", 1)
    assert _names(store).count("/registry/pods/ns/a") == 1
    # The tombstone is still inside the horizon, so the deleted key's rows stay ...
    assert "/registry/pods/ns/gone" in _names(store)
    store.create("/registry/pods/ns/y", b"1")
    store.create("/registry/pods/ns/x", b"1")
    store.compact()
    # ... until the horizon passes it.
    assert "/registry/pods/ns/gone" not in _names(store)


def _names(store: backend.Store) -> list[str]:
    with sa.create_engine(store.url).connect() as conn:
        return list(conn.execute(sa.text("SELECT name FROM kine ORDER BY id")).scalars())


def test_watch_replays_history_then_follows_live(store: backend.Store) -> None:
    start = store.create("/registry/pods/ns/a", b"1").row.revision
    store.update("/registry/pods/ns/a", b"2", start)

    async def run() -> list[tuple[str, bytes]]:
        seen: list[tuple[str, bytes]] = []
        watch = store.watch("/registry/pods/", start)
        async for event in watch:
            assert event is not None
            seen.append((event.type, event.row.value))
            if len(seen) == 1:
                await asyncio.to_thread(store.delete, "/registry/pods/ns/a")
            if len(seen) == 2:
                await watch.aclose()  # type: ignore[attr-defined]
                break
        return seen
    assert asyncio.run(run()) == [("MODIFIED", b"2"), ("DELETED", b"2")]


def test_revision_survives_reopen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    s = backend.Store(url)
    last = s.create("/registry/pods/ns/a", b"1").row.revision
    s.close()
    reopened = backend.Store(url)
    assert reopened.revision == last
    assert reopened.create("/registry/pods/ns/b", b"1").row.revision == last + 1
    reopened.close()


def test_reads_past_the_value_cache_budget_stay_right(store: backend.Store) -> None:
    # A budget of three small values: most reads miss the cache and go to the database,
    # the rest hit it; each must see the latest value, and deleted keys none.
    store.log._values.budget = 3 * len(b"value-00-0")
    for i in range(20):
        key = f"/registry/pods/ns/p{i:02d}"
        rev = store.create(key, f"value-{i:02d}-0".encode()).row.revision
        store.update(key, f"value-{i:02d}-1".encode(), rev)
    for i in range(0, 20, 3):
        key = f"/registry/pods/ns/p{i:02d}"
        store.delete(key, store.get(key).revision)  # type: ignore[union-attr]
    assert store.log._values.size <= store.log._values.budget
    for i in range(20):
        row = store.get(f"/registry/pods/ns/p{i:02d}", for_write=i % 2 == 0)
        if i % 3 == 0:
            assert row is None
        else:
            assert row is not None and row.value == f"value-{i:02d}-1".encode()
