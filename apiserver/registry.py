"""The generic registry: create, get, list, update, delete and watch for any resource.

This is kube-apiserver's `genericregistry.Store` in small. It turns store rows into API
objects (setting `resourceVersion` from the row's revision, decrypting Secrets), runs the
admission chain and the per-kind strategy on every write, enforces optimistic concurrency and
finalizers, and maps store errors to Kubernetes `Status` errors. The HTTP layer above it only
parses requests and renders responses.
"""

from __future__ import annotations

import builtins
import copy
import json
import secrets as pysecrets
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apimachinery import errors as api_errors
from apimachinery import fields as field_selectors
from apimachinery import jsonwire
from apimachinery import labels as label_selectors
from apiserver import admission, resources, strategy
from apiserver.store import backend, log
from apiserver.store import errors as store_errors

Obj = dict[str, Any]
ResourceType = resources.ResourceType

_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
LIST_CHUNK = 500


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ListOptions:
    """The query of a list or watch request, already parsed."""

    label_selector: label_selectors.Selector | None = None
    field_selector: field_selectors.Selector | None = None
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""


@dataclass(frozen=True)
class DeleteOptions:
    propagation_policy: str = ""
    grace_period_seconds: int | None = None
    precondition_uid: str = ""
    precondition_resource_version: str = ""
    dry_run: bool = False


@dataclass
class WatchEvent:
    type: str
    object: Obj


@dataclass
class Registry:
    """Typed access to objects in the store, with admission and strategies applied."""

    store: backend.Store
    transformers: Callable[[str], Any] | None = None
    admission_chain: list[admission.Plugin] = field(default_factory=list)
    # An in-memory view fed by the watch (security.PolicyCache) that admission reads first.
    cache: Any = None

    # The last revision this server wrote per resource type: the cache is exact for a
    # type once it has applied that revision (this process is the only writer).
    written: dict[str, int] = field(default_factory=dict)

    def _cache_current(self, rt: ResourceType) -> bool:
        return self.cache is not None and self.cache.ready.is_set() and \
            self.cache.covers(rt) and self.cache.revision >= self.written.get(rt.plural, 0)

    def cached_get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj | None:
        """From the watch-fed cache when it is current for this type, else from the store."""
        if self._cache_current(rt):
            return self.cache.get(rt, namespace, name)  # type: ignore[no-any-return]
        return self.get_or_none(rt, namespace, name)

    def cached_items(self, rt: ResourceType) -> list[Obj]:
        if self._cache_current(rt):
            return self.cache.items(rt)  # type: ignore[no-any-return]
        return self.list(rt, None, ListOptions())["items"]  # type: ignore[no-any-return]

    def _note(self, rt: ResourceType, event: log.Event) -> log.Event:
        self.written[rt.plural] = max(self.written.get(rt.plural, 0), event.row.revision)
        return event

    # ---- encoding ----------------------------------------------------------------------

    def _encode(self, rt: ResourceType, key: str, obj: Obj) -> bytes:
        # A new top level and metadata without resourceVersion; dumps changes nothing below.
        meta = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
        data = jsonwire.dumps({**obj, "metadata": meta}, sort_keys=True)
        transformer = self._transformer(rt)
        return transformer.encrypt(data, key.encode()) if transformer else data

    def decode(self, rt: ResourceType, row: log.Row, revision: int | None = None) -> Obj:
        data = row.value
        transformer = self._transformer(rt)
        if transformer is not None:
            try:
                data, _stale = transformer.decrypt(data, row.key.encode())
            except Exception as e:  # the one object is unreadable, the server goes on
                raise api_errors.internal(
                    f"unable to transform key {row.key!r}: {e}") from e
        obj: Obj = jsonwire.loads(data)
        obj["metadata"]["resourceVersion"] = str(revision or row.revision)
        return obj

    def is_stale(self, rt: ResourceType, row: log.Row) -> bool:
        transformer = self._transformer(rt)
        if transformer is None:
            return False
        return bool(transformer.decrypt(row.value, row.key.encode())[1])

    def _transformer(self, rt: ResourceType) -> Any:
        if self.transformers is None:
            return None
        return self.transformers(rt.plural if not rt.group else f"{rt.plural}.{rt.group}")

    # ---- reads -------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        row = self.store.get(rt.key(namespace, name))
        if row is None:
            raise api_errors.not_found(rt.plural, name, rt.group)
        return self.decode(rt, row)

    def get_or_none(self, rt: ResourceType, namespace: str | None, name: str) -> Obj | None:
        row = self.store.get(rt.key(namespace, name))
        return None if row is None else self.decode(rt, row)

    def list(self, rt: ResourceType, namespace: str | None, opts: ListOptions) -> Obj:
        """A `<Kind>List` as of one revision, filtered, in pages when `limit` is set."""
        revision, start_after = self._list_start(rt, namespace, opts)
        items: list[Obj] = []
        last_key, more = start_after, False
        while True:
            try:
                at, rows = self.store.list(rt.prefix(namespace), revision=revision,
                                           start_after=last_key, limit=LIST_CHUNK)
            except store_errors.Compacted as e:
                raise self._expired(e) from e
            except store_errors.FutureRevision as e:
                raise api_errors.APIError(504, "Timeout", f"Too large resource version: "
                                          f"{e.requested}, current: {e.current}") from e
            revision = at
            for row in rows:
                if opts.limit and len(items) == opts.limit:
                    more = True
                    break
                obj = self.decode(rt, row, None)
                last_key = row.key
                if self.matches(rt, obj, opts):
                    items.append(obj)
            if more or len(rows) < LIST_CHUNK:
                break
        meta: Obj = {"resourceVersion": str(revision)}
        if more:
            meta["continue"] = _continue_token(revision, last_key)
        return {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta,
                "items": items}

    def _list_start(self, rt: ResourceType, namespace: str | None,
                    opts: ListOptions) -> tuple[int, str]:
        if opts.continue_token:
            revision, start_after = _parse_continue(opts.continue_token)
            if not start_after.startswith(rt.prefix(namespace)):
                raise api_errors.bad_request("continue key is not valid for this request")
            return revision, start_after
        if opts.resource_version and opts.resource_version != "0":
            return _parse_rv(opts.resource_version), ""
        return 0, ""

    @staticmethod
    def _expired(e: store_errors.Compacted) -> api_errors.APIError:
        return api_errors.APIError(
            410, "Expired",
            f"The provided continue parameter is too old to display a consistent list result. "
            f"You can start a new list without the continue parameter, or use the continue "
            f"token in this response to retrieve the remainder of the results. "
            f"(revision {e.requested} is compacted)")

    @staticmethod
    def matches(rt: ResourceType, obj: Obj, opts: ListOptions) -> bool:
        labels = obj["metadata"].get("labels") or {}
        if opts.label_selector is not None and not opts.label_selector.matches(labels):
            return False
        if opts.field_selector is not None:
            return field_selectors.matches(rt.kind, opts.field_selector, obj)
        return True

    # ---- writes ------------------------------------------------------------------------

    def create(self, rt: ResourceType, namespace: str | None, obj: Obj, *,
               dry_run: bool = False) -> Obj:
        obj = self._prepare_create(rt, namespace, obj)
        if dry_run:
            return obj
        key = rt.key(namespace, obj["metadata"]["name"])
        try:
            event = self._note(rt, self.store.create(key, self._encode(rt, key, obj)))
        except store_errors.KeyExists as e:
            raise api_errors.already_exists(rt.plural, obj["metadata"]["name"], rt.group) from e
        return self.decode(rt, event.row)

    def _prepare_create(self, rt: ResourceType, namespace: str | None, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise api_errors.bad_request("metadata must be an object")
        self._check_type_meta(rt, obj)
        self._check_namespace(rt, namespace, meta)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(
                pysecrets.choice(_GENERATE_ALPHABET) for _ in range(5))
        for stale in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds",
                      "selfLink", "managedFields"):
            meta.pop(stale, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if "spec" in obj:
            meta["generation"] = 1
        strategy.prepare_for_create(rt, obj)
        for plugin in self.admission_chain:
            plugin.admit_create(self, rt, obj)
        strategy.validate_create(rt, obj)
        return obj

    @staticmethod
    def _check_type_meta(rt: ResourceType, obj: Obj) -> None:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind and kind != rt.kind:
            raise api_errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rt.api_version})" if api_version != rt.api_version else
                f"kind {kind} does not match the expected kind {rt.kind}")
        if api_version and api_version != rt.api_version:
            raise api_errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rt.api_version})")
        obj["kind"], obj["apiVersion"] = rt.kind, rt.api_version

    @staticmethod
    def _check_namespace(rt: ResourceType, namespace: str | None, meta: Obj) -> None:
        if not rt.namespaced:
            meta.pop("namespace", None)
            return
        given = meta.get("namespace")
        if given and given != namespace:
            raise api_errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request")
        meta["namespace"] = namespace

    def update(self, rt: ResourceType, namespace: str | None, name: str, obj: Obj, *,
               subresource: str = "", dry_run: bool = False) -> Obj:
        """Replace an object; a `metadata.resourceVersion` makes it conditional."""
        obj = copy.deepcopy(obj)
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            raise api_errors.bad_request("metadata must be an object")
        self._check_type_meta(rt, obj)
        if meta.get("name") and meta["name"] != name:
            raise api_errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})")
        self._check_namespace(rt, namespace, meta)
        expected = _parse_rv(meta["resourceVersion"]) if meta.get("resourceVersion") else 0
        return self._write_update(rt, namespace, name, expected,
                                  lambda old: obj, subresource, dry_run)

    def patch(self, rt: ResourceType, namespace: str | None, name: str,
              apply: Callable[[Obj], Obj], *, subresource: str = "",
              dry_run: bool = False) -> Obj:
        """Read-modify-write with `apply`, retried on conflicts unless the patch pinned a version."""
        for _ in range(10):
            try:
                return self._write_update(rt, namespace, name, 0, apply, subresource, dry_run,
                                          patching=True)
            except _RetryPatch:
                continue
        raise api_errors.conflict(rt.plural, name, rt.group)

    def _write_update(self, rt: ResourceType, namespace: str | None, name: str,
                      expected: int, build: Callable[[Obj], Obj], subresource: str,
                      dry_run: bool, patching: bool = False) -> Obj:
        key = rt.key(namespace, name)
        row = self.store.get(key, for_write=True)
        if row is None:
            raise api_errors.not_found(rt.plural, name, rt.group)
        old = self.decode(rt, row)
        new = build(copy.deepcopy(old))
        if patching:
            pinned = (new.get("metadata") or {}).get("resourceVersion")
            expected = _parse_rv(pinned) if pinned else 0
        if expected and expected != row.revision:
            raise api_errors.conflict(rt.plural, name, rt.group)
        new = self._prepare_update(rt, new, old, subresource)
        if new == old and not self.is_stale(rt, row):
            # Nothing changed: no new revision, as Kubernetes' GuaranteedUpdate. A value
            # encrypted under an old key is rewritten anyway (`storagelab secrets rewrite`).
            return old
        if dry_run:
            return new
        if new["metadata"].get("deletionTimestamp") and not strategy.deletion_held(rt, new) \
                and not new["metadata"].get("deletionGracePeriodSeconds"):
            try:
                return self._delete_row(rt, key, row.revision, new)
            except store_errors.RevisionConflict as e:
                if patching:
                    raise _RetryPatch() from e
                raise api_errors.conflict(rt.plural, name, rt.group) from e
        try:
            event = self._note(rt, self.store.update(key, self._encode(rt, key, new),
                                                     row.revision))
        except store_errors.RevisionConflict as e:
            if patching:
                raise _RetryPatch() from e
            raise api_errors.conflict(rt.plural, name, rt.group) from e
        except store_errors.KeyNotFound as e:
            raise api_errors.not_found(rt.plural, name, rt.group) from e
        return self.decode(rt, event.row)

    def _prepare_update(self, rt: ResourceType, new: Obj, old: Obj, subresource: str) -> Obj:
        self._check_type_meta(rt, new)
        meta, old_meta = new.setdefault("metadata", {}), old["metadata"]
        for fixed in ("uid", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "generation"):
            if fixed in old_meta:
                meta[fixed] = old_meta[fixed]
            else:
                meta.pop(fixed, None)
        meta["name"] = old_meta["name"]
        if rt.namespaced:
            meta["namespace"] = old_meta["namespace"]
        meta["resourceVersion"] = old_meta["resourceVersion"]
        strategy.prepare_for_update(rt, new, old, subresource)
        if "spec" in new and new.get("spec") != old.get("spec"):
            meta["generation"] = int(old_meta.get("generation") or 1) + 1
        for plugin in self.admission_chain:
            plugin.admit_update(self, rt, new, old, subresource)
        strategy.validate_update(rt, new, old, subresource)
        return new

    def delete(self, rt: ResourceType, namespace: str | None, name: str,
               opts: DeleteOptions) -> tuple[Obj, bool]:
        """Delete, or mark for deletion while finalizers or grace hold the object.

        Returns the object and whether it is gone now.
        """
        for _ in range(10):
            key = rt.key(namespace, name)
            row = self.store.get(key)
            if row is None:
                raise api_errors.not_found(rt.plural, name, rt.group)
            obj = self.decode(rt, row)
            self._check_preconditions(rt, obj, opts)
            for plugin in self.admission_chain:
                plugin.admit_delete(self, rt, obj)
            if opts.dry_run:
                return obj, False
            try:
                return self._delete_or_mark(rt, key, row.revision, obj, opts)
            except store_errors.RevisionConflict:
                continue
        raise api_errors.conflict(rt.plural, name, rt.group)

    def _check_preconditions(self, rt: ResourceType, obj: Obj, opts: DeleteOptions) -> None:
        meta = obj["metadata"]
        if opts.precondition_uid and opts.precondition_uid != meta["uid"]:
            raise api_errors.conflict(
                rt.plural, meta["name"], rt.group,
                f"Precondition failed: UID in precondition: {opts.precondition_uid}, "
                f"UID in object meta: {meta['uid']}")
        if opts.precondition_resource_version and \
                opts.precondition_resource_version != meta["resourceVersion"]:
            raise api_errors.conflict(
                rt.plural, meta["name"], rt.group,
                f"Precondition failed: ResourceVersion in precondition: "
                f"{opts.precondition_resource_version}, ResourceVersion in object meta: "
                f"{meta['resourceVersion']}")

    def _delete_or_mark(self, rt: ResourceType, key: str, revision: int, obj: Obj,
                        opts: DeleteOptions) -> tuple[Obj, bool]:
        meta = obj["metadata"]
        grace = strategy.grace_period(rt, obj, opts.grace_period_seconds)
        held = strategy.deletion_held(rt, obj)
        if not held and grace == 0:
            return self._delete_row(rt, key, revision, obj), True
        if meta.get("deletionTimestamp"):
            # OBSERVATION: already being deleted; only a shorter grace period changes it.
            if held or grace >= int(meta.get("deletionGracePeriodSeconds") or 0):
                return obj, False
            meta["deletionGracePeriodSeconds"] = grace
        else:
            meta["deletionTimestamp"] = now_rfc3339()
            meta["deletionGracePeriodSeconds"] = grace
        strategy.prepare_for_delete(rt, obj)
        event = self._note(rt, self.store.update(key, self._encode(rt, key, obj), revision))
        return self.decode(rt, event.row), False

    def _delete_row(self, rt: ResourceType, key: str, revision: int, obj: Obj) -> Obj:
        try:
            event = self._note(rt, self.store.delete(key, revision))
        except store_errors.KeyNotFound as e:
            raise api_errors.not_found(rt.plural, obj["metadata"]["name"], rt.group) from e
        return self.decode(rt, event.row)

    # ---- watch -------------------------------------------------------------------------

    async def watch(self, rt: ResourceType, namespace: str | None,
                    opts: ListOptions) -> AsyncIterator[WatchEvent]:
        """Events after `opts.resource_version`; with none (or "0"), the current state first."""
        revision = 0
        if opts.resource_version and opts.resource_version != "0":
            revision = _parse_rv(opts.resource_version)
        else:
            snapshot = self.list(rt, namespace, ListOptions(opts.label_selector,
                                                            opts.field_selector))
            for item in snapshot["items"]:
                item.setdefault("kind", rt.kind)
                item.setdefault("apiVersion", rt.api_version)
                yield WatchEvent("ADDED", item)
            revision = int(snapshot["metadata"]["resourceVersion"])
        try:
            async for event in self.store.watch(rt.prefix(namespace), revision):
                if event is None:
                    return
                for converted in self._convert(rt, event, opts):
                    yield converted
        except store_errors.Compacted as e:
            raise api_errors.APIError(
                410, "Expired", f"too old resource version: {e.requested} ({e.compacted})") from e

    def _convert(self, rt: ResourceType, event: log.Event,
                 opts: ListOptions) -> builtins.list[WatchEvent]:
        try:
            obj = self.decode(rt, event.row)
        except api_errors.APIError:
            return []
        obj.setdefault("kind", rt.kind)
        obj.setdefault("apiVersion", rt.api_version)
        now_matches = self.matches(rt, obj, opts)
        filtered = opts.label_selector is not None or opts.field_selector is not None
        if event.type != "MODIFIED" or not filtered or event.prev_value is None:
            return [WatchEvent(event.type, obj)] if now_matches else []
        before = self.decode(rt, log.Row(event.row.key, event.row.revision, 0, 0, False, False,
                                         event.prev_value))
        was_matching = self.matches(rt, before, opts)
        if was_matching and now_matches:
            return [WatchEvent("MODIFIED", obj)]
        if now_matches:
            return [WatchEvent("ADDED", obj)]
        if was_matching:
            return [WatchEvent("DELETED", obj)]
        return []


class _RetryPatch(Exception):
    """A patch lost a race with another writer; re-read and apply it again."""


def _parse_rv(value: str) -> int:
    try:
        revision = int(value)
    except ValueError as e:
        raise api_errors.bad_request(f'Invalid value: "{value}": must be a valid resource '
                                     f'version') from e
    if revision < 0:
        raise api_errors.bad_request(f'Invalid value: "{value}": must be a valid resource '
                                     f'version')
    return revision


def _continue_token(revision: int, last_key: str) -> str:
    import base64
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": last_key})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _parse_continue(token: str) -> tuple[int, str]:
    import base64
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        return int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError) as e:
        raise api_errors.bad_request(f"continue key is not valid: {e}") from e
