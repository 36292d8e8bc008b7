"""Field selectors: `?fieldSelector=spec.nodeName=node-1,status.phase!=Failed`.

The kubelet lists its own pods with `spec.nodeName=<node>`, `kubectl get events` filters by
`involvedObject.name`, and so on. Kubernetes parses the string into equality terms
(`=`, `==`, `!=`, comma-joined, with `\\`, `\\,` and `\\=` escapes in values), checks each field
label against the short list a kind supports (answering 400 with the kind's own message when
it is not), and matches terms against a flat `dict[str, str]` of the object's selectable
fields. This module does those three steps exactly as apimachinery/fields and the core/v1
field-label conversions do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class FieldSelectorError(ValueError):
    """A field selector Kubernetes would refuse; str() is Kubernetes' message."""


class UnsupportedFieldLabel(FieldSelectorError):
    """The selector names a field the kind does not support (HTTP 400 BadRequest)."""


@dataclass(frozen=True)
class Requirement:
    """One `field=value` (or `field!=value`) term; `==` is stored as `=`."""

    field: str
    value: str
    equal: bool = True

    def matches(self, fields: Mapping[str, str]) -> bool:
        # a field the object lacks reads as "", as in fields.Set.Get
        return (fields.get(self.field, "") == self.value) is self.equal

    def __str__(self) -> str:
        return f"{self.field}{'=' if self.equal else '!='}{escape_value(self.value)}"


@dataclass(frozen=True)
class Selector:
    """A conjunction of requirements; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all(r.matches(fields) for r in self.requirements)

    def empty(self) -> bool:
        return not self.requirements

    def requires_exact(self, field: str) -> str | None:
        """The value an `=` term pins `field` to, if any (lets a store index the lookup)."""
        for r in self.requirements:
            if r.field == field and r.equal:
                return r.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = Selector()


def escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_value(value: str) -> str:
    """fields.UnescapeValue: only `\\\\`, `\\,` and `\\=` are escapes; bare `,`/`=` are errors."""
    out: list[str] = []
    in_slash = False
    for ch in value:
        if in_slash:
            if ch not in "\\,=":
                raise FieldSelectorError(
                    f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            in_slash = False
        elif ch == "\\":
            in_slash = True
        elif ch in ",=":
            # Kubernetes prints the rune with %v, which shows its code point
            raise FieldSelectorError(
                f"invalid field selector: unescaped character in value: {ord(ch)}")
        else:
            out.append(ch)
    if in_slash:
        raise FieldSelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not backslash-escaped, keeping the escapes."""
    if not selector:
        return []
    terms, start, in_slash = [], 0, False
    for i, ch in enumerate(selector):
        if in_slash:
            in_slash = False
        elif ch == "\\":
            in_slash = True
        elif ch == ",":
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


def parse(selector: str) -> Selector:
    """fields.ParseSelector: terms sorted as strings, empty terms skipped."""
    requirements = []
    for term in sorted(_split_terms(selector)):
        if not term:
            continue
        split = _split_term(term)
        if split is None:
            raise FieldSelectorError(
                f"invalid selector: '{selector}'; can't understand '{term}'")
        lhs, op, rhs = split
        requirements.append(Requirement(lhs, unescape_value(rhs), op != "!="))
    return Selector(tuple(requirements))


# --- per-kind field labels (pkg/apis/core/v1/conversion.go and the registries) --------------

_META = ("metadata.name", "metadata.namespace")
_POD_LABELS = frozenset(_META + (
    "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
    "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs",
    "status.nominatedNodeName"))
_EVENT_LABELS = frozenset(_META + (
    "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
    "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
    "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"))
# kinds with their own conversion function answer "field label not supported: X"
_OWN_LABELS: dict[str, frozenset[str]] = {
    "Pod": _POD_LABELS,
    "Event": _EVENT_LABELS,
    "Namespace": frozenset({"metadata.name", "status.phase"}),
    "Node": frozenset({"metadata.name", "spec.unschedulable"}),
    "Secret": frozenset(_META + ("type",)),
    "Service": frozenset(_META + ("spec.clusterIP", "spec.type")),
    "ReplicationController": frozenset(_META + ("status.replicas",)),
}
# a label kept for clients that predate its rename
_LEGACY_LABELS = {("Pod", "spec.host"): "spec.nodeName"}


def supported_labels(kind: str) -> frozenset[str]:
    """The field labels `kind` accepts in a field selector."""
    return _OWN_LABELS.get(kind, frozenset(_META))


def convert_label(kind: str, label: str) -> str:
    """Check (and for legacy names rename) one field label, raising as Kubernetes does."""
    if (kind, label) in _LEGACY_LABELS:
        return _LEGACY_LABELS[(kind, label)]
    if label in supported_labels(kind):
        return label
    if kind in _OWN_LABELS:
        raise UnsupportedFieldLabel(f"field label not supported: {label}")
    raise UnsupportedFieldLabel(
        f'"{label}" is not a known field selector: only "metadata.name", "metadata.namespace"')


def parse_for_kind(kind: str, selector: str) -> Selector:
    """Parse a selector and check every field label against what `kind` supports."""
    parsed = parse(selector)
    return Selector(tuple(Requirement(convert_label(kind, r.field), r.value, r.equal)
                          for r in parsed.requirements))


# --- the selectable fields of an object ----------------------------------------------------

_CLUSTER_SCOPED = frozenset({
    "Namespace", "Node", "PersistentVolume", "StorageClass", "ClusterRole",
    "ClusterRoleBinding", "CSIDriver", "CSINode", "VolumeAttachment", "VolumeAttributesClass",
    "PriorityClass", "CustomResourceDefinition", "APIService"})


def _get(obj: Mapping[str, Any], *path: str) -> Any:
    node: Any = obj
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _meta_fields(kind: str, obj: Mapping[str, Any]) -> dict[str, str]:
    fields = {"metadata.name": _text(_get(obj, "metadata", "name"))}
    if kind not in _CLUSTER_SCOPED:
        fields["metadata.namespace"] = _text(_get(obj, "metadata", "namespace"))
    return fields


def _pod_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    pod_ips = _get(obj, "status", "podIPs") or []
    first_ip = pod_ips[0].get("ip") if pod_ips and isinstance(pod_ips[0], Mapping) else None
    return {
        "spec.nodeName": _text(_get(obj, "spec", "nodeName")),
        "spec.restartPolicy": _text(_get(obj, "spec", "restartPolicy")),
        "spec.schedulerName": _text(_get(obj, "spec", "schedulerName")),
        "spec.serviceAccountName": _text(_get(obj, "spec", "serviceAccountName")),
        "spec.hostNetwork": _text(bool(_get(obj, "spec", "hostNetwork"))),
        "status.phase": _text(_get(obj, "status", "phase")),
        "status.podIP": _text(first_ip or _get(obj, "status", "podIP")),
        "status.nominatedNodeName": _text(_get(obj, "status", "nominatedNodeName")),
    }


def _event_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    involved = obj.get("involvedObject") or {}
    fields = {f"involvedObject.{key}": _text(involved.get(key))
              for key in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion",
                          "fieldPath")}
    reporting = _text(obj.get("reportingComponent"))
    fields.update({
        "reason": _text(obj.get("reason")),
        "reportingComponent": reporting,
        "source": _text(_get(obj, "source", "component")) or reporting,
        "type": _text(obj.get("type")),
    })
    return fields


def _kind_fields(kind: str, obj: Mapping[str, Any]) -> dict[str, str]:
    if kind == "Pod":
        return _pod_fields(obj)
    if kind == "Event":
        return _event_fields(obj)
    if kind == "Namespace":
        return {"status.phase": _text(_get(obj, "status", "phase"))}
    if kind == "Node":
        return {"spec.unschedulable": _text(bool(_get(obj, "spec", "unschedulable")))}
    if kind == "Secret":
        return {"type": _text(obj.get("type"))}
    if kind == "Service":
        return {"spec.clusterIP": _text(_get(obj, "spec", "clusterIP")),
                "spec.type": _text(_get(obj, "spec", "type"))}
    return {}


def object_fields(kind: str, obj: Mapping[str, Any]) -> dict[str, str]:
    """The fields of `obj` that a field selector on `kind` can test, as strings."""
    fields = _meta_fields(kind, obj)
    fields.update(_kind_fields(kind, obj))
    return fields


def matches(kind: str, selector: Selector, obj: Mapping[str, Any]) -> bool:
    """Convenience: does `obj` of `kind` satisfy `selector`."""
    return selector.matches(object_fields(kind, obj))
