"""Who may do what: RBAC and the node authorizer, evaluated exactly as kube-apiserver does.

Pure logic over Kubernetes objects as dicts. `request_attributes` turns an HTTP request into
the attributes Kubernetes authorizes (verb, namespace, group, resource, subresource, name);
`RBACAuthorizer` walks ClusterRoleBindings and RoleBindings with Kubernetes' rule matching
(wildcards, `*/subresource`, resourceNames, nonResourceURLs, aggregated ClusterRoles);
`NodeAuthorizer` confines each kubelet to its own node's objects; `forbidden_error` builds
the 403 Status with Kubernetes' message. `bootstrap_policy` is the default roles and
bindings a new cluster is seeded with.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from apimachinery.errors import APIError
from apiserver.authn import (
    ANONYMOUS_USER,
    AUTHENTICATED_GROUP,
    UNAUTHENTICATED_GROUP,
    UserInfo,
    anonymous_user,
)

MASTERS_GROUP = "system:masters"
NODES_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
NODE_LEASE_NAMESPACE = "kube-node-lease"
RBAC_GROUP = "rbac.authorization.k8s.io"

Object = dict[str, Any]


MAX_REMEMBERED_DECISIONS = 8192


@dataclass(frozen=True)
class Attributes:
    """One request as the authorizers see it (Kubernetes' authorizer.Attributes).

    `name` is the object's name; for list/watch it is lifted from a `metadata.name` field
    selector, and for create the server should fill it from the body so the node authorizer
    can confine a kubelet to its own Node, Lease and CSINode. `field_selector` holds the
    request's equality requirements (`spec.nodeName=...`).
    """

    user: UserInfo
    verb: str
    namespace: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""
    resource_request: bool = True
    api_version: str = ""
    field_selector: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Decision:
    """`reason` says which binding allowed, or why a specialised authorizer refused."""

    allowed: bool
    reason: str = ""


class Authorizer(Protocol):
    def authorize(self, attrs: Attributes) -> Decision: ...


# --- rule matching (pkg/apis/rbac/v1/evaluation_helpers.go) ---------------------------------

def rule_allows(attrs: Attributes, rule: Mapping[str, Any]) -> bool:
    """Whether one PolicyRule covers the request."""
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    if not attrs.resource_request:
        return _non_resource_url_matches(rule.get("nonResourceURLs") or [], attrs.path)
    groups = rule.get("apiGroups") or []
    if "*" not in groups and attrs.api_group not in groups:
        return False
    if not _resource_matches(rule.get("resources") or [], attrs.resource, attrs.subresource):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


def _resource_matches(resources: Sequence[str], resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for candidate in resources:
        if candidate in ("*", combined):
            return True
        if subresource and candidate == f"*/{subresource}":
            return True
    return False


def _non_resource_url_matches(urls: Sequence[str], path: str) -> bool:
    for url in urls:
        if url in ("*", path):
            return True
        if url.endswith("*") and path.startswith(url[:-1]):
            return True
    return False


# --- RBAC ---------------------------------------------------------------------------------

class RBACLister(Protocol):
    """The server's current RBAC objects (rbac.authorization.k8s.io/v1 dicts)."""

    def get_cluster_role(self, name: str) -> Object | None: ...

    def list_cluster_roles(self) -> Iterable[Object]: ...

    def list_cluster_role_bindings(self) -> Iterable[Object]: ...

    def get_role(self, namespace: str, name: str) -> Object | None: ...

    def list_role_bindings(self, namespace: str) -> Iterable[Object]: ...


class StaticRBACLister:
    """An RBACLister over a fixed list of objects (a snapshot, a cache, or a test)."""

    def __init__(self, objects: Iterable[Object]) -> None:
        self._by_kind: dict[str, list[Object]] = {}
        for obj in objects:
            self._by_kind.setdefault(obj.get("kind", ""), []).append(obj)

    def _of(self, kind: str, namespace: str | None = None) -> list[Object]:
        found = self._by_kind.get(kind, [])
        if namespace is None:
            return found
        return [o for o in found if o.get("metadata", {}).get("namespace", "") == namespace]

    def get_cluster_role(self, name: str) -> Object | None:
        return next((o for o in self._of("ClusterRole") if _name(o) == name), None)

    def list_cluster_roles(self) -> list[Object]:
        return self._of("ClusterRole")

    def list_cluster_role_bindings(self) -> list[Object]:
        return self._of("ClusterRoleBinding")

    def get_role(self, namespace: str, name: str) -> Object | None:
        return next((o for o in self._of("Role", namespace) if _name(o) == name), None)

    def list_role_bindings(self, namespace: str) -> list[Object]:
        return self._of("RoleBinding", namespace)


@dataclass(frozen=True)
class _Grant:
    """A rule reached through a binding, or the error met on the way (a missing role)."""

    source: str
    rule: Mapping[str, Any] | None = None
    error: str = ""


class RBACAuthorizer:
    """RBAC over a fixed set of roles and bindings: the same request always gets the same
    decision, so decisions are remembered (the server builds a new authorizer, with an empty
    memory, whenever a role or binding changes)."""

    def __init__(self, lister: RBACLister) -> None:
        self.lister = lister
        self._decisions: dict[Attributes, Decision] = {}

    def authorize(self, attrs: Attributes) -> Decision:
        decision = self._decisions.get(attrs)
        if decision is None:
            decision = self._decide(attrs)
            if len(self._decisions) >= MAX_REMEMBERED_DECISIONS:
                self._decisions.clear()
            self._decisions[attrs] = decision
        return decision

    def _decide(self, attrs: Attributes) -> Decision:
        errors: list[str] = []
        for grant in self._grants(attrs.user, attrs.namespace):
            if grant.rule is not None and rule_allows(attrs, grant.rule):
                return Decision(True, f"RBAC: allowed by {grant.source}")
            if grant.error:
                errors.append(grant.error)
        if not errors:
            return Decision(False, "")
        joined = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
        return Decision(False, f"RBAC: {joined}")

    def rules_for(self, user: UserInfo, namespace: str) -> list[Mapping[str, Any]]:
        """Every rule that applies to `user` in `namespace` (for SelfSubjectRulesReview)."""
        return [g.rule for g in self._grants(user, namespace) if g.rule is not None]

    def _grants(self, user: UserInfo, namespace: str) -> Iterator[_Grant]:
        for binding in self.lister.list_cluster_role_bindings():
            yield from self._binding_grants(user, binding, "", "ClusterRoleBinding")
        if namespace:
            for binding in self.lister.list_role_bindings(namespace):
                yield from self._binding_grants(user, binding, namespace, "RoleBinding")

    def _binding_grants(self, user: UserInfo, binding: Object, namespace: str,
                        kind: str) -> Iterator[_Grant]:
        subject = _matching_subject(user, binding.get("subjects") or [], namespace)
        if subject is None:
            return
        ref = binding.get("roleRef") or {}
        label = _name(binding) + (f"/{namespace}" if namespace else "")
        source = (f'{kind} "{label}" of {ref.get("kind", "")} "{ref.get("name", "")}" to '
                  f"{_describe_subject(subject, namespace)}")
        rules, error = self._role_rules(ref, namespace)
        if error:
            yield _Grant(source, error=error)
        for rule in rules:
            yield _Grant(source, rule=rule)

    def _role_rules(self, ref: Mapping[str, Any], namespace: str
                    ) -> tuple[list[Mapping[str, Any]], str]:
        name = ref.get("name", "")
        if ref.get("kind") == "Role":
            role = self.lister.get_role(namespace, name) if namespace else None
            if role is None:
                return [], f'role.{RBAC_GROUP} "{name}" not found'
            return list(role.get("rules") or []), ""
        if ref.get("kind") == "ClusterRole":
            cluster_role = self.lister.get_cluster_role(name)
            if cluster_role is None:
                return [], f'clusterrole.{RBAC_GROUP} "{name}" not found'
            return self._cluster_role_rules(cluster_role, set()), ""
        return [], f'unsupported role reference kind: "{ref.get("kind", "")}"'

    def _cluster_role_rules(self, role: Object, visiting: set[str]
                            ) -> list[Mapping[str, Any]]:
        """A role's rules; for an aggregated role, the union of the roles its selectors pick.

        Kubernetes' aggregation controller writes that union into the role; computing it
        here keeps it current without a controller.
        """
        selectors = (role.get("aggregationRule") or {}).get("clusterRoleSelectors")
        if not selectors:
            return list(role.get("rules") or [])
        visiting = visiting | {_name(role)}
        rules: list[Mapping[str, Any]] = []
        for other in self.lister.list_cluster_roles():
            labels = other.get("metadata", {}).get("labels") or {}
            if _name(other) not in visiting and any(selector_matches(s, labels)
                                                    for s in selectors):
                rules += self._cluster_role_rules(other, visiting)
        return rules


def _matching_subject(user: UserInfo, subjects: Iterable[Mapping[str, Any]],
                      namespace: str) -> Mapping[str, Any] | None:
    return next((s for s in subjects if _applies_to(user, s, namespace)), None)


def _applies_to(user: UserInfo, subject: Mapping[str, Any], namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "User":
        return bool(user.name == name)
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        # An unqualified service account means "in the binding's namespace".
        sa_namespace = subject.get("namespace") or namespace
        return bool(sa_namespace) and user.name == f"{SERVICE_ACCOUNT_PREFIX}{sa_namespace}:{name}"
    return False


def _describe_subject(subject: Mapping[str, Any], namespace: str) -> str:
    kind, name = subject.get("kind", ""), subject.get("name", "")
    if kind == "ServiceAccount":
        return f'{kind} "{name}/{subject.get("namespace") or namespace}"'
    return f'{kind} "{name}"'


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics: every matchLabels pair and matchExpressions term."""
    if not selector:
        return False  # an empty selector in a ClusterRoleSelector selects nothing
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    return all(_expression_matches(e, labels) for e in selector.get("matchExpressions") or [])


def _expression_matches(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, operator = expression.get("key", ""), expression.get("operator")
    values = expression.get("values") or []
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    return False


# --- system:masters and the union ---------------------------------------------------------

class PrivilegedGroupAuthorizer:
    """Members of system:masters may do everything, whatever RBAC says."""

    def __init__(self, groups: Sequence[str] = (MASTERS_GROUP,)) -> None:
        self.groups = frozenset(groups)

    def authorize(self, attrs: Attributes) -> Decision:
        return Decision(bool(self.groups & set(attrs.user.groups)))


class UnionAuthorizer:
    """Ask each authorizer in turn; the first that allows wins, refusals' reasons are joined."""

    def __init__(self, authorizers: Sequence[Authorizer]) -> None:
        self.authorizers = tuple(authorizers)

    def authorize(self, attrs: Attributes) -> Decision:
        reasons: list[str] = []
        for authorizer in self.authorizers:
            decision = authorizer.authorize(attrs)
            if decision.allowed:
                return decision
            if decision.reason:
                reasons.append(decision.reason)
        return Decision(False, "\n".join(reasons))


def default_authorizer(lister: RBACLister, graph: NodeGraph) -> UnionAuthorizer:
    """kube-apiserver's `--authorization-mode=Node,RBAC` behind the system:masters check."""
    return UnionAuthorizer([PrivilegedGroupAuthorizer(), NodeAuthorizer(graph),
                            RBACAuthorizer(lister)])


# --- the node authorizer (plugin/pkg/auth/authorizer/node) --------------------------------

class NodeGraph(Protocol):
    """Which objects the pods bound to a node use."""

    def pod_on_node(self, node: str, namespace: str, name: str) -> bool: ...

    def node_uses(self, node: str, resource: str, namespace: str, name: str) -> bool:
        """`resource` is secrets, configmaps, persistentvolumeclaims or persistentvolumes
        (namespace "" for persistentvolumes)."""
        ...


@dataclass(frozen=True)
class PodGraph:
    """A NodeGraph built from a snapshot of pods and the claims they mount."""

    pods: Mapping[str, frozenset[tuple[str, str]]] = field(default_factory=dict)
    uses: Mapping[str, frozenset[tuple[str, str, str]]] = field(default_factory=dict)

    @classmethod
    def from_objects(cls, pods: Iterable[Object], pvcs: Iterable[Object] = (),
                     pvs: Iterable[Object] = ()) -> PodGraph:
        volume_of = {(_namespace(c), _name(c)): (c.get("spec") or {}).get("volumeName", "")
                     for c in pvcs}
        secrets_of_pv = {_name(v): _pv_secrets(v) for v in pvs}
        pods_by_node: dict[str, set[tuple[str, str]]] = {}
        uses_by_node: dict[str, set[tuple[str, str, str]]] = {}
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if not node:
                continue  # unscheduled pods give no node access to anything
            pods_by_node.setdefault(node, set()).add((_namespace(pod), _name(pod)))
            uses = uses_by_node.setdefault(node, set())
            for ref in pod_references(pod):
                uses.add(ref)
                if ref[0] == "persistentvolumeclaims" and volume_of.get(ref[1:]):
                    pv = volume_of[ref[1:]]
                    uses.add(("persistentvolumes", "", pv))
                    uses.update(secrets_of_pv.get(pv, ()))
        return cls({n: frozenset(p) for n, p in pods_by_node.items()},
                   {n: frozenset(u) for n, u in uses_by_node.items()})

    def pod_on_node(self, node: str, namespace: str, name: str) -> bool:
        return (namespace, name) in self.pods.get(node, frozenset())

    def node_uses(self, node: str, resource: str, namespace: str, name: str) -> bool:
        return (resource, namespace, name) in self.uses.get(node, frozenset())


def pod_references(pod: Object) -> set[tuple[str, str, str]]:
    """(resource, namespace, name) of every secret, configMap and claim a pod refers to."""
    namespace, spec = _namespace(pod), pod.get("spec") or {}
    refs: set[tuple[str, str]] = {("secrets", s.get("name", ""))
                                  for s in spec.get("imagePullSecrets") or []}
    for volume in spec.get("volumes") or []:
        refs |= _volume_references(volume, _name(pod))
    for container in _containers(spec):
        refs |= _env_references(container)
    return {(resource, namespace, name) for resource, name in refs if name}


def _volume_references(volume: Mapping[str, Any], pod_name: str) -> set[tuple[str, str]]:
    refs: set[tuple[str, str]] = set()
    if "secret" in volume:
        refs.add(("secrets", volume["secret"].get("secretName", "")))
    if "configMap" in volume:
        refs.add(("configmaps", volume["configMap"].get("name", "")))
    if "persistentVolumeClaim" in volume:
        refs.add(("persistentvolumeclaims", volume["persistentVolumeClaim"].get("claimName", "")))
    if "ephemeral" in volume:  # the generic ephemeral volume's claim is named <pod>-<volume>
        refs.add(("persistentvolumeclaims", f"{pod_name}-{volume.get('name', '')}"))
    for source in (volume.get("projected") or {}).get("sources") or []:
        if "secret" in source:
            refs.add(("secrets", source["secret"].get("name", "")))
        if "configMap" in source:
            refs.add(("configmaps", source["configMap"].get("name", "")))
    for driver_field in ("csi", "flexVolume", "cephfs", "rbd", "iscsi", "azureFile"):
        ref = (volume.get(driver_field) or {})
        secret = ref.get("nodePublishSecretRef") or ref.get("secretRef") or {}
        if secret.get("name"):
            refs.add(("secrets", secret["name"]))
    return refs


def _containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def _env_references(container: Mapping[str, Any]) -> set[tuple[str, str]]:
    refs: set[tuple[str, str]] = set()
    for source in container.get("envFrom") or []:
        if "secretRef" in source:
            refs.add(("secrets", source["secretRef"].get("name", "")))
        if "configMapRef" in source:
            refs.add(("configmaps", source["configMapRef"].get("name", "")))
    for env in container.get("env") or []:
        value_from = env.get("valueFrom") or {}
        if "secretKeyRef" in value_from:
            refs.add(("secrets", value_from["secretKeyRef"].get("name", "")))
        if "configMapKeyRef" in value_from:
            refs.add(("configmaps", value_from["configMapKeyRef"].get("name", "")))
    return refs


def _pv_secrets(pv: Object) -> set[tuple[str, str, str]]:
    csi = (pv.get("spec") or {}).get("csi") or {}
    refs = set()
    for key in ("nodePublishSecretRef", "nodeStageSecretRef", "nodeExpandSecretRef",
                "controllerPublishSecretRef"):
        ref = csi.get(key) or {}
        if ref.get("name"):
            refs.add(("secrets", ref.get("namespace", ""), ref["name"]))
    return refs


def node_name_of(user: UserInfo) -> str | None:
    """The node a kubelet identity speaks for; None for anyone who is not a node."""
    if not user.name.startswith(NODE_USER_PREFIX) or NODES_GROUP not in user.groups:
        return None
    return user.name[len(NODE_USER_PREFIX):]


# Requests a kubelet may make whatever the graph says (bootstrappolicy.NodeRules, minus the
# resources decided object by object below).
NODE_STATIC_RULES: tuple[Mapping[str, Any], ...] = (
    {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
    {"apiGroups": ["authorization.k8s.io"],
     "resources": ["localsubjectaccessreviews", "subjectaccessreviews"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"],
     "verbs": ["create", "patch", "update"]},
    {"apiGroups": [""], "resources": ["endpoints"], "verbs": ["get"]},
    {"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"],
     "verbs": ["create", "get", "list", "watch"]},
    {"apiGroups": ["storage.k8s.io"], "resources": ["csidrivers"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["node.k8s.io"], "resources": ["runtimeclasses"],
     "verbs": ["get", "list", "watch"]},
)

_NO_RELATIONSHIP = "no relationship found between node '{node}' and this object"


class NodeAuthorizer:
    """A kubelet reads only what its pods use and writes only its own objects.

    Follows Kubernetes' Node authorizer with AuthorizeNodeWithSelectors, and also enforces
    here what NodeRestriction admission adds there (own Node, own pods' status).
    """

    def __init__(self, graph: NodeGraph) -> None:
        self.graph = graph

    def authorize(self, attrs: Attributes) -> Decision:
        node = node_name_of(attrs.user)
        if node is None:
            return Decision(False)
        if not node:
            return Decision(False, f'unknown node for user "{attrs.user.name}"')
        if attrs.resource_request:
            check = _NODE_CHECKS.get((attrs.api_group, attrs.resource))
            if check is not None:
                return check(self, node, attrs)
        return Decision(any(rule_allows(attrs, r) for r in NODE_STATIC_RULES))

    def _related(self, node: str, attrs: Attributes) -> Decision:
        if not attrs.name:
            return Decision(False, "No Object name found")
        if self.graph.node_uses(node, attrs.resource, attrs.namespace, attrs.name):
            return Decision(True)
        return Decision(False, _NO_RELATIONSHIP.format(node=node))

    def _read_namespaced(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb not in ("get", "list", "watch"):
            return Decision(False, "can only read resources of this type")
        if attrs.subresource:
            return Decision(False, "cannot read subresource")
        if not attrs.namespace:
            return Decision(False, "can only read namespaced object of this type")
        return self._related(node, attrs)

    def _get_only(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb != "get":
            return Decision(False, "can only get individual resources of this type")
        if attrs.subresource:
            return Decision(False, "cannot get subresource")
        return self._related(node, attrs)

    def _claims(self, node: str, attrs: Attributes) -> Decision:
        if attrs.subresource != "status":
            return self._get_only(node, attrs)
        if attrs.verb not in ("update", "patch"):
            return Decision(False, "can only get/update/patch this type")
        return self._related(node, attrs)

    def _nodes(self, node: str, attrs: Attributes) -> Decision:
        verb, name = attrs.verb, attrs.name
        reads = ("get", "list", "watch")
        writes = ("create", "update", "patch") if not attrs.subresource else ("update", "patch")
        if attrs.subresource not in ("", "status") or verb not in (*reads, *writes):
            return Decision(False)
        if name == node:
            return Decision(True)
        if verb in reads and not attrs.subresource:
            if not name:
                return Decision(False, f"node '{node}' cannot read all nodes, only its own "
                                       f"Node object")
            return Decision(False, f"node '{node}' cannot read '{name}', only its own Node "
                                   f"object")
        return Decision(False, f'node "{node}" is not allowed to modify node "{name}"')

    def _pods(self, node: str, attrs: Attributes) -> Decision:
        verb, sub = attrs.verb, attrs.subresource
        on_node = bool(attrs.name) and self.graph.pod_on_node(node, attrs.namespace, attrs.name)
        if sub == "" and verb in ("list", "watch"):
            if ("spec.nodeName", node) in attrs.field_selector or on_node:
                return Decision(True)
            return Decision(False, "can only list/watch pods with spec.nodeName field selector")
        if (sub, verb) in (("", "get"), ("", "delete"), ("eviction", "create")):
            return Decision(True) if on_node else Decision(
                False, _NO_RELATIONSHIP.format(node=node))
        if sub == "status" and verb in ("update", "patch"):
            return Decision(True) if on_node else Decision(
                False, f'node "{node}" can only update pod status for pods with spec.nodeName '
                       f"set to itself")
        return Decision(False)


_NodeCheck = Callable[[NodeAuthorizer, str, Attributes], Decision]


def _own_named(what: str, namespace: str | None) -> _NodeCheck:
    """Leases and CSINodes: only the one named after the node (leases in kube-node-lease).

    Kubernetes leaves the name check on create to NodeRestriction admission; here the server
    passes the body's name in `Attributes.name` and the check is made for every verb.
    """
    def check(_: NodeAuthorizer, node: str, attrs: Attributes) -> Decision:
        if attrs.verb not in ("get", "create", "update", "patch", "delete"):
            return Decision(False, f"can only get, create, update, patch, or delete a {what}")
        if attrs.subresource:
            return Decision(False, f"cannot authorize {what} subresources")
        if namespace is not None and attrs.namespace != namespace:
            return Decision(False, f'can only access leases in the "{namespace}" system '
                                   f"namespace")
        if attrs.name != node:
            return Decision(False, f"can only access {what} with the same name as the "
                                   f"requesting node")
        return Decision(True)
    return check


_NODE_CHECKS: dict[tuple[str, str], _NodeCheck] = {
    ("", "secrets"): NodeAuthorizer._read_namespaced,
    ("", "configmaps"): NodeAuthorizer._read_namespaced,
    ("", "persistentvolumeclaims"): NodeAuthorizer._claims,
    ("", "persistentvolumes"): NodeAuthorizer._get_only,
    ("", "nodes"): NodeAuthorizer._nodes,
    ("", "pods"): NodeAuthorizer._pods,
    ("coordination.k8s.io", "leases"): _own_named("node lease", NODE_LEASE_NAMESPACE),
    ("storage.k8s.io", "csinodes"): _own_named("CSINode", None),
}


# --- the 403 ------------------------------------------------------------------------------

def forbidden_message(attrs: Attributes) -> str:
    """`User "x" cannot get resource "secrets" in API group "" in the namespace "y"`."""
    user = _go_quote(attrs.user.name)
    if not attrs.resource_request:
        return f"User {user} cannot {attrs.verb} path {_go_quote(attrs.path)}"
    resource = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
    what = f"User {user} cannot {attrs.verb} resource {_go_quote(resource)} in API group " \
           f"{_go_quote(attrs.api_group)}"
    if attrs.namespace:
        return f"{what} in the namespace {_go_quote(attrs.namespace)}"
    return f"{what} at the cluster scope"


def forbidden_error(attrs: Attributes, reason: str = "") -> APIError:
    """The 403 Status kube-apiserver sends: `<resource> "<name>" is forbidden: <message>`."""
    message = _sanitize(forbidden_message(attrs))
    if reason:
        message = f"{message}: {reason}"
    resource = attrs.resource if attrs.resource_request else ""
    group = attrs.api_group if attrs.resource_request else ""
    if not resource and not group:
        return APIError(403, "Forbidden", f"forbidden: {message}")
    qualified = f"{resource}.{group}" if group else resource
    subject = f"{qualified} {_go_quote(attrs.name)}" if attrs.name else qualified
    details: dict[str, Any] = {"kind": resource}
    if group:
        details["group"] = group
    if attrs.name:
        details["name"] = attrs.name
    return APIError(403, "Forbidden", f"{subject} is forbidden: {message}", details)


def _sanitize(text: str) -> str:
    # kube-apiserver escapes these so an error is never mistaken for HTML.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _go_quote(value: str) -> str:
    """Go's %q for the printable strings names are made of."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return f'"{escaped}"'


# --- from an HTTP request to Attributes (apiserver/pkg/endpoints/request/requestinfo.go) ---

_API_PREFIXES = ("api", "apis")
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update",
                 "PATCH": "patch", "DELETE": "delete"}
_TRUE = ("1", "t", "T", "true", "TRUE", "True")


def request_attributes(user: UserInfo | None, method: str, path: str,
                       query: Mapping[str, str] | str = "") -> Attributes:
    """The attributes Kubernetes derives from a request's method, path and query."""
    user = user or anonymous_user()
    params = dict(urllib.parse.parse_qsl(query)) if isinstance(query, str) else dict(query)
    parts = [p for p in path.strip("/").split("/") if p]
    # Non-resource requests are authorized by the lowercased HTTP method (get, post, ...).
    nonresource = Attributes(user=user, verb=method.lower(), path=path, resource_request=False)
    verb = _METHOD_VERBS.get(method.upper(), "")
    if len(parts) < 3 or parts[0] not in _API_PREFIXES:
        return nonresource
    group, rest = ("", parts[1:]) if parts[0] == "api" else (parts[1], parts[2:])
    if len(rest) < 2:
        return nonresource
    version, rest = rest[0], rest[1:]
    special = rest[0] in ("watch", "proxy") and len(rest) > 1  # deprecated path forms
    if special:
        verb, rest = rest[0], rest[1:]
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 and verb != "proxy" else ""
    selector = parse_field_selector(params.get("fieldSelector", ""))
    if not name and verb == "get":
        verb = "watch" if params.get("watch", "") in _TRUE else "list"
    if not name and verb in ("list", "watch"):
        name = dict(selector).get("metadata.name", "")
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(user=user, verb=verb, namespace=namespace, api_group=group,
                      api_version=version, resource=resource, subresource=subresource,
                      name=name, path=path, field_selector=selector)


def parse_field_selector(selector: str) -> tuple[tuple[str, str], ...]:
    """The equality terms (`a=b`, `a==b`) of a field selector; `!=` terms are left out."""
    terms: list[tuple[str, str]] = []
    for term in selector.split(","):
        if "!=" in term or "=" not in term:
            continue
        key, _, value = term.partition("==") if "==" in term else term.partition("=")
        terms.append((key.strip(), value.strip()))
    return tuple(terms)


# --- bootstrap policy (plugin/pkg/auth/authorizer/rbac/bootstrappolicy) -------------------

READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
READ_WRITE = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def _rule(verbs: list[str], groups: list[str], resources: list[str],
          names: Sequence[str] = ()) -> Object:
    rule: Object = {"apiGroups": groups, "resources": resources, "verbs": verbs}
    if names:
        rule["resourceNames"] = list(names)
    return rule


def _url_rule(verbs: list[str], urls: list[str]) -> Object:
    return {"nonResourceURLs": urls, "verbs": verbs}


_AGGREGATE_TO_VIEW = [
    _rule(READ, [""], ["configmaps", "endpoints", "persistentvolumeclaims",
                       "persistentvolumeclaims/status", "pods", "replicationcontrollers",
                       "replicationcontrollers/scale", "serviceaccounts", "services",
                       "services/status"]),
    _rule(READ, [""], ["bindings", "events", "limitranges", "namespaces/status", "pods/log",
                       "pods/status", "replicationcontrollers/status", "resourcequotas",
                       "resourcequotas/status"]),
    _rule(READ, [""], ["namespaces"]),
    _rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
    _rule(READ, ["apps"], ["controllerrevisions", "daemonsets", "daemonsets/status",
                           "deployments", "deployments/scale", "deployments/status",
                           "replicasets", "replicasets/scale", "replicasets/status",
                           "statefulsets", "statefulsets/scale", "statefulsets/status"]),
    _rule(READ, ["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
    _rule(READ, ["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"]),
    _rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
    _rule(READ, ["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"]),
]

_AGGREGATE_TO_EDIT = [
    _rule(READ, [""], ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets",
                       "services/proxy"]),
    _rule(["impersonate"], [""], ["serviceaccounts"]),
    _rule(WRITE, [""], ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"]),
    _rule(["create"], [""], ["pods/eviction"]),
    _rule(WRITE, [""], ["configmaps", "events", "persistentvolumeclaims",
                        "replicationcontrollers", "replicationcontrollers/scale", "secrets",
                        "serviceaccounts", "services", "services/proxy"]),
    _rule(["create"], [""], ["serviceaccounts/token"]),
    _rule(WRITE, ["apps"], ["daemonsets", "deployments", "deployments/rollback",
                            "deployments/scale", "replicasets", "replicasets/scale",
                            "statefulsets", "statefulsets/scale"]),
    _rule(WRITE, ["autoscaling"], ["horizontalpodautoscalers"]),
    _rule(WRITE, ["batch"], ["cronjobs", "jobs"]),
    _rule(WRITE, ["policy"], ["poddisruptionbudgets"]),
    _rule(WRITE, ["networking.k8s.io"], ["ingresses", "networkpolicies"]),
    _rule(READ_WRITE, ["coordination.k8s.io"], ["leases"]),
]

_AGGREGATE_TO_ADMIN = [
    _rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
    _rule(READ_WRITE, [RBAC_GROUP], ["rolebindings", "roles"]),
]

_CONTROLLER_MANAGER = [
    _rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
    _rule(["create"], ["coordination.k8s.io"], ["leases"]),
    _rule(["get", "update"], ["coordination.k8s.io"], ["leases"], ["kube-controller-manager"]),
    _rule(["create"], [""], ["secrets", "serviceaccounts"]),
    _rule(["delete"], [""], ["secrets"]),
    _rule(["get"], [""], ["configmaps", "namespaces", "secrets", "serviceaccounts"]),
    _rule(["update"], [""], ["secrets", "serviceaccounts"]),
    _rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
    _rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
    _rule(["list", "watch"], ["*"], ["*"]),
    _rule(["create"], [""], ["serviceaccounts/token"]),
]

# What storagelab's storage controllers and volume-aware scheduler do under the single
# controller-manager identity (Kubernetes splits this across per-controller service
# accounts: persistent-volume-binder, expand-controller, pvc-protection, the scheduler).
_STORAGELAB_CONTROLLERS = [
    _rule(["create", "delete", "get", "list", "patch", "update", "watch"], [""],
          ["persistentvolumes"]),
    _rule(["get", "list", "patch", "update", "watch"], [""], ["persistentvolumeclaims"]),
    _rule(["patch", "update"], [""], ["persistentvolumeclaims/status",
                                      "persistentvolumes/status"]),
    _rule(READ, ["storage.k8s.io"], ["storageclasses", "csinodes", "csidrivers",
                                     "csistoragecapacities"]),
    # storage capacity (storage/capacity.py): the external-provisioner's capacity objects and
    # the CSIDriver objects of our drivers, which a driver's deployment would install.
    _rule(["create", "delete", "patch", "update"], ["storage.k8s.io"],
          ["csistoragecapacities", "csidrivers"]),
    # attach/detach (storage/attachdetach.py) and our external-attacher (storage/attacher.py)
    _rule(["create", "delete", "get", "list", "patch", "update", "watch"], ["storage.k8s.io"],
          ["volumeattachments"]),
    _rule(["patch", "update"], ["storage.k8s.io"], ["volumeattachments/status"]),
    _rule(["get", "list", "patch", "update", "watch"], [""], ["pods"]),
    _rule(["patch", "update"], [""], ["pods/status"]),
    _rule(["create"], [""], ["pods/binding", "bindings"]),
    _rule(READ, [""], ["nodes", "namespaces"]),
    # node lifecycle (storage/nodelifecycle.py): conditions to Unknown, NoSchedule taints
    _rule(["patch", "update"], [""], ["nodes", "nodes/status"]),
    _rule(["get"], [""], ["secrets", "configmaps"]),
    _rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
    _rule(["create", "get", "list", "patch", "update", "watch"], ["coordination.k8s.io"],
          ["leases"]),
]

_NODE = [
    _rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
    _rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews",
                                                 "subjectaccessreviews"]),
    _rule(READ, [""], ["services"]),
    _rule(["create", "get", "list", "watch"], [""], ["nodes"]),
    _rule(["patch", "update"], [""], ["nodes/status"]),
    _rule(["patch", "update"], [""], ["nodes"]),
    _rule(["create", "patch", "update"], [""], ["events"]),
    _rule(READ, [""], ["pods"]),
    _rule(["create", "delete"], [""], ["pods"]),
    _rule(["patch", "update"], [""], ["pods/status"]),
    _rule(["create"], [""], ["pods/eviction"]),
    _rule(READ, [""], ["configmaps", "secrets"]),
    _rule(["get"], [""], ["persistentvolumeclaims", "persistentvolumes"]),
    _rule(["get"], [""], ["endpoints"]),
    _rule(["create", "get", "list", "watch"], ["certificates.k8s.io"],
          ["certificatesigningrequests"]),
    _rule(["create", "delete", "get", "patch", "update"], ["coordination.k8s.io"], ["leases"]),
    _rule(["get"], ["storage.k8s.io"], ["volumeattachments"]),
    _rule(["create"], [""], ["serviceaccounts/token"]),
    _rule(["get", "patch", "update"], [""], ["persistentvolumeclaims/status"]),
    _rule(READ, ["storage.k8s.io"], ["csidrivers"]),
    _rule(["create", "delete", "get", "patch", "update"], ["storage.k8s.io"], ["csinodes"]),
    _rule(READ, ["node.k8s.io"], ["runtimeclasses"]),
]

_VOLUME_SCHEDULER = [
    _rule(["get", "list", "patch", "update", "watch"], [""], ["persistentvolumes"]),
    _rule(READ, ["storage.k8s.io"], ["storageclasses"]),
    _rule(["get", "list", "patch", "update", "watch"], [""], ["persistentvolumeclaims"]),
]


def _metadata(name: str, labels: Mapping[str, str] | None = None) -> Object:
    return {"name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults", **(labels or {})},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}}


def _cluster_role(name: str, rules: list[Object], labels: Mapping[str, str] | None = None,
                  aggregate_from: str | None = None) -> Object:
    role: Object = {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRole",
                    "metadata": _metadata(name, labels), "rules": rules}
    if aggregate_from:
        label = f"rbac.authorization.k8s.io/aggregate-to-{aggregate_from}"
        role["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {label: "true"}}]}
    return role


def _binding(name: str, role: str, subjects: list[tuple[str, str]]) -> Object:
    return {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRoleBinding",
            "metadata": _metadata(name),
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": RBAC_GROUP, "kind": kind, "name": subject}
                         for kind, subject in subjects]}


def _aggregate_label(to: str) -> dict[str, str]:
    return {f"rbac.authorization.k8s.io/aggregate-to-{to}": "true"}


def bootstrap_policy() -> list[Object]:
    """The ClusterRoles and ClusterRoleBindings a new cluster starts with.

    admin, edit and view are aggregated roles; their `rules` are filled in as Kubernetes'
    aggregation controller would, and RBACAuthorizer recomputes them from their selectors.
    """
    view = _AGGREGATE_TO_VIEW
    edit = _AGGREGATE_TO_EDIT + view
    admin = _AGGREGATE_TO_ADMIN + edit
    roles = [
        _cluster_role("cluster-admin", [_rule(["*"], ["*"], ["*"]), _url_rule(["*"], ["*"])]),
        _cluster_role("admin", admin, aggregate_from="admin"),
        _cluster_role("edit", edit, _aggregate_label("admin"), aggregate_from="edit"),
        _cluster_role("view", view, _aggregate_label("edit"), aggregate_from="view"),
        _cluster_role("system:aggregate-to-admin", _AGGREGATE_TO_ADMIN, _aggregate_label("admin")),
        _cluster_role("system:aggregate-to-edit", _AGGREGATE_TO_EDIT, _aggregate_label("edit")),
        _cluster_role("system:aggregate-to-view", _AGGREGATE_TO_VIEW, _aggregate_label("view")),
        _cluster_role("system:basic-user", [
            _rule(["create"], ["authorization.k8s.io"],
                  ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
            _rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"])]),
        _cluster_role("system:discovery", [_url_rule(["get"], [
            "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
            "/openapi/*", "/readyz", "/version", "/version/"])]),
        _cluster_role("system:public-info-viewer", [_url_rule(["get"], [
            "/healthz", "/livez", "/readyz", "/version", "/version/"])]),
        _cluster_role("system:monitoring", [_url_rule(["get"], [
            "/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics", "/metrics/slis",
            "/readyz", "/readyz/*"])]),
        _cluster_role("system:node", _NODE),
        _cluster_role("system:kube-controller-manager", _CONTROLLER_MANAGER),
        _cluster_role("system:volume-scheduler", _VOLUME_SCHEDULER),
        _cluster_role("storagelab:controller-manager", _STORAGELAB_CONTROLLERS),
    ]
    bindings = [
        _binding("cluster-admin", "cluster-admin", [("Group", MASTERS_GROUP)]),
        _binding("system:basic-user", "system:basic-user", [("Group", AUTHENTICATED_GROUP)]),
        _binding("system:discovery", "system:discovery", [("Group", AUTHENTICATED_GROUP)]),
        _binding("system:public-info-viewer", "system:public-info-viewer",
                 [("Group", AUTHENTICATED_GROUP), ("Group", UNAUTHENTICATED_GROUP)]),
        _binding("system:monitoring", "system:monitoring", [("Group", "system:monitoring")]),
        _binding("system:kube-controller-manager", "system:kube-controller-manager",
                 [("User", "system:kube-controller-manager")]),
        _binding("system:volume-scheduler", "system:volume-scheduler",
                 [("User", "system:kube-scheduler")]),
        _binding("storagelab:controller-manager", "storagelab:controller-manager",
                 [("User", "system:kube-controller-manager")]),
    ]
    return roles + bindings


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _namespace(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("namespace", ""))


__all__ = ["ANONYMOUS_USER", "Attributes", "Decision", "NodeAuthorizer", "PodGraph",
           "RBACAuthorizer", "StaticRBACLister", "UnionAuthorizer", "bootstrap_policy",
           "default_authorizer", "forbidden_error", "forbidden_message", "request_attributes",
           "rule_allows"]
