"""Name rules and field errors shared by every validated object.

Kubernetes checks object names, namespaces, label keys and values, annotation keys and
ConfigMap keys with a handful of regular expressions, and reports each failure as a field
error whose text clients (and people) read: "Invalid value: \"Foo\": a lowercase RFC 1123
label must consist of ...". This module holds those checks (each returns Kubernetes' list of
messages, empty when valid), the constructors that turn a message into a `Cause` worded as
`field.Error.ErrorBody()` words it, and `validate_object_meta`, the part of validation every
kind shares.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from apimachinery.errors import Cause

NameValidator = Callable[[str, bool], list[str]]

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
FORBIDDEN = "FieldValueForbidden"
DUPLICATE = "FieldValueDuplicate"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"
NOT_FOUND = "FieldValueNotFound"

FIELD_IMMUTABLE = "field is immutable"
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
QUALIFIED_NAME_MAX = 63
LABEL_VALUE_MAX = 63
STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                      "characters or '-', and must start and end with an alphanumeric character")
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + r"(\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                          "characters, '-' or '.', and must start and end with an alphanumeric "
                          "character")
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or "
                      "'-', start with an alphabetic character, and end with an alphanumeric "
                      "character")
_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start "
                       "and end with an alphanumeric character")
_LABEL_VALUE_FMT = "(" + _QUALIFIED_NAME_FMT + ")?"
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric "
                    "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                    "character")
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"


# --- field errors, worded as Kubernetes' field.Error.ErrorBody() ---------------------------

def go_quote(text: str) -> str:
    """Go's `%q` / strconv.Quote: double quotes, Go escapes, printable Unicode kept."""
    out = ['"']
    for ch in text:
        out.append(_go_escape(ch))
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t",
               "\v": r"\v", "\\": r"\\", '"': r"\""}


def _go_escape(ch: str) -> str:
    if ch in _GO_ESCAPES:
        return _GO_ESCAPES[ch]
    if ch.isprintable() or ch == " ":
        return ch
    code = ord(ch)
    if code < 0x80:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def render_value(value: Any) -> str:
    """How Kubernetes prints a bad value: strings quoted, scalars bare, nil as null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return go_quote(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _body(kind: str, detail: str) -> str:
    return f"{kind}: {detail}" if detail else kind


def required(path: str, detail: str = "") -> Cause:
    return Cause(path, _body("Required value", detail), REQUIRED)


def invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause(path, _body(f"Invalid value: {render_value(value)}", detail), INVALID)


def not_supported(path: str, value: Any, supported: Iterable[str]) -> Cause:
    quoted = ", ".join(go_quote(v) for v in supported)
    detail = f"supported values: {quoted}" if quoted else ""
    return Cause(path, _body(f"Unsupported value: {render_value(value)}", detail), NOT_SUPPORTED)


def forbidden(path: str, detail: str) -> Cause:
    return Cause(path, _body("Forbidden", detail), FORBIDDEN)


def duplicate(path: str, value: Any) -> Cause:
    return Cause(path, f"Duplicate value: {render_value(value)}", DUPLICATE)


def not_found(path: str, value: Any) -> Cause:
    return Cause(path, f"Not found: {render_value(value)}", NOT_FOUND)


def too_long(path: str, max_length: int) -> Cause:
    unit = "byte" if max_length == 1 else "bytes"
    return Cause(path, f"Too long: may not be more than {max_length} {unit}", TOO_LONG)


def too_many(path: str, actual: int, maximum: int) -> Cause:
    return Cause(path, f"Too many: {actual}: must have at most {maximum} items", TOO_MANY)


def immutable(path: str, value: Any) -> Cause:
    return invalid(path, value, FIELD_IMMUTABLE)


# --- the string checks of k8s.io/apimachinery/pkg/util/validation --------------------------

def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def regex_error(message: str, fmt: str, *examples: str) -> str:
    """Kubernetes' RegexError, including its double space before "or"."""
    if not examples:
        return f"{message} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{fmt}')"


def empty_error() -> str:
    return "must be non-empty"


def inclusive_range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


def _byte_len(value: str) -> int:
    return len(value.encode("utf-8", "surrogatepass"))


def _matches(fmt: str, value: str) -> bool:
    # fullmatch: Python's `$` would also accept a trailing newline, Go's does not
    return re.fullmatch(fmt, value) is not None


def is_dns1123_label(value: str) -> list[str]:
    errs = []
    if _byte_len(value) > DNS1123_LABEL_MAX:
        errs.append(max_len_error(DNS1123_LABEL_MAX))
    if not _matches(_DNS1123_LABEL_FMT, value):
        errs.append(regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if _byte_len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _matches(_DNS1123_SUBDOMAIN_FMT, value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs = []
    if _byte_len(value) > DNS1123_LABEL_MAX:
        errs.append(max_len_error(DNS1123_LABEL_MAX))
    if not _matches(_DNS1035_LABEL_FMT, value):
        errs.append(regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    """Label keys, annotation keys, finalizers, provisioner names: `[prefix/]name`."""
    parts = value.split("/")
    errs: list[str] = []
    if len(parts) > 2:
        return [
            "a qualified name "
            + regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errs.append("prefix part " + empty_error())
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    name = parts[-1]
    if not name:
        errs.append("name part " + empty_error())
    elif _byte_len(name) > QUALIFIED_NAME_MAX:
        errs.append("name part " + max_len_error(QUALIFIED_NAME_MAX))
    if not _matches(_QUALIFIED_NAME_FMT, name):
        errs.append("name part " + regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT,
                                               "MyName", "my.name", "123-abc"))
    return errs


def is_valid_label_value(value: str) -> list[str]:
    errs = []
    if _byte_len(value) > LABEL_VALUE_MAX:
        errs.append(max_len_error(LABEL_VALUE_MAX))
    if not _matches(_LABEL_VALUE_FMT, value):
        errs.append(regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def is_config_map_key(value: str) -> list[str]:
    """Keys of ConfigMap and Secret data: they become file names in a volume."""
    errs = []
    if _byte_len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _matches(_CONFIG_KEY_FMT, value):
        errs.append(regex_error(_CONFIG_KEY_MSG, _CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def is_valid_port_num(port: int) -> list[str]:
    return [] if 1 <= port <= 65535 else [inclusive_range_error(1, 65535)]


def is_valid_port_name(port: str) -> list[str]:
    """IANA_SVC_NAME, the rule for container port names."""
    errs = []
    if len(port) > 15:
        errs.append(max_len_error(15))
    if not _matches("[-a-z0-9]+", port):
        # a plain message: Kubernetes does not append the regex here
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _matches(".*[a-z].*", port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_valid_path_segment_name(name: str) -> list[str]:
    """Names that only need to be one URL path segment (RBAC objects)."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


# --- ValidateNameFunc implementations ------------------------------------------------------

def _mask_trailing_dash(name: str) -> str:
    # generateName may end in "-" (a suffix follows); Kubernetes swaps the last two
    # characters for an "a" before checking, and so do we.
    if len(name) > 1 and name.endswith("-"):
        return name[:-2] + "a"
    return name


def name_is_dns_subdomain(name: str, prefix: bool) -> list[str]:
    return is_dns1123_subdomain(_mask_trailing_dash(name) if prefix else name)


def name_is_dns_label(name: str, prefix: bool) -> list[str]:
    return is_dns1123_label(_mask_trailing_dash(name) if prefix else name)


def name_is_dns1035_label(name: str, prefix: bool) -> list[str]:
    return is_dns1035_label(_mask_trailing_dash(name) if prefix else name)


def name_is_path_segment(name: str, prefix: bool) -> list[str]:
    if prefix:
        return [f"may not contain '{c}'" for c in ("/", "%") if c in name]
    return is_valid_path_segment_name(name)


validate_namespace_name = name_is_dns_label


# --- ObjectMeta ----------------------------------------------------------------------------

def validate_labels(labels: Mapping[str, Any] | None, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for key, value in (labels or {}).items():
        causes += [invalid(path, key, m) for m in is_qualified_name(key)]
        if not isinstance(value, str):
            causes.append(invalid(path, value, "must be a string"))
            continue
        causes += [invalid(path, value, m) for m in is_valid_label_value(value)]
    return causes


def validate_annotations(annotations: Mapping[str, Any] | None, path: str) -> list[Cause]:
    causes: list[Cause] = []
    total = 0
    for key, value in (annotations or {}).items():
        # annotation keys are qualified names, but case does not matter
        causes += [invalid(path, key, m) for m in is_qualified_name(key.lower())]
        total += _byte_len(key) + _byte_len(value if isinstance(value, str) else str(value))
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        causes.append(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return causes


def validate_finalizers(finalizers: list[Any] | None, path: str) -> list[Cause]:
    causes: list[Cause] = []
    names = [f for f in finalizers or [] if isinstance(f, str)]
    for finalizer in names:
        causes += [invalid(path, finalizer, m) for m in is_qualified_name(finalizer)]
    if "orphan" in names and "foregroundDeletion" in names:
        causes.append(invalid(path, names,
                              "finalizer orphan and foregroundDeletion cannot be both set"))
    for i, finalizer in enumerate(names):
        # core kinds also demand a standard name or a domain-qualified one
        if "/" not in finalizer and finalizer not in STANDARD_FINALIZERS:
            causes.append(invalid(f"{path}[{i}]", finalizer,
                                  "name is neither a standard finalizer name nor is it fully "
                                  "qualified"))
    return causes


def validate_object_meta(meta: Mapping[str, Any] | None, namespaced: bool,
                         name_validator: NameValidator = name_is_dns_subdomain,
                         path: str = "metadata") -> list[Cause]:
    """Kubernetes' ValidateObjectMeta plus core's finalizer rule, for a create."""
    meta = meta or {}
    causes = _validate_names(meta, name_validator, path)
    causes += _validate_namespace(meta.get("namespace") or "", namespaced, path)
    generation = meta.get("generation")
    if isinstance(generation, int) and generation < 0:
        causes.append(invalid(f"{path}.generation", generation,
                              "must be greater than or equal to 0"))
    causes += validate_labels(meta.get("labels"), f"{path}.labels")
    causes += validate_annotations(meta.get("annotations"), f"{path}.annotations")
    causes += _validate_owner_references(meta.get("ownerReferences"), f"{path}.ownerReferences")
    causes += validate_finalizers(meta.get("finalizers"), f"{path}.finalizers")
    return causes


def _validate_names(meta: Mapping[str, Any], name_validator: NameValidator,
                    path: str) -> list[Cause]:
    causes: list[Cause] = []
    generate_name = meta.get("generateName") or ""
    if generate_name:
        causes += [invalid(f"{path}.generateName", generate_name, m)
                   for m in name_validator(generate_name, True)]
    name = meta.get("name") or ""
    if not name:
        causes.append(required(f"{path}.name", "name or generateName is required"))
    else:
        causes += [invalid(f"{path}.name", name, m) for m in name_validator(name, False)]
    return causes


def _validate_namespace(namespace: str, namespaced: bool, path: str) -> list[Cause]:
    if not namespaced:
        if namespace:
            return [forbidden(f"{path}.namespace", "not allowed on this type")]
        return []
    if not namespace:
        return [required(f"{path}.namespace")]
    return [invalid(f"{path}.namespace", namespace, m)
            for m in validate_namespace_name(namespace, False)]


def _validate_owner_references(refs: list[Any] | None, path: str) -> list[Cause]:
    causes: list[Cause] = []
    controller = ""
    for ref in refs or []:
        if not isinstance(ref, Mapping):
            continue
        api_version = ref.get("apiVersion") or ""
        if not api_version.split("/")[-1]:
            causes.append(invalid(f"{path}.apiVersion", api_version, "version must not be empty"))
        for key in ("kind", "name", "uid"):
            if not ref.get(key):
                causes.append(invalid(f"{path}.{key}", ref.get(key) or "", "must not be empty"))
        if ref.get("controller") is True:
            name = ref.get("name") or ""
            if controller:
                causes.append(invalid(path, name, "Only one reference can have Controller set "
                                      f"to true. Found \"true\" in references for {controller} "
                                      f"and {name}"))
            controller = name
    return causes


def validate_object_meta_update(new: Mapping[str, Any] | None, old: Mapping[str, Any] | None,
                                path: str = "metadata") -> list[Cause]:
    """Kubernetes' ValidateObjectMetaUpdate: identity fields may not change."""
    new, old = new or {}, old or {}
    causes: list[Cause] = []
    for key in ("name", "namespace", "uid", "creationTimestamp"):
        if (new.get(key) or "") != (old.get(key) or ""):
            causes.append(immutable(f"{path}.{key}", new.get(key) or ""))
    if old.get("deletionTimestamp") and new.get("deletionTimestamp") != old["deletionTimestamp"]:
        causes.append(immutable(f"{path}.deletionTimestamp", new.get("deletionTimestamp")))
    if old.get("deletionGracePeriodSeconds") is not None and \
            new.get("deletionGracePeriodSeconds") != old["deletionGracePeriodSeconds"]:
        causes.append(immutable(f"{path}.deletionGracePeriodSeconds",
                                new.get("deletionGracePeriodSeconds")))
    if old.get("deletionTimestamp") and set(new.get("finalizers") or []) - set(
            old.get("finalizers") or []):
        added = sorted(set(new.get("finalizers") or []) - set(old.get("finalizers") or []))
        listed = ", ".join(go_quote(f) for f in added)
        causes.append(forbidden(f"{path}.finalizers",
                                "no new finalizers can be added if the object is being deleted, "
                                f"found new finalizers []string{{{listed}}}"))
    causes += validate_labels(new.get("labels"), f"{path}.labels")
    causes += validate_annotations(new.get("annotations"), f"{path}.annotations")
    causes += _validate_owner_references(new.get("ownerReferences"), f"{path}.ownerReferences")
    causes += validate_finalizers(new.get("finalizers"), f"{path}.finalizers")
    return causes


def carry_system_fields(new: dict[str, Any], old: Mapping[str, Any]) -> None:
    """rest.BeforeUpdate's fix-ups of a new ObjectMeta, to run before validating an update.

    A client may omit the uid, and may not move creation or deletion timestamps, generation
    or the deletion grace period: the stored values are carried over.
    """
    if not new.get("uid") and old.get("uid"):
        new["uid"] = old["uid"]
    for key in ("creationTimestamp", "deletionTimestamp"):
        if old.get(key):
            new[key] = old[key]
    if old.get("deletionGracePeriodSeconds") is not None and \
            new.get("deletionGracePeriodSeconds") is None:
        new["deletionGracePeriodSeconds"] = old["deletionGracePeriodSeconds"]
    if "generation" in old:
        new["generation"] = old["generation"]
