"""The revision log: one SQL table where every write appends a row.

Kine's design on SQLAlchemy 2. A row is one version of one key; its `id` is the global
revision, which the API shows as `resourceVersion`. Optimistic concurrency is one comparison
(the key's latest row must be the revision the writer read) guarded by a unique index on
`(name, prev_revision)`, so two writers racing from the same version cannot both append.
Deletes append a tombstone that keeps the last value, so a watch can still report it.

Writes are serialised by one lock in this process (the apiserver is the only writer), which
also makes revisions commit in order: a watcher that has seen revision N has seen everything
below N. SQLite runs in WAL mode with synchronous=FULL: an acknowledged write survives a
`kill -9` and a power cut. PostgreSQL is used by URL.
"""

from __future__ import annotations

import builtins
import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from apiserver.store import errors

metadata = sa.MetaData()

kine = sa.Table(
    "kine",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=False),
    sa.Column("name", sa.String(630, collation="C").with_variant(sa.String(630), "sqlite"),
              nullable=False),
    sa.Column("created", sa.SmallInteger, nullable=False),
    sa.Column("deleted", sa.SmallInteger, nullable=False),
    sa.Column("create_revision", sa.BigInteger, nullable=False),
    sa.Column("prev_revision", sa.BigInteger, nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("value", sa.LargeBinary, nullable=False),
    sa.Index("kine_name_prev_revision_uindex", "name", "prev_revision", unique=True),
    sa.Index("kine_name_id_index", "name", "id"),
)

meta_table = sa.Table(
    "storagelab_meta",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

COMPACT_KEY = "compact_revision"
# Latest values kept in memory for reads and writes (they are immutable per revision).
VALUE_CACHE_BYTES = 64 << 20


@dataclass(frozen=True)
class Row:
    """One version of a key as the store holds it."""

    key: str
    revision: int
    create_revision: int
    prev_revision: int
    created: bool
    deleted: bool
    value: bytes


@dataclass(frozen=True)
class Event:
    """A change to one key: the row written and, when there was one, the value before it."""

    row: Row
    prev_value: bytes | None

    @property
    def type(self) -> str:
        if self.row.deleted:
            return "DELETED"
        return "ADDED" if self.row.created else "MODIFIED"


Builder = Callable[["Row | None", int], "tuple[dict[str, Any], bytes | None]"]


class _ValueCache:
    """The latest rows of recently used keys, up to a byte budget (least recently used go
    first). An update reads the row it replaces twice (the registry's read-modify-write, then
    the commit's head); with the store's one writer that is the row this process last wrote
    or read. An entry is used only when its revision is the key's head."""

    def __init__(self, budget: int) -> None:
        self.budget, self.size = budget, 0
        self._rows: collections.OrderedDict[str, Row] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, revision: int) -> Row | None:
        with self._lock:
            row = self._rows.get(key)
            if row is None or row.revision != revision:
                return None
            self._rows.move_to_end(key)
            return row

    def put(self, row: Row) -> None:
        with self._lock:
            old = self._rows.pop(row.key, None)
            if old is not None:
                self.size -= len(old.value)
            if row.deleted:
                return
            self._rows[row.key] = row
            self.size += len(row.value)
            while self.size > self.budget and self._rows:
                _, evicted = self._rows.popitem(last=False)
                self.size -= len(evicted.value)


@dataclass(frozen=True)
class _Head:
    """What a write needs to know of a key's latest row."""

    revision: int
    create_revision: int
    deleted: bool


@dataclass(eq=False)
class _Pending:
    """One write waiting for a group commit."""

    key: str
    build: Builder
    decided: bool = False
    event: Event | None = None
    error: errors.StoreError | None = None


def _row_values(row: Row) -> dict[str, Any]:
    return {"id": row.revision, "name": row.key, "created": int(row.created),
            "deleted": int(row.deleted), "create_revision": row.create_revision,
            "prev_revision": row.prev_revision, "ts": time.time(), "value": row.value}


def _row(r: Any) -> Row:
    return Row(key=r.name, revision=r.id, create_revision=r.create_revision,
               prev_revision=r.prev_revision, created=bool(r.created),
               deleted=bool(r.deleted), value=bytes(r.value))


def prefix_end(prefix: str) -> str:
    """The smallest string greater than every string that starts with `prefix`."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def make_engine(url: str) -> Engine:
    """An engine tuned for the log: WAL and full sync on SQLite, a pool sized for the server."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                                  pool_size=20, max_overflow=20)
        sa_event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Log:
    """Append-only versions of keys, read by key, by prefix and by revision."""

    def __init__(self, engine: Engine,
                 publish: Callable[[Event], None] | None = None) -> None:
        self.engine = engine
        metadata.create_all(engine)
        self._write_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._publish = publish
        with engine.connect() as conn:
            self._revision = int(conn.execute(sa.select(sa.func.max(kine.c.id))).scalar() or 0)
            self._compacted = self._read_compacted(conn)
            self._heads = self._read_heads(conn)
        self._revision = max(self._revision, self._compacted)
        self._values = _ValueCache(VALUE_CACHE_BYTES)

    @staticmethod
    def _read_heads(conn: Connection) -> dict[str, _Head]:
        """Every key's latest revision, so a write needs no lookup by name (one writer)."""
        latest = sa.select(sa.func.max(kine.c.id).label("id")).group_by(kine.c.name).subquery()
        rows = conn.execute(sa.select(kine.c.name, kine.c.id, kine.c.create_revision,
                                      kine.c.deleted).join(latest, kine.c.id == latest.c.id))
        return {r.name: _Head(r.id, r.create_revision, bool(r.deleted)) for r in rows}

    # ---- reads -------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def compacted_revision(self) -> int:
        return self._compacted

    def get(self, key: str, *, for_write: bool = False) -> Row | None:
        """The key's latest row, or None when it does not exist or is deleted.

        A read `for_write` (a read-modify-write) may be answered from memory: what it
        answers is checked again by the write. Plain reads go to the database, so that they
        see the stored bytes as they are (a damaged row fails its read, not silently
        later)."""
        head = self._heads.get(key)
        if for_write and head is not None and not head.deleted:
            cached = self._values.get(key, head.revision)
            if cached is not None:
                return cached
        with self.engine.connect() as conn:
            row = self._latest(conn, key)
        if row is None or row.deleted:
            return None
        self._values.put(row)
        return row

    def list(self, prefix: str, *, revision: int = 0, start_after: str = "",
             limit: int = 0) -> tuple[int, list[Row]]:
        """Live rows under `prefix` as of `revision` (0 = now), ordered by key.

        Returns the revision the list is consistent with and the rows.
        """
        current = self._revision
        if revision and revision > current:
            raise errors.FutureRevision(revision, current)
        if revision and revision < self._compacted:
            raise errors.Compacted(revision, self._compacted)
        at = revision or current
        lower = kine.c.name > start_after if start_after and start_after >= prefix \
            else kine.c.name >= prefix
        latest = (
            sa.select(kine.c.name, sa.func.max(kine.c.id).label("id"))
            .where(lower, kine.c.name < prefix_end(prefix), kine.c.id <= at)
            .group_by(kine.c.name)
            .subquery()
        )
        query = (sa.select(kine).join(latest, kine.c.id == latest.c.id)
                 .where(kine.c.deleted == 0).order_by(kine.c.name))
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = [_row(r) for r in conn.execute(query)]
        return at, rows

    def count(self, prefix: str) -> int:
        return len(self.list(prefix)[1])

    def events_after(self, prefix: str, revision: int, *, until: int = 0) -> builtins.list[Event]:
        """Every change under `prefix` with a revision above `revision` (up to `until`)."""
        if revision < self._compacted:
            raise errors.Compacted(revision, self._compacted)
        prev = kine.alias("prev")
        query = (
            sa.select(kine, prev.c.value.label("prev_value"))
            .outerjoin(prev, prev.c.id == kine.c.prev_revision)
            .where(kine.c.id > revision, kine.c.name >= prefix, kine.c.name < prefix_end(prefix))
            .order_by(kine.c.id)
        )
        if until:
            query = query.where(kine.c.id <= until)
        with self.engine.connect() as conn:
            return [Event(_row(r), None if r.prev_value is None else bytes(r.prev_value))
                    for r in conn.execute(query)]

    # ---- writes ------------------------------------------------------------------------

    def create(self, key: str, value: bytes) -> Event:
        """Append the first version of `key`; KeyExists when a live version is there."""
        def build(latest: Row | None, rev: int) -> tuple[dict[str, Any], bytes | None]:
            if latest is not None and not latest.deleted:
                raise errors.KeyExists(key)
            prev = latest.revision if latest is not None else 0
            return {"created": 1, "deleted": 0, "create_revision": rev,
                    "prev_revision": prev, "value": value}, None
        return self._append(key, build)

    def update(self, key: str, value: bytes, expected_revision: int) -> Event:
        """Append a new version; the key's latest must be `expected_revision` (0 = any)."""
        def build(latest: Row | None, rev: int) -> tuple[dict[str, Any], bytes | None]:
            live = self._require_live(key, latest, expected_revision)
            return {"created": 0, "deleted": 0, "create_revision": live.create_revision,
                    "prev_revision": live.revision, "value": value}, live.value
        return self._append(key, build)

    def delete(self, key: str, expected_revision: int = 0) -> Event:
        """Append a tombstone carrying the last value; the latest must be `expected_revision`."""
        def build(latest: Row | None, rev: int) -> tuple[dict[str, Any], bytes | None]:
            live = self._require_live(key, latest, expected_revision)
            return {"created": 0, "deleted": 1, "create_revision": live.create_revision,
                    "prev_revision": live.revision, "value": live.value}, live.value
        return self._append(key, build)

    @staticmethod
    def _require_live(key: str, latest: Row | None, expected: int) -> Row:
        if latest is None or latest.deleted:
            raise errors.KeyNotFound(key)
        if expected and latest.revision != expected:
            raise errors.RevisionConflict(key, expected, latest.revision)
        return latest

    def _append(self, key: str, build: Builder) -> Event:
        """Queue one write and wait until a group commit has decided it.

        Group commit: whoever holds the write lock commits every queued write in one
        transaction (one fsync), then publishes their events in revision order. Writers
        that arrived meanwhile find their write already decided when they get the lock.
        """
        pending = _Pending(key, build)
        with self._queue_lock:
            self._queue.append(pending)
        with self._write_lock:
            if not pending.decided:
                self._commit_queued()
        if pending.error is not None:
            raise pending.error
        assert pending.event is not None
        return pending.event

    def _commit_queued(self) -> None:
        with self._queue_lock:
            batch, self._queue = self._queue, []
        written: dict[str, Row] = {}
        accepted: list[tuple[_Pending, Event]] = []
        rev = self._revision
        try:
            with self.engine.begin() as conn:
                for pending in batch:
                    latest = written.get(pending.key) or self._head_row(conn, pending.key)
                    try:
                        values, prev_value = pending.build(latest, rev + 1)
                    except errors.StoreError as e:
                        pending.error = e
                        continue
                    rev += 1
                    row = Row(key=pending.key, revision=rev,
                              create_revision=values["create_revision"],
                              prev_revision=values["prev_revision"],
                              created=bool(values["created"]), deleted=bool(values["deleted"]),
                              value=values["value"])
                    written[pending.key] = row
                    accepted.append((pending, Event(row, prev_value)))
                if accepted:
                    conn.execute(sa.insert(kine), [_row_values(e.row) for _, e in accepted])
        except (IntegrityError, OperationalError) as e:
            failure = self._integrity(e) if isinstance(e, IntegrityError) else \
                errors.StoreError(f"database write failed: {e.orig}")
            for pending, _ in accepted:
                pending.error = failure
            accepted = []
        self._revision = max(self._revision, rev if accepted else self._revision)
        for row in written.values():
            if accepted:
                self._heads[row.key] = _Head(row.revision, row.create_revision, row.deleted)
                self._values.put(row)
        for pending, event in accepted:
            pending.event = event
            if self._publish is not None:
                self._publish(event)
        for pending in batch:
            pending.decided = True

    def _integrity(self, e: IntegrityError) -> errors.StoreError:
        # Another process appended to the same key (or took our revision): re-read the
        # true state so the caller retries from it.
        with self.engine.connect() as conn:
            self._revision = max(self._revision,
                                 int(conn.execute(sa.select(sa.func.max(kine.c.id))).scalar() or 0))
            self._heads = self._read_heads(conn)
        return errors.RevisionConflict(str(e.params)[:80], 0, -1)

    def _head_row(self, conn: Connection, key: str) -> Row | None:
        """The key's latest row for a write; its value is read only when the write needs it."""
        head = self._heads.get(key)
        if head is None:
            return None
        if head.deleted:
            return Row(key, head.revision, head.create_revision, 0, False, True, b"")
        cached = self._values.get(key, head.revision)
        if cached is not None:
            return cached
        value = conn.execute(sa.select(kine.c.value, kine.c.prev_revision, kine.c.created)
                             .where(kine.c.id == head.revision)).first()
        if value is None:  # only another process could have done this; trust the database
            return self._latest(conn, key)
        return Row(key, head.revision, head.create_revision, value.prev_revision,
                   bool(value.created), False, bytes(value.value))

    @staticmethod
    def _latest(conn: Connection, key: str) -> Row | None:
        r = conn.execute(sa.select(kine).where(kine.c.name == key)
                         .order_by(kine.c.id.desc()).limit(1)).first()
        return None if r is None else _row(r)

    # ---- compaction --------------------------------------------------------------------

    def compact(self, *, keep_revisions: int = 1000, keep_seconds: float = 300.0) -> int:
        """Drop superseded rows and tombstones older than both horizons; returns the new one."""
        with self.engine.connect() as conn:
            old_enough = conn.execute(sa.select(sa.func.max(kine.c.id))
                                      .where(kine.c.ts < time.time() - keep_seconds)).scalar()
        target = min(self._revision - keep_revisions, int(old_enough or 0))
        if target <= self._compacted:
            return self._compacted
        with self._write_lock, self.engine.begin() as conn:
            superseded = sa.select(kine.c.prev_revision).where(kine.c.id <= target)
            conn.execute(sa.delete(kine).where(kine.c.id.in_(superseded)))
            conn.execute(sa.delete(kine).where(kine.c.deleted == 1, kine.c.id <= target))
            self._write_compacted(conn, target)
            self._compacted = target
            self._heads = {k: h for k, h in self._heads.items()
                           if not (h.deleted and h.revision <= target)}
        return target

    @staticmethod
    def _read_compacted(conn: Connection) -> int:
        value = conn.execute(sa.select(meta_table.c.value)
                             .where(meta_table.c.name == COMPACT_KEY)).scalar()
        return int(value or 0)

    @staticmethod
    def _write_compacted(conn: Connection, revision: int) -> None:
        updated = conn.execute(sa.update(meta_table).where(meta_table.c.name == COMPACT_KEY)
                               .values(value=revision))
        if updated.rowcount == 0:
            conn.execute(sa.insert(meta_table).values(name=COMPACT_KEY, value=revision))

    def size(self) -> int:
        """Rows held, for /metrics."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(kine)).scalar() or 0)

    def close(self) -> None:
        self.engine.dispose()
