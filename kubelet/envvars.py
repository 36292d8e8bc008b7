"""A container's environment, resolved as the kubelet resolves it before creating it.

`env` values, `valueFrom` (configMapKeyRef, secretKeyRef, fieldRef) and `envFrom` come
together here, in Kubernetes' order (envFrom first, then env overriding), with `$(VAR)`
references expanded against what is already defined. A missing, non-optional source is a
`ContainerConfigError`, which the kubelet reports as CreateContainerConfigError.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from kubelet.volumes import ObjectSource

Object = dict[str, Any]
_REFERENCE = re.compile(r"\$\$|\$\(([^)]*)\)")


class ContainerConfigError(Exception):
    """The container cannot be configured (missing configMap, key, secret, bad subPath)."""


def expand(value: str, defined: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: `$$` escapes, undefined references stay as written."""
    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return defined.get(name, match.group(0))
    return _REFERENCE.sub(substitute, value)


def expand_sub_path_expr(expr: str, env: Mapping[str, str]) -> str:
    """A volumeMount's `subPathExpr` with `$(VAR)` taken from the container's environment.

    Unlike in command and args, a reference that is undefined or empty is an error here
    (Kubernetes' ExpandContainerVolumeMounts), naming every missing variable, sorted.
    """
    missing: set[str] = set()

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        value = env.get(match.group(1), "")
        if not value:
            missing.add(match.group(1))
        return value
    expanded = _REFERENCE.sub(substitute, expr)
    if missing:
        raise ContainerConfigError(f"missing value for {', '.join(sorted(missing))}")
    return expanded


def _source_data(objects: ObjectSource, kind: str, namespace: str, name: str
                 ) -> dict[str, str] | None:
    obj = objects.get(kind, namespace, name)
    if obj is None:
        return None
    if kind == "secrets":
        return {k: base64.b64decode(v).decode(errors="replace")
                for k, v in (obj.get("data") or {}).items()}
    return dict(obj.get("data") or {})


def _key_ref(objects: ObjectSource, namespace: str, kind: str, ref: Object) -> str | None:
    label = "ConfigMap" if kind == "configmaps" else "Secret"
    data = _source_data(objects, kind, namespace, ref.get("name", ""))
    if data is None:
        if ref.get("optional"):
            return None
        raise ContainerConfigError(f'{kind[:-1]} "{ref.get("name", "")}" not found')
    if ref["key"] not in data:
        if ref.get("optional"):
            return None
        raise ContainerConfigError(f"couldn't find key {ref['key']} in {label} "
                                   f"{namespace}/{ref.get('name', '')}")
    return str(data[ref["key"]])


def field_value(pod: Object, path: str) -> str:
    """The downward-API value of a fieldRef (the fields a kubelet knows before start)."""
    meta, spec = pod["metadata"], pod["spec"]
    values = {"metadata.name": meta.get("name", ""),
              "metadata.namespace": meta.get("namespace", ""),
              "metadata.uid": meta.get("uid", ""),
              "spec.nodeName": spec.get("nodeName", ""),
              "spec.serviceAccountName": spec.get("serviceAccountName", ""),
              "status.hostIP": "127.0.0.1"}
    if path not in values:
        raise ContainerConfigError(f"unsupported fieldRef {path!r}")
    return str(values[path])


def _from_sources(objects: ObjectSource, namespace: str, container: Object) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        kind, ref = (("configmaps", source["configMapRef"]) if "configMapRef" in source
                     else ("secrets", source.get("secretRef") or {}))
        data = _source_data(objects, kind, namespace, ref.get("name", ""))
        if data is None:
            if ref.get("optional"):
                continue
            raise ContainerConfigError(f'{kind[:-1]} "{ref.get("name", "")}" not found')
        prefix = source.get("prefix", "")
        env.update({prefix + k: v for k, v in data.items()})
    return env


def resolve(pod: Object, container: Object, objects: ObjectSource) -> dict[str, str]:
    """The environment of `container` in `pod`, every reference resolved."""
    namespace = pod["metadata"]["namespace"]
    env = _from_sources(objects, namespace, container)
    for var in container.get("env") or []:
        value: str | None
        source = var.get("valueFrom")
        if source is None:
            value = expand(var.get("value", ""), env)
        elif "configMapKeyRef" in source:
            value = _key_ref(objects, namespace, "configmaps", source["configMapKeyRef"])
        elif "secretKeyRef" in source:
            value = _key_ref(objects, namespace, "secrets", source["secretKeyRef"])
        elif "fieldRef" in source:
            value = field_value(pod, source["fieldRef"]["fieldPath"])
        else:
            raise ContainerConfigError(f"env {var['name']}: unsupported valueFrom")
        if value is not None:
            env[var["name"]] = value
    return env


def command_line(container: Object, env: Mapping[str, str]) -> tuple[list[str] | None,
                                                                      list[str] | None]:
    """(entrypoint, cmd) for the runtime: command replaces ENTRYPOINT, args replaces CMD,
    and a command without args drops the image's CMD, as Kubernetes specifies."""
    command = [expand(c, env) for c in container.get("command") or []] or None
    args = [expand(a, env) for a in container.get("args") or []] or None
    if command is not None and args is None:
        args = []
    return command, args
