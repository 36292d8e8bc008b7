"""The OpenAPI documents kubectl reads: /openapi/v2 and /openapi/v3 (index and one per group).

`kubectl explain` walks the v3 schema of a kind to print field descriptions; `kubectl apply`
reads the v3 document to learn whether the server validates fields itself (a `fieldValidation`
query parameter on the PATCH operation of the kind) and, for client-side apply, the patch
merge keys of lists. The schemas come from `openapi_schemas`; this module adds list kinds,
the REST paths of the served resources and the two document layouts (Swagger 2.0 with
`#/definitions/`, OpenAPI 3.0 with `#/components/schemas/` and `allOf` around described refs).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from apiserver import openapi_schemas as schemas

Doc = dict[str, Any]
SERVER_VERSION = "v1.32.0"
_PRIMITIVES: dict[str, Doc] = {
    "string": {"type": "string"}, "bool": {"type": "boolean"},
    "int32": {"type": "integer", "format": "int32"},
    "int64": {"type": "integer", "format": "int64"},
    "double": {"type": "number", "format": "double"},
    "byte": {"type": "string", "format": "byte"},
    "object": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
}
_PACKAGE_OF_GROUP = {"": schemas.CORE, "storage.k8s.io": schemas.STORAGE,
                     "coordination.k8s.io": schemas.COORDINATION,
                     "rbac.authorization.k8s.io": schemas.RBAC,
                     "authorization.k8s.io": schemas.AUTHORIZATION}
_STATUS = f"{schemas.META}.Status"
_DELETE_OPTIONS = f"{schemas.META}.DeleteOptions"
_PATCH = f"{schemas.META}.Patch"
_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
                "application/strategic-merge-patch+json", "application/apply-patch+yaml")


class UnknownGroupVersion(LookupError):
    """No OpenAPI v3 document exists for this group/version (the server answers 404)."""


class UnknownKind(LookupError):
    """A resource descriptor names a kind that has no schema in openapi_schemas."""


@dataclass(frozen=True)
class Resource:
    """A served resource: `plural` may name a subresource, as `persistentvolumeclaims/status`."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: tuple[str, ...]

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def root(self) -> str:
        """The URL prefix of the group version: /api/v1 or /apis/<group>/<version>."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    @property
    def model(self) -> str:
        return f"{_PACKAGE_OF_GROUP.get(self.group, '')}.{self.kind}"


def _r(group: str, kind: str, plural: str, namespaced: bool, verbs: str) -> Resource:
    return Resource(group, "v1", kind, plural, namespaced, tuple(verbs.split()))


_CRUD = "create delete deletecollection get list patch update watch"
_STATUS_VERBS = "get patch update"
DEFAULT_RESOURCES: tuple[Resource, ...] = (
    _r("", "Namespace", "namespaces", False, "create delete get list patch update watch"),
    _r("", "Namespace", "namespaces/status", False, _STATUS_VERBS),
    _r("", "Node", "nodes", False, _CRUD), _r("", "Node", "nodes/status", False, _STATUS_VERBS),
    _r("", "Pod", "pods", True, _CRUD), _r("", "Pod", "pods/status", True, _STATUS_VERBS),
    _r("", "PersistentVolume", "persistentvolumes", False, _CRUD),
    _r("", "PersistentVolume", "persistentvolumes/status", False, _STATUS_VERBS),
    _r("", "PersistentVolumeClaim", "persistentvolumeclaims", True, _CRUD),
    _r("", "PersistentVolumeClaim", "persistentvolumeclaims/status", True, _STATUS_VERBS),
    _r("", "ConfigMap", "configmaps", True, _CRUD), _r("", "Secret", "secrets", True, _CRUD),
    _r("", "Event", "events", True, _CRUD),
    _r("storage.k8s.io", "StorageClass", "storageclasses", False, _CRUD),
    _r("storage.k8s.io", "CSIDriver", "csidrivers", False, _CRUD),
    _r("storage.k8s.io", "CSIStorageCapacity", "csistoragecapacities", True, _CRUD),
    _r("storage.k8s.io", "VolumeAttachment", "volumeattachments", False, _CRUD),
    _r("storage.k8s.io", "VolumeAttachment", "volumeattachments/status", False, _STATUS_VERBS),
    _r("coordination.k8s.io", "Lease", "leases", True, _CRUD),
    _r("rbac.authorization.k8s.io", "Role", "roles", True, _CRUD),
    _r("rbac.authorization.k8s.io", "ClusterRole", "clusterroles", False, _CRUD),
    _r("rbac.authorization.k8s.io", "RoleBinding", "rolebindings", True, _CRUD),
    _r("rbac.authorization.k8s.io", "ClusterRoleBinding", "clusterrolebindings", False, _CRUD),
    _r("authorization.k8s.io", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False,
       "create"),
)
ResourceLike = Resource | Mapping[str, Any] | Sequence[Any]


def as_resources(resources: Iterable[ResourceLike] | None) -> tuple[Resource, ...]:
    """Normalise descriptors given as Resource, (group, version, kind, plural, namespaced,
    verbs) tuples or dicts with those keys; None means the resources this server serves."""
    if resources is None:
        return DEFAULT_RESOURCES
    return tuple(_as_resource(r) for r in resources)


def _as_resource(r: ResourceLike) -> Resource:
    if isinstance(r, Resource):
        return r
    if isinstance(r, Mapping):
        r = (r["group"], r["version"], r["kind"], r["plural"], r["namespaced"], r["verbs"])
    group, version, kind, plural, namespaced, verbs = r
    verbs = tuple(verbs.split()) if isinstance(verbs, str) else tuple(verbs)
    return Resource(str(group), str(version), str(kind), str(plural), bool(namespaced), verbs)


# --- schemas ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Style:
    """What differs between Swagger 2.0 and OpenAPI 3.0 schemas."""

    ref_prefix: str
    wrap_described_refs: bool   # OpenAPI 3.0 ignores siblings of $ref, so wrap in allOf

    def ref(self, full: str) -> Doc:
        return {"$ref": self.ref_prefix + full}


V2 = _Style("#/definitions/", wrap_described_refs=False)
V3 = _Style("#/components/schemas/", wrap_described_refs=True)


def _type_schema(type_: str, package: str, style: _Style) -> Doc:
    if type_.startswith("[]"):
        return {"type": "array", "items": _type_schema(type_[2:], package, style)}
    if type_.startswith("{}"):
        values = _type_schema(type_[2:], package, style)
        if "$ref" in values and style.wrap_described_refs:
            # As kube-apiserver's v3 documents do; kubectl explain then names the value
            # type (map[string]Quantity).
            values = {"allOf": [values], "default": {}}
        return {"type": "object", "additionalProperties": values}
    if type_ in _PRIMITIVES:
        return dict(_PRIMITIVES[type_])
    return style.ref(schemas.resolve(type_, package))


def _field_schema(field: schemas.Field, package: str, style: _Style) -> Doc:
    schema = _type_schema(field.type, package, style)
    if "$ref" in schema and style.wrap_described_refs:
        schema = {"allOf": [schema]}
    schema["description"] = field.description
    extensions = {"x-kubernetes-patch-merge-key": field.merge_key,
                  "x-kubernetes-patch-strategy": field.strategy,
                  "x-kubernetes-list-type": field.list_type}
    schema.update({k: v for k, v in extensions.items() if v})
    if field.map_keys:
        schema["x-kubernetes-list-map-keys"] = list(field.map_keys)
    schema.update(dict(field.extra))
    return schema


def _gvk(group: str, version: str, kind: str) -> list[dict[str, str]]:
    return [{"group": group, "kind": kind, "version": version}]


def model_schema(model: schemas.Model, style: _Style) -> Doc:
    """The schema of one definition, in the given document style."""
    if model.raw:
        raw: Doc = {"description": model.description, **dict(model.raw)}
        if style.wrap_described_refs and model.name == schemas.QUANTITY:
            # kube-apiserver's v3 Quantity is a string or a number with no single type,
            # which is why kubectl explain names it (map[string]Quantity).
            raw.pop("type", None)
            raw["oneOf"] = [{"type": "string"}, {"type": "number"}]
        return raw
    schema: Doc = {"description": model.description, "type": "object",
                   "properties": {f.name: _field_schema(f, model.package, style)
                                  for f in model.fields}}
    required = [f.name for f in model.fields if f.required]
    if required:
        schema["required"] = required
    if model.gvk:
        schema["x-kubernetes-group-version-kind"] = _gvk(*model.gvk)
    return schema


def _list_model(resource: Resource) -> schemas.Model:
    """The `<Kind>List` every listable kind has: apiVersion, items, kind, metadata."""
    package = _PACKAGE_OF_GROUP.get(resource.group, "")
    fields = (*schemas.typemeta(f"{resource.kind}List"),
              schemas.f("items", f"[]{resource.kind}", f"The {resource.kind} objects.",
                        required=True),
              schemas.f("metadata", "meta.ListMeta", "Standard list metadata."))
    return schemas.Model(f"{resource.model}List", f"A list of {resource.kind} objects.",
                         fields, (resource.group, resource.version, f"{resource.kind}List"),
                         package=package)


def all_models(resources: Sequence[Resource]) -> dict[str, schemas.Model]:
    """Every model: the static ones plus a list kind per listable served kind."""
    models = dict(schemas.MODELS)
    models[_PATCH] = schemas.Model(_PATCH, "A patch document; its type is the request's "
                                   "Content-Type.", raw=(("type", "object"),))
    for r in resources:
        if r.model not in schemas.MODELS:
            raise UnknownKind(f"{r.group_version} {r.kind}")
        if "list" in r.verbs and "/" not in r.plural:
            model = _list_model(r)
            models[model.name] = model
    return models


def _references(model: schemas.Model) -> Iterable[str]:
    for field in model.fields:
        base = field.type.lstrip("[]{}")
        if base not in _PRIMITIVES:
            yield schemas.resolve(base, model.package)


def _closure(roots: Iterable[str], models: Mapping[str, schemas.Model]) -> set[str]:
    """Names of `roots` and every model they refer to, transitively."""
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending.extend(_references(models[name]))
    return seen


# --- paths -----------------------------------------------------------------------------

# Query parameters by verb, as kube-apiserver documents them; kubectl looks for
# fieldValidation on PATCH to decide that the server validates fields itself.
_QUERY_PARAMS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "list": (("allowWatchBookmarks", "boolean", "Ask for BOOKMARK watch events."),
             ("continue", "string", "Token of the next page of a limited list."),
             ("fieldSelector", "string", "Select objects by fields."),
             ("labelSelector", "string", "Select objects by labels."),
             ("limit", "integer", "Most items to return in one page."),
             ("resourceVersion", "string", "Version the list or watch starts from."),
             ("resourceVersionMatch", "string", "How resourceVersion is applied."),
             ("sendInitialEvents", "boolean", "Start a watch with synthetic ADDED events."),
             ("timeoutSeconds", "integer", "Seconds a list or watch may last."),
             ("watch", "boolean", "Watch for changes instead of listing.")),
    "write": (("dryRun", "string", "All: validate without persisting."),
              ("fieldManager", "string", "Name of the actor making the change."),
              ("fieldValidation", "string",
               "Ignore, Warn or Strict: what to do with unknown or duplicate fields.")),
    "delete": (("dryRun", "string", "All: validate without persisting."),
               ("gracePeriodSeconds", "integer", "Seconds before the object is deleted."),
               ("propagationPolicy", "string", "Orphan, Background or Foreground.")),
}
_FORCE = ("force", "boolean", "Take over conflicting fields (server-side apply only).")


def _param(name: str, type_: str, description: str, style: _Style, where: str = "query",
           ) -> Doc:
    param: Doc = {"name": name, "in": where, "description": description,
                  "uniqueItems": True}
    if where == "path":
        param["required"] = True
    if style is V3:
        param["schema"] = {"type": type_, "uniqueItems": True}
        param.pop("uniqueItems")
    else:
        param["type"] = type_
    return param


def _operation_id(verb: str, r: Resource, scope: str) -> str:
    group = r.group.removesuffix(".k8s.io") or "core"
    words = "".join(w.capitalize() for w in group.split("."))
    kind = r.kind + ("Status" if r.plural.endswith("/status") else "")
    return f"{verb}{words}{r.version.capitalize()}{scope}{kind}"


def _operation(action: str, r: Resource, scope: str, model: str, style: _Style) -> Doc:
    """One operation; `action` is kube-apiserver's x-kubernetes-action."""
    verb = {"get": "read", "post": "create", "put": "replace", "deletecollection":
            "deleteCollection"}.get(action, action)
    tag = f"{r.group.removesuffix('.k8s.io').replace('.', '') or 'core'}_{r.version}"
    op: Doc = {"description": f"{verb} {r.kind}", "operationId": _operation_id(verb, r, scope),
               "tags": [tag],
               "x-kubernetes-action": action,
               "x-kubernetes-group-version-kind": _gvk(r.group, r.version, r.kind)[0]}
    names = {"list": ("list",), "post": ("write",), "put": ("write",), "patch": ("write",),
             "delete": ("delete",), "deletecollection": ("list", "delete")}.get(action, ())
    params = [_param(*p, style) for group in names for p in _QUERY_PARAMS[group]]
    if action == "patch":
        params.append(_param(*_FORCE, style))
    if params:
        op["parameters"] = params
    body = {"post": model, "put": model, "patch": _PATCH, "delete": _DELETE_OPTIONS,
            "deletecollection": _DELETE_OPTIONS}.get(action)
    _add_body(op, body, action, style)
    _add_responses(op, action, model, style)
    return op


def _add_body(op: Doc, body: str | None, action: str, style: _Style) -> None:
    if body is None:
        return
    types = _PATCH_TYPES if action == "patch" else ("*/*",)
    if style is V3:
        op["requestBody"] = {"content": {t: {"schema": style.ref(body)} for t in types},
                             "required": action != "delete"}
        return
    op.setdefault("parameters", []).append(
        {"name": "body", "in": "body", "required": action != "delete",
         "schema": style.ref(body)})
    op["consumes"] = list(types)


def _add_responses(op: Doc, action: str, model: str, style: _Style) -> None:
    result = _STATUS if action == "deletecollection" else model
    codes = {"post": ("200", "201", "202"), "put": ("200", "201"), "patch": ("200", "201"),
             "delete": ("200", "202")}.get(action, ("200",))
    media = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
    responses: Doc = {}
    for code in codes:
        if style is V3:
            responses[code] = {"description": "OK", "content": {
                m: {"schema": style.ref(result)} for m in media}}
        else:
            responses[code] = {"description": "OK", "schema": style.ref(result)}
    responses["401"] = {"description": "Unauthorized"}
    op["responses"] = responses
    if style is V2:
        op["produces"] = list(media)
        op["schemes"] = ["https"]


def _path_item(r: Resource, actions: Sequence[str], scope: str, path_params: Sequence[str],
               model: str, style: _Style) -> Doc:
    methods = {"list": "get", "get": "get", "post": "post", "put": "put", "patch": "patch",
               "delete": "delete", "deletecollection": "delete"}
    item: Doc = {methods[a]: _operation(a, r, scope, model, style) for a in actions}
    item["parameters"] = [_param(p, "string", f"{p} of the object", style, "path")
                          for p in path_params]
    item["parameters"].append(_param("pretty", "string", "Pretty-print the output.", style))
    return item


def resource_paths(r: Resource, style: _Style) -> Doc:
    """The REST paths of one resource (or subresource), as kube-apiserver serves them."""
    plural, _, sub = r.plural.partition("/")
    base = f"{r.root}/namespaces/{{namespace}}/{plural}" if r.namespaced \
        else f"{r.root}/{plural}"
    scope = "Namespaced" if r.namespaced else ""
    ns = ("namespace",) if r.namespaced else ()
    verbs = set(r.verbs)
    collection = [a for a, v in (("list", "list"), ("post", "create"),
                                 ("deletecollection", "deletecollection")) if v in verbs]
    item = [a for a, v in (("get", "get"), ("put", "update"), ("patch", "patch"),
                           ("delete", "delete")) if v in verbs]
    if r.kind == "SelfSubjectAccessReview":
        item = []  # reviews are created and answered, never stored under a name
    paths: Doc = {}
    if collection and not sub:
        paths[base] = _path_item(r, collection, scope, ns, r.model, style)
        if r.namespaced and "list" in verbs:
            paths[f"{r.root}/{plural}"] = _path_item(r, ["list"], "ForAllNamespaces", (),
                                                      r.model, style)
    if item:
        suffix = f"/{{name}}/{sub}" if sub else "/{name}"
        paths[base + suffix] = _path_item(r, item, scope, ("name", *ns), r.model, style)
    for path_item in paths.values():
        for action, op in path_item.items():
            if action != "parameters" and op["x-kubernetes-action"] == "list":
                _list_response(op, r, style)
    return paths


def _list_response(op: Doc, r: Resource, style: _Style) -> None:
    """Lists answer with `<Kind>List`, not the kind itself."""
    for response in op["responses"].values():
        if style is V3 and "content" in response:
            for media in response["content"].values():
                media["schema"] = style.ref(f"{r.model}List")
        elif "schema" in response:
            response["schema"] = style.ref(f"{r.model}List")


# --- documents -------------------------------------------------------------------------

_INFO = {"title": "Kubernetes", "version": SERVER_VERSION}
_SECURITY = {"BearerToken": {"type": "apiKey", "name": "authorization", "in": "header",
                             "description": "Bearer token authentication"}}


def _roots(resources: Sequence[Resource]) -> list[str]:
    names = [_STATUS, _DELETE_OPTIONS, _PATCH]
    for r in resources:
        names.append(r.model)
        if "list" in r.verbs and "/" not in r.plural:
            names.append(f"{r.model}List")
    return names


def _paths(resources: Sequence[Resource], style: _Style) -> Doc:
    paths: Doc = {}
    for r in resources:
        paths.update(resource_paths(r, style))
    return dict(sorted(paths.items()))


def _definitions(resources: Sequence[Resource], style: _Style) -> Doc:
    models = all_models(resources)
    return {name: model_schema(models[name], style)
            for name in sorted(_closure(_roots(resources), models))}


@functools.lru_cache(maxsize=8)
def _v2(resources: tuple[Resource, ...]) -> str:
    doc = {"swagger": "2.0", "info": _INFO, "paths": _paths(resources, V2),
           "definitions": _definitions(resources, V2), "securityDefinitions": _SECURITY,
           "security": [{"BearerToken": []}]}
    return json.dumps(doc)


def openapi_v2(resources: Iterable[ResourceLike] | None = None) -> Doc:
    """The Swagger 2.0 document of every served resource, for GET /openapi/v2 (JSON)."""
    result: Doc = json.loads(_v2(as_resources(resources)))
    return result


def _gv_key(r: Resource) -> str:
    return r.root.lstrip("/")


@functools.lru_cache(maxsize=32)
def _v3(key: str, resources: tuple[Resource, ...]) -> str:
    served = tuple(r for r in resources if _gv_key(r) == key)
    if not served:
        raise UnknownGroupVersion(key)
    doc = {"openapi": "3.0.0", "info": _INFO, "paths": _paths(served, V3),
           "components": {"schemas": _definitions(served, V3), "securitySchemes": _SECURITY}}
    return json.dumps(doc)


def _normalise_gv(group_version: str) -> str:
    """Accept `api/v1`, `apis/storage.k8s.io/v1`, `v1` or `storage.k8s.io/v1`."""
    gv = group_version.strip("/")
    if gv.startswith(("api/", "apis/")):
        return gv
    return f"apis/{gv}" if "/" in gv else f"api/{gv}"


def openapi_v3_group(group_version: str,
                     resources: Iterable[ResourceLike] | None = None) -> Doc:
    """The OpenAPI 3.0 document of one group version, for GET /openapi/v3/<path>."""
    result: Doc = json.loads(_v3(_normalise_gv(group_version), as_resources(resources)))
    return result


def openapi_v3_hash(group_version: str,
                    resources: Iterable[ResourceLike] | None = None) -> str:
    """Content hash of a v3 document, as kube-apiserver puts in `?hash=` (SHA-512, hex)."""
    body = _v3(_normalise_gv(group_version), as_resources(resources))
    return hashlib.sha512(body.encode()).hexdigest().upper()


def openapi_v3_index(resources: Iterable[ResourceLike] | None = None) -> Doc:
    """The /openapi/v3 discovery document: one entry per group version with its URL."""
    served = as_resources(resources)
    keys = sorted({_gv_key(r) for r in served})
    return {"paths": {key: {"serverRelativeURL":
                            f"/openapi/v3/{key}?hash={openapi_v3_hash(key, served)}"}
                      for key in keys}}
