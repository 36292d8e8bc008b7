"""Names both drivers derive: directory paths from a pattern, and self-describing volume ids.

Path patterns come from StorageClass parameters, and the values put into them from claim
metadata, so both are untrusted. The syntax is deliberately tiny: literal text of plain
characters and `{field}` placeholders from a fixed list (no format specs, no attribute
access, unlike `str.format`). A rendered path is relative, normalized, has no `.`/`..` or
hidden component, and is never empty, so it cannot leave the base directory nor be the base
itself; symlinked parents are checked by each driver where the files live.

A volume id carries what later calls need without the StorageClass (which may be gone by
delete time): `<driver>:v1:<url-encoded fields>`. Ids come back from PV objects that users
can write, so drivers re-validate every field they decode.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from csi_like import contract, errors

PATTERN_FIELDS = ("namespace", "pvc_name", "pvc_uid", "pv_name", "node")
_TOKEN = re.compile(r"\{([^{}]*)\}|([^{}]+)|([{}])")
_LITERAL = re.compile(r"^[A-Za-z0-9._/-]+$")
_COMPONENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$")
MAX_PATH = 1024


@dataclass(frozen=True)
class PathPattern:
    """A parsed pattern: literal strings and field names, in order."""

    source: str
    parts: tuple[tuple[bool, str], ...]  # (is_field, text)


def parse_pattern(pattern: str, parameter: str) -> PathPattern:
    """Parse `pattern`; InvalidArgument names `parameter` on any syntax problem."""
    if not pattern:
        raise errors.InvalidArgument(parameter, pattern, "must not be empty")
    if pattern.startswith("/"):
        raise errors.InvalidArgument(parameter, pattern, "must be relative (no leading '/')")
    parts: list[tuple[bool, str]] = []
    for match in _TOKEN.finditer(pattern):
        field_name, literal, stray = match.groups()
        if stray is not None:
            raise errors.InvalidArgument(parameter, pattern, f"unbalanced {stray!r}")
        if field_name is not None:
            if field_name not in PATTERN_FIELDS:
                raise errors.InvalidArgument(parameter, pattern, f"unknown field "
                                             f"{{{field_name}}}; allowed: {_allowed()}")
            parts.append((True, field_name))
        elif not _LITERAL.match(literal):
            raise errors.InvalidArgument(parameter, pattern, "literal text may contain only "
                                         "letters, digits, '.', '_', '-' and '/'")
        else:
            parts.append((False, literal))
    _check_relative(pattern, parameter, pattern)
    return PathPattern(pattern, tuple(parts))


def _allowed() -> str:
    return ", ".join("{" + name + "}" for name in PATTERN_FIELDS)


def pattern_values(claim: contract.ClaimMetadata, volume_name: str,
                   node: str = "") -> dict[str, str]:
    return {"namespace": claim.pvc_namespace, "pvc_name": claim.pvc_name,
            "pvc_uid": claim.pvc_uid, "pv_name": claim.pv_name or volume_name, "node": node}


def render(pattern: PathPattern, values: Mapping[str, str], parameter: str) -> str:
    """The relative path for these values; InvalidArgument when a value is missing or would
    change the path's shape (a '/' or '..' smuggled in through metadata)."""
    out: list[str] = []
    for is_field, text in pattern.parts:
        if not is_field:
            out.append(text)
            continue
        value = values.get(text, "")
        if not value:
            raise errors.InvalidArgument(parameter, pattern.source,
                                         f"field {{{text}}} has no value for this volume")
        if "/" in value or "\0" in value:
            raise errors.InvalidArgument(parameter, pattern.source,
                                         f"value {value!r} of {{{text}}} contains '/'")
        out.append(value)
    rendered = "".join(out)
    return _check_relative(rendered, parameter, pattern.source)


def _check_relative(path: str, parameter: str, shown: str) -> str:
    """The normalized relative path, or InvalidArgument when it could escape or is empty."""
    components = [c for c in path.split("/") if c]
    if not components:
        raise errors.InvalidArgument(parameter, shown, "must not be the base directory itself")
    for component in components:
        if "{" in component:
            continue  # an unrendered placeholder: checked again after rendering
        if component in (".", ".."):
            raise errors.InvalidArgument(parameter, shown, "must not contain '.' or '..'")
        if not _COMPONENT.match(component):
            raise errors.InvalidArgument(parameter, shown, f"component {component!r} must be "
                                         "1-255 plain characters, not starting with '.'")
    normalized = "/".join(components)
    if len(normalized) > MAX_PATH:
        raise errors.InvalidArgument(parameter, shown, f"longer than {MAX_PATH} characters")
    return normalized


def check_relative_path(path: str, parameter: str) -> str:
    """Validate a relative path decoded from a volume id the same way as a rendered one."""
    if path.startswith("/") or "{" in path or "}" in path:
        raise errors.InvalidArgument(parameter, path, "must be a relative plain path")
    return _check_relative(path, parameter, path)


def encode_volume_id(driver: str, fields: Mapping[str, str]) -> str:
    return f"{driver}:v1:{urllib.parse.urlencode(sorted(fields.items()))}"


def decode_volume_id(driver: str, volume_id: str, required: tuple[str, ...]) -> dict[str, str]:
    """The fields of one of `driver`'s ids; NotMine for another driver's, PermanentError for
    a malformed one."""
    prefix = f"{driver}:"
    if not volume_id.startswith(prefix):
        raise errors.NotMine(f"volume id {volume_id!r} is not a {driver} volume")
    version, _, encoded = volume_id[len(prefix):].partition(":")
    if version != "v1":
        raise errors.PermanentError(f"volume id {volume_id!r}: unknown version {version!r}")
    try:
        pairs = urllib.parse.parse_qsl(encoded, keep_blank_values=True, strict_parsing=True)
    except ValueError as e:
        raise errors.PermanentError(f"volume id {volume_id!r} is malformed") from e
    fields = dict(pairs)
    missing = [name for name in required if not fields.get(name)]
    if missing:
        raise errors.PermanentError(f"volume id {volume_id!r} lacks {', '.join(missing)}")
    return fields


def parse_mode(value: str, parameter: str) -> int:
    """An octal permission string ("0775", "775") into an int, at most 0o7777."""
    if not re.fullmatch(r"0?[0-7]{3,4}", value) or int(value, 8) > 0o7777:
        raise errors.InvalidArgument(parameter, value, "must be an octal mode like 0775")
    return int(value, 8)


def parse_id_number(value: str, parameter: str) -> int:
    """A uid or gid: a decimal integer in 0..2**31-1."""
    if not value.isdigit() or int(value) > 2**31 - 1:
        raise errors.InvalidArgument(parameter, value, "must be a non-negative integer")
    return int(value)


def parse_on_delete(value: str, parameter: str = "onDelete") -> str:
    if value not in ("delete", "retain", "archive"):
        raise errors.InvalidArgument(parameter, value, "must be delete, retain or archive")
    return value


def path_claim_name(path: str) -> str:
    """The file name under which a driver notes which volume owns a relative path: a fixed
    length whatever the path, so checking a path costs one lookup, not a scan of records."""
    return hashlib.sha256(path.encode("utf-8")).hexdigest()
