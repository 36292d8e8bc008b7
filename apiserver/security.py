"""Authentication and authorization in front of every API request.

An ASGI middleware: the user comes from the TLS client certificate (already verified against
the cluster CA by the TLS layer) or a bearer token from the token file; a request with
neither gets 401, as the issue asks, except the health and version endpoints that Kubernetes
leaves open. The decision comes from system:masters, the node authorizer and RBAC, fed by
an in-memory cache that follows the store's watch stream, so authorizing costs no SQL.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from apimachinery import errors as api_errors
from apiserver import authn, authz, resources, threads
from apiserver.registry import ListOptions, Registry

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = ("/healthz", "/livez", "/readyz", "/version")
_WATCHED = (resources.ROLES, resources.CLUSTER_ROLES, resources.ROLE_BINDINGS,
            resources.CLUSTER_ROLE_BINDINGS, resources.PODS,
            resources.PERSISTENT_VOLUME_CLAIMS, resources.PERSISTENT_VOLUMES,
            resources.NAMESPACES, resources.STORAGE_CLASSES, resources.NODES)


class PolicyCache:
    """Objects the server consults on every request, kept current from the store's events.

    RBAC objects and the node graph for authorization; namespaces and storage classes for
    admission; namespaces, pods and nodes for housekeeping. The node graph is rebuilt lazily and only when a node identity asks, so
    writes of pods, claims and volumes cost the other callers nothing.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._objects: dict[str, dict[str, dict[str, Any]]] = {rt.plural: {} for rt in _WATCHED}
        self._lister: authz.StaticRBACLister | None = None
        self._graph: authz.PodGraph | None = None
        self._authorizer: authz.UnionAuthorizer | None = None
        self._lock = threading.Lock()
        self.revision = 0
        self.ready = asyncio.Event()

    def load(self) -> int:
        revision = 0
        for rt in _WATCHED:
            lst = self.registry.list(rt, None, ListOptions())
            revision = max(revision, int(lst["metadata"]["resourceVersion"]))
            for obj in lst["items"]:
                obj.setdefault("kind", rt.kind)
                obj.setdefault("apiVersion", rt.api_version)
                self._objects[rt.plural][_key(obj)] = obj
        self.revision = revision
        return revision

    async def follow(self) -> None:
        """Apply every later change; restarts from a fresh load if the watch ends."""
        while True:
            revision = await threads.run(self.load)
            self._lister = self._graph = self._authorizer = None
            self.ready.set()
            try:
                async for event in self.registry.store.watch("/registry/", revision):
                    if event is None:
                        break
                    self._apply(event)
            except Exception:  # reload and go on
                logger.exception("policy cache watch failed; reloading")
            await asyncio.sleep(0.1)

    def _apply(self, event: Any) -> None:
        self.revision = event.row.revision
        plural = event.row.key.split("/")[2]
        if plural not in self._objects:
            return
        rt = next(r for r in _WATCHED if r.plural == plural)
        obj = self.registry.decode(rt, event.row)
        obj.setdefault("kind", rt.kind)
        obj.setdefault("apiVersion", rt.api_version)
        with self._lock:
            if event.type == "DELETED":
                self._objects[plural].pop(_key(obj), None)
            else:
                self._objects[plural][_key(obj)] = obj
        if plural in ("pods", "persistentvolumeclaims", "persistentvolumes"):
            self._graph = None
        elif plural not in ("namespaces", "storageclasses", "nodes"):
            self._lister = self._authorizer = None

    def covers(self, rt: resources.ResourceType) -> bool:
        return rt.plural in self._objects

    def get(self, rt: resources.ResourceType, namespace: str | None,
            name: str) -> dict[str, Any] | None:
        """The cached object, or None when the cache has not seen it (ask the store)."""
        with self._lock:
            return self._objects.get(rt.plural, {}).get(f"{namespace or ''}/{name}")

    def items(self, rt: resources.ResourceType) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._objects.get(rt.plural, {}).values())

    @property
    def lister(self) -> authz.StaticRBACLister:
        if self._lister is None:
            rbac = [o for p in ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
                    for o in self._objects[p].values()]
            self._lister = authz.StaticRBACLister(rbac)
        return self._lister

    @property
    def graph(self) -> authz.PodGraph:
        if self._graph is None:
            with self._lock:
                pods = list(self._objects["pods"].values())
                pvcs = list(self._objects["persistentvolumeclaims"].values())
                pvs = list(self._objects["persistentvolumes"].values())
            self._graph = authz.PodGraph.from_objects(pods, pvcs, pvs)
        return self._graph

    def authorizer(self) -> authz.UnionAuthorizer:
        if self._authorizer is None:
            self._authorizer = authz.default_authorizer(self.lister, _LazyGraph(self))
        return self._authorizer


class _LazyGraph:
    """The node graph, built only when the node authorizer consults it."""

    def __init__(self, cache: PolicyCache) -> None:
        self.cache = cache

    def pod_on_node(self, node: str, namespace: str, name: str) -> bool:
        return self.cache.graph.pod_on_node(node, namespace, name)

    def node_uses(self, node: str, resource: str, namespace: str, name: str) -> bool:
        return self.cache.graph.node_uses(node, resource, namespace, name)


def _key(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


class Authenticator:
    """Turns a request's certificate or bearer token into a user."""

    def __init__(self, tokens: authn.ReloadingTokenFile | None) -> None:
        self.tokens = tokens

    def authenticate(self, scope: Scope) -> authn.UserInfo | None:
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        token = authn.bearer_token(headers.get("authorization"))
        if token is not None:
            if self.tokens is None:
                raise authn.InvalidToken("invalid bearer token")
            return authn.with_authenticated_group(self.tokens.authenticate(token))
        der = ((scope.get("extensions") or {}).get("tls") or {}).get("client_cert")
        if der:
            return _user_from_certificate(der, int(time.time()) // 60)
        return None


@functools.lru_cache(maxsize=1024)
def _user_from_certificate(der: bytes, minute: int) -> authn.UserInfo:
    """Parsing a certificate costs more than the request; the minute keeps expiry honest."""
    return authn.with_authenticated_group(authn.user_from_certificate(der))


class SecurityMiddleware:
    """401 without a credential, 403 without permission, else the user in scope state."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator,
                 policy: PolicyCache | None) -> None:
        self.app = app
        self.authenticator = authenticator
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            user = self.authenticator.authenticate(scope)
        except authn.AuthenticationError as e:
            logger.info("authentication failed: %s", e)
            user = None
        if user is None:
            await _send_status(send, api_errors.unauthorized())
            return
        if self.policy is not None:
            await self.policy.ready.wait()
            impersonated = self._impersonate(scope, user)
            if isinstance(impersonated, api_errors.APIError):
                await _send_status(send, impersonated)
                return
            user = impersonated
        scope.setdefault("state", {})["user"] = user
        if self.policy is not None:
            allowed = await self._authorize(scope, receive, send, user)
            if allowed is None:
                return
            receive = allowed
        await self.app(scope, receive, send)

    def _impersonate(self, scope: Scope,
                     user: authn.UserInfo) -> authn.UserInfo | api_errors.APIError:
        """`kubectl --as/--as-group`: act as another user if RBAC grants `impersonate`."""
        headers = [(k.decode().lower(), v.decode()) for k, v in scope.get("headers", [])]
        name = next((v for k, v in headers if k == "impersonate-user"), "")
        groups = [v for k, v in headers if k == "impersonate-group"]
        if not name:
            if groups:
                return api_errors.bad_request(
                    "requested impersonation of groups without impersonating a user")
            return user
        assert self.policy is not None
        authorizer = self.policy.authorizer()
        for attrs in _impersonation_checks(user, name, groups):
            decision = authorizer.authorize(attrs)
            if not decision.allowed:
                return authz.forbidden_error(attrs, decision.reason)
        if name.startswith("system:serviceaccount:") and not groups:
            namespace = name.split(":")[2] if name.count(":") >= 3 else ""
            groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
        return authn.with_authenticated_group(authn.UserInfo(name=name, groups=tuple(groups)))

    async def _authorize(self, scope: Scope, receive: Receive, send: Send,
                         user: authn.UserInfo) -> Receive | None:
        assert self.policy is not None
        await self.policy.ready.wait()
        attrs = authz.request_attributes(user, scope["method"], scope["path"],
                                         scope.get("query_string", b"").decode())
        if attrs.verb == "create" and not attrs.name and authz.node_name_of(user):
            receive, name = await _peek_name(receive)
            attrs = _with_name(attrs, name)
        decision = self.policy.authorizer().authorize(attrs)
        if not decision.allowed:
            await _send_status(send, authz.forbidden_error(attrs, decision.reason))
            return None
        return receive


def _impersonation_checks(user: authn.UserInfo, name: str,
                          groups: list[str]) -> list[authz.Attributes]:
    parts = name.split(":")
    if len(parts) == 4 and name.startswith("system:serviceaccount:"):
        checks = [authz.Attributes(user=user, verb="impersonate", resource="serviceaccounts",
                                   namespace=parts[2], name=parts[3], resource_request=True)]
    else:
        checks = [authz.Attributes(user=user, verb="impersonate", resource="users", name=name,
                                   resource_request=True)]
    checks += [authz.Attributes(user=user, verb="impersonate", resource="groups", name=g,
                                resource_request=True) for g in groups]
    return checks


def _with_name(attrs: authz.Attributes, name: str) -> authz.Attributes:
    import dataclasses
    return dataclasses.replace(attrs, name=name)


async def _peek_name(receive: Receive) -> tuple[Receive, str]:
    """Read the body to learn the object's name, then hand the same body on."""
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body"):
            break
    body = b"".join(m.get("body", b"") for m in messages)
    try:
        name = str(json.loads(body).get("metadata", {}).get("name", ""))
    except (ValueError, AttributeError):
        name = ""

    async def replay() -> MutableMapping[str, Any]:
        if messages:
            return messages.pop(0)
        return await receive()
    return replay, name


async def _send_status(send: Send, error: api_errors.APIError) -> None:
    body = json.dumps(error.status()).encode()
    await send({"type": "http.response.start", "status": error.code,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
