"""The apiserver as an ASGI application: store, registry, routes, security and housekeeping.

`create_app(config)` wires the parts together the way kube-apiserver's generic server does:
the store and the encryption transformers under a registry, the admission chain, one router
per resource family, `Status` errors, metrics, and (when enabled) authentication and
authorization in front of everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from apimachinery import errors as api_errors
from apiserver import (
    admission,
    authn,
    authz,
    config,
    encryption,
    fieldcheck,
    housekeeping,
    metrics,
    resources,
    security,
    threads,
    wire,
)
from apiserver.registry import Registry
from apiserver.routes import coordination, core, discovery, fastpath, podproxy, rbac, storage
from apiserver.store import backend

logger = logging.getLogger(__name__)


def create_app(cfg: config.ServerConfig, *, secure: bool | None = None) -> Any:
    """The ASGI app for `cfg`; `secure` forces authentication on or off (tests)."""
    store = backend.Store(cfg.db_url, compact_every=cfg.compact_every)
    transformer = encryption.load_encryption_config(cfg.encryption_config) \
        if cfg.encryption_config else None
    registry = Registry(store, transformer.for_resource if transformer else None,
                        admission.default_chain())
    housekeeping.bootstrap(registry)
    policy = security.PolicyCache(registry)
    registry.cache = policy

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(housekeeping.run(registry)),
                 asyncio.create_task(policy.follow())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            store.close()

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.registry = registry
    app.state.config = cfg
    app.state.policy = policy
    app.state.metrics = metrics.Metrics(store.log.size, lambda: store.revision)
    app.state.field_checker = fieldcheck.unknown_fields
    app.state.reviews = _reviews(policy)
    for router in (discovery.router, core.router, storage.router, coordination.router,
                   rbac.router):
        app.include_router(router)
    from apiserver.routes import generic
    for rt in (resources.SELF_SUBJECT_ACCESS_REVIEWS, resources.SELF_SUBJECT_RULES_REVIEWS,
               resources.SELF_SUBJECT_REVIEWS):
        generic.install(app.router, rt)
    app.include_router(podproxy.router)  # pods/log, pods/exec: streamed from the kubelet
    _install_errors(app)
    _install_metrics(app)
    measured = MetricsMiddleware(fastpath.FastRoutes(app, generic.ROUTES), app.state.metrics)
    measured.state = app.state  # type: ignore[attr-defined]
    use_security = cfg.tls if secure is None else secure
    if not use_security:
        return measured
    tokens = authn.ReloadingTokenFile(cfg.token_auth_file) if cfg.token_auth_file else None
    wrapped = security.SecurityMiddleware(measured, security.Authenticator(tokens),
                                          policy if cfg.authorization else None)
    wrapped.state = app.state  # type: ignore[attr-defined]
    return wrapped


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(api_errors.APIError)
    async def api_error(_request: Request, exc: api_errors.APIError) -> Response:
        return wire.error_response(exc)

    @app.exception_handler(404)
    async def not_found(_request: Request, _exc: Exception) -> Response:
        return wire.error_response(api_errors.APIError(
            404, "NotFound", "the server could not find the requested resource"))

    @app.exception_handler(405)
    async def not_allowed(_request: Request, _exc: Exception) -> Response:
        return wire.error_response(api_errors.method_not_allowed(
            "the server does not allow this method on the requested resource"))

    @app.exception_handler(Exception)
    async def internal(_request: Request, exc: Exception) -> Response:
        logger.exception("internal error")
        return wire.error_response(api_errors.internal(str(exc)))


def _install_metrics(app: FastAPI) -> None:
    m: metrics.Metrics = app.state.metrics

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        return Response(m.render(), media_type="text/plain; version=0.0.4")


class MetricsMiddleware:
    """Request counts and latency by verb and resource, as plain ASGI (no extra tasks)."""

    def __init__(self, app: Any, m: metrics.Metrics) -> None:
        self.app = app
        self.metrics = m

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        code = [500]

        async def observed_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                code[0] = message["status"]
            await send(message)
        try:
            await self.app(scope, receive, observed_send)
        finally:
            self._observe(scope, code[0], time.perf_counter() - start)

    def _observe(self, scope: Any, code: int, seconds: float) -> None:
        attrs = authz.request_attributes(None, scope["method"], scope["path"],
                                         scope.get("query_string", b"").decode())
        verb = attrs.verb.upper() if attrs.resource_request else scope["method"]
        resource = attrs.resource if attrs.resource_request else ""
        self.metrics.requests.labels(verb, resource, attrs.subresource, str(code)).inc()
        if verb != "WATCH":
            self.metrics.latency.labels(verb, resource, attrs.subresource).observe(seconds)


def _reviews(policy: security.PolicyCache) -> Any:
    async def review(request: Request, rt: resources.ResourceType,
                     obj: dict[str, Any]) -> dict[str, Any]:
        user = request.scope.get("state", {}).get("user") or authn.anonymous_user()
        spec = obj.get("spec") or {}
        await policy.ready.wait()
        if rt.kind == "SelfSubjectReview":
            return {"kind": rt.kind, "apiVersion": rt.api_version,
                    "metadata": {"creationTimestamp": None},
                    "status": {"userInfo": {"username": user.name, "uid": user.uid,
                                            "groups": list(user.groups)}}}
        if rt.kind == "SelfSubjectRulesReview":
            return await threads.run(_rules_review, policy, user, obj)
        attrs = _review_attributes(user, spec)
        decision = policy.authorizer().authorize(attrs)
        status: dict[str, Any] = {"allowed": decision.allowed}
        if decision.reason:
            status["reason"] = decision.reason
        return {"kind": rt.kind, "apiVersion": rt.api_version,
                "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}
    return review


def _review_attributes(user: authn.UserInfo, spec: dict[str, Any]) -> authz.Attributes:
    ra = spec.get("resourceAttributes")
    if ra:
        return authz.Attributes(user=user, verb=ra.get("verb", ""),
                                namespace=ra.get("namespace", ""),
                                api_group=ra.get("group", ""), resource=ra.get("resource", ""),
                                subresource=ra.get("subresource", ""), name=ra.get("name", ""),
                                resource_request=True)
    nra = spec.get("nonResourceAttributes") or {}
    if not ra and not nra:
        raise api_errors.invalid("SelfSubjectAccessReview", "", [api_errors.Cause(
            "spec.resourceAttributes", "exactly one of nonResourceAttributes or "
            "resourceAttributes must be specified", "FieldValueRequired")],
            "authorization.k8s.io")
    return authz.Attributes(user=user, verb=nra.get("verb", ""), path=nra.get("path", ""),
                            resource_request=False)


def _rules_review(policy: security.PolicyCache, user: authn.UserInfo,
                  obj: dict[str, Any]) -> dict[str, Any]:
    """What `kubectl auth can-i --list` shows: the user's RBAC rules in a namespace."""
    namespace = (obj.get("spec") or {}).get("namespace", "")
    resource_rules: list[dict[str, Any]] = []
    non_resource_rules: list[dict[str, Any]] = []
    if "system:masters" in user.groups:
        resource_rules.append({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})
        non_resource_rules.append({"verbs": ["*"], "nonResourceURLs": ["*"]})
    for rule in authz.RBACAuthorizer(policy.lister).rules_for(user, namespace):
        if rule.get("nonResourceURLs"):
            non_resource_rules.append({"verbs": list(rule.get("verbs") or []),
                                       "nonResourceURLs": list(rule["nonResourceURLs"])})
        else:
            resource_rules.append({k: list(v) for k, v in rule.items()
                                   if k in ("verbs", "apiGroups", "resources", "resourceNames")})
    return {"kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None}, "spec": obj.get("spec") or {},
            "status": {"resourceRules": resource_rules,
                       "nonResourceRules": non_resource_rules, "incomplete": False}}
