"""The local driver's configuration and StorageClass parameters, validated into values.

Node base paths are checked once when the driver is built (absolute, not "/", no duplicates,
as local-path-provisioner does); class parameters and the per-claim annotations a class
allows are checked on every request and turned into one frozen `LocalClass`, so the driver
proper works only with valid values. Every refusal is an InvalidArgument naming the field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from csi_like import contract, errors, naming

ANNOTATION_PREFIX = "storagelab.io/"
OVERRIDABLE = ("mode", "uid", "gid")
ENFORCE = ("none", "soft", "hard")
PARAMETERS = ("nodePath", "pathPattern", "mode", "uid", "gid", "enforce", "onDelete",
              "allowClaimOverrides")
ANY_NODE = "*"


@dataclass(frozen=True)
class LocalConfig:
    """Base paths per node; the key "*" serves nodes not listed."""

    node_paths: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Sequence[str]]) -> LocalConfig:
        """Validate: absolute, normalized, not "/", no duplicates; ValueError names the node."""
        checked: dict[str, tuple[str, ...]] = {}
        for node, paths in raw.items():
            if isinstance(paths, str) or not paths:
                raise ValueError(f"nodePaths[{node!r}]: needs a non-empty list of paths")
            normalized = tuple(os.path.normpath(p) for p in paths)
            for path in normalized:
                if not os.path.isabs(path) or path == "/":
                    raise ValueError(f"nodePaths[{node!r}]: {path!r} must be absolute, not /")
            if len(set(normalized)) != len(normalized):
                raise ValueError(f"nodePaths[{node!r}]: duplicate paths {list(paths)}")
            checked[node] = normalized
        return cls(checked)

    def paths_for(self, node: str) -> tuple[str, ...]:
        return self.node_paths.get(node) or self.node_paths.get(ANY_NODE) or ()


@dataclass(frozen=True)
class LocalClass:
    """A StorageClass's parameters, validated."""

    node_path: str
    pattern: naming.PathPattern
    mode: int
    uid: int | None
    gid: int | None
    enforce: str
    on_delete: str
    overridable: frozenset[str]


def parse_class(parameters: Mapping[str, str]) -> LocalClass:
    """Validate class parameters; unknown names and bad values raise InvalidArgument."""
    for name in parameters:
        if name not in PARAMETERS and not name.startswith(contract.RESERVED_PARAMETER_PREFIX):
            raise errors.InvalidArgument("parameter", name, f"unknown; known: {PARAMETERS}")
    enforce = parameters.get("enforce", "soft")
    if enforce not in ENFORCE:
        raise errors.InvalidArgument("enforce", enforce, "must be none, soft or hard")
    overrides = frozenset(filter(None, parameters.get("allowClaimOverrides", "").split(",")))
    if not overrides <= set(OVERRIDABLE):
        raise errors.InvalidArgument("allowClaimOverrides", ",".join(sorted(overrides)),
                                     f"may list only {', '.join(OVERRIDABLE)}")
    return LocalClass(
        node_path=parameters.get("nodePath", ""),
        pattern=naming.parse_pattern(parameters.get("pathPattern", "{pv_name}"), "pathPattern"),
        mode=naming.parse_mode(parameters.get("mode", "0777"), "mode"),
        uid=_optional_id(parameters, "uid"), gid=_optional_id(parameters, "gid"),
        enforce=enforce, on_delete=naming.parse_on_delete(parameters.get("onDelete", "delete")),
        overridable=overrides)


def _optional_id(values: Mapping[str, str], key: str, label: str = "") -> int | None:
    raw = values.get(key)
    return None if raw is None else naming.parse_id_number(raw, label or key)


def apply_claim_overrides(cls: LocalClass, annotations: Mapping[str, str]) -> LocalClass:
    """mode/uid/gid from `storagelab.io/<field>` claim annotations, where the class allows."""
    changes: dict[str, Any] = {}
    for field_name in OVERRIDABLE:
        key = ANNOTATION_PREFIX + field_name
        if key not in annotations:
            continue
        if field_name not in cls.overridable:
            raise errors.InvalidArgument(f"annotation {key}", annotations[key],
                                         "the StorageClass does not allow this override")
        if field_name == "mode":
            changes["mode"] = naming.parse_mode(annotations[key], f"annotation {key}")
        else:
            changes[field_name] = _optional_id(annotations, key, f"annotation {key}")
    return replace(cls, **changes)


def pick_node(topology: contract.TopologyRequirement | None, config: LocalConfig) -> str:
    """The node the volume goes to: the first preferred, else requisite, hostname segment;
    with no topology, the only configured node."""
    candidates = (topology.preferred + topology.requisite) if topology else ()
    for segment in candidates:
        node = segment.segments.get(contract.TOPOLOGY_HOSTNAME_KEY)
        if node:
            return node
    named = [n for n in config.node_paths if n != ANY_NODE]
    if len(named) == 1 and ANY_NODE not in config.node_paths:
        return named[0]
    raise errors.InvalidArgument("topology", None, "local volumes need a node: a topology "
                                 f"requirement with {contract.TOPOLOGY_HOSTNAME_KEY}")


def choose_base(config: LocalConfig, node: str, wanted: str) -> str:
    paths = config.paths_for(node)
    if not paths:
        raise errors.NodeUnsuitable(f"node {node!r} has no local base path configured", node)
    if not wanted:
        return paths[0]
    if os.path.normpath(wanted) not in paths:
        raise errors.InvalidArgument("nodePath", wanted, f"not a base path of node {node!r}: "
                                     f"{list(paths)}")
    return os.path.normpath(wanted)
