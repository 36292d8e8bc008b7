"""The store's own error vocabulary.

Only the store translates database errors; everything above it sees these four and never an
SQLAlchemy or driver exception (kine's ErrKeyExists, ErrCompacted ...).
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class KeyExists(StoreError):
    """A create found a live row for the key."""


class KeyNotFound(StoreError):
    """An update or delete found no live row for the key."""


class RevisionConflict(StoreError):
    """An update or delete expected a revision that is no longer the key's latest."""

    def __init__(self, key: str, expected: int, actual: int) -> None:
        super().__init__(f"{key}: expected revision {expected}, found {actual}")
        self.expected = expected
        self.actual = actual


class Compacted(StoreError):
    """A read or watch asked for a revision older than the compacted horizon."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"revision {requested} is compacted (horizon {compacted})")
        self.requested = requested
        self.compacted = compacted


class FutureRevision(StoreError):
    """A read asked for a revision the store has not reached yet."""

    def __init__(self, requested: int, current: int) -> None:
        super().__init__(f"revision {requested} is newer than the current {current}")
        self.requested = requested
        self.current = current
