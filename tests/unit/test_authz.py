"""Authorization: RBAC rule shapes, bindings, aggregation, the node authorizer, 403 messages."""

from __future__ import annotations

from typing import Any

import pytest

from apiserver import authz
from apiserver.authn import UserInfo
from apiserver.authz import Attributes, Decision

AUTH = "system:authenticated"
ALICE = UserInfo("alice", ("dev", AUTH))


def _res(verb: str, resource: str, *, user: UserInfo = ALICE, namespace: str = "",
         group: str = "", sub: str = "", name: str = "",
         selector: tuple[tuple[str, str], ...] = ()) -> Attributes:
    return Attributes(user=user, verb=verb, namespace=namespace, api_group=group,
                      resource=resource, subresource=sub, name=name, field_selector=selector)


def _url(verb: str, path: str, user: UserInfo = ALICE) -> Attributes:
    return Attributes(user=user, verb=verb, path=path, resource_request=False)


# --- single rules -------------------------------------------------------------------------

POD_READ = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}


@pytest.mark.parametrize("rule,attrs,allowed", [
    (POD_READ, _res("get", "pods"), True),
    (POD_READ, _res("list", "pods"), True),
    (POD_READ, _res("delete", "pods"), False),
    (POD_READ, _res("get", "pods", group="apps"), False),
    (POD_READ, _res("get", "secrets"), False),
    (POD_READ, _res("get", "pods", sub="status"), False),  # subresources are separate
    ({**POD_READ, "verbs": ["*"]}, _res("escalate", "pods"), True),
    ({**POD_READ, "apiGroups": ["*"]}, _res("get", "pods", group="apps"), True),
    ({**POD_READ, "resources": ["*"]}, _res("get", "pods", sub="log"), True),
    ({**POD_READ, "resources": ["pods/status"]}, _res("get", "pods", sub="status"), True),
    ({**POD_READ, "resources": ["pods/status"]}, _res("get", "pods"), False),
    ({**POD_READ, "resources": ["*/status"]}, _res("get", "deployments", sub="status"), True),
    ({**POD_READ, "resources": ["*/status"]}, _res("get", "pods", sub="log"), False),
    ({**POD_READ, "resources": ["*/status"]}, _res("get", "pods"), False),
    ({**POD_READ, "resourceNames": ["web"]}, _res("get", "pods", name="web"), True),
    ({**POD_READ, "resourceNames": ["web"]}, _res("get", "pods", name="db"), False),
    ({**POD_READ, "resourceNames": ["web"]}, _res("list", "pods"), False),
    ({"nonResourceURLs": ["/healthz"], "verbs": ["get"]}, _url("get", "/healthz"), True),
    ({"nonResourceURLs": ["/healthz"], "verbs": ["get"]}, _url("get", "/healthz/etcd"), False),
    ({"nonResourceURLs": ["/healthz/*"], "verbs": ["get"]}, _url("get", "/healthz/etcd"), True),
    ({"nonResourceURLs": ["/apis*"], "verbs": ["get"]}, _url("get", "/apisx"), True),
    ({"nonResourceURLs": ["*"], "verbs": ["get"]}, _url("get", "/anything"), True),
    ({"nonResourceURLs": ["/healthz"], "verbs": ["get"]}, _url("post", "/healthz"), False),
    ({"nonResourceURLs": ["*"], "verbs": ["*"]}, _res("get", "pods"), False),
    ({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, _url("get", "/metrics"), False),
])
def test_rule_allows(rule: dict[str, Any], attrs: Attributes, allowed: bool) -> None:
    assert authz.rule_allows(attrs, rule) is allowed


# --- bindings -----------------------------------------------------------------------------

def _cluster_role(name: str, rules: list[dict[str, Any]],
                  labels: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"kind": "ClusterRole", "metadata": {"name": name, "labels": labels or {}},
            "rules": rules, **extra}


def _role(namespace: str, name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": "Role", "metadata": {"name": name, "namespace": namespace}, "rules": rules}


def _binding(kind: str, name: str, role_kind: str, role: str, subjects: list[dict[str, str]],
             namespace: str = "") -> dict[str, Any]:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"kind": kind, "metadata": meta, "subjects": subjects,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind,
                        "name": role}}


SECRET_READER = [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]


def _rbac(*objects: dict[str, Any]) -> authz.RBACAuthorizer:
    return authz.RBACAuthorizer(authz.StaticRBACLister(objects))


@pytest.mark.parametrize("subject,user,allowed", [
    ({"kind": "User", "name": "alice"}, ALICE, True),
    ({"kind": "User", "name": "bob"}, ALICE, False),
    ({"kind": "Group", "name": "dev"}, ALICE, True),
    ({"kind": "Group", "name": AUTH}, ALICE, True),
    ({"kind": "Group", "name": "ops"}, ALICE, False),
    ({"kind": "ServiceAccount", "name": "robot", "namespace": "ci"},
     UserInfo("system:serviceaccount:ci:robot"), True),
    ({"kind": "ServiceAccount", "name": "robot", "namespace": "ci"},
     UserInfo("system:serviceaccount:prod:robot"), False),
    # an unqualified SA in a ClusterRoleBinding has no namespace to default to
    ({"kind": "ServiceAccount", "name": "robot"}, UserInfo("system:serviceaccount::robot"), False),
    ({"kind": "Unknown", "name": "alice"}, ALICE, False),
])
def test_cluster_role_binding_subjects(subject: dict[str, str], user: UserInfo,
                                       allowed: bool) -> None:
    rbac = _rbac(_cluster_role("reader", SECRET_READER),
                 _binding("ClusterRoleBinding", "b", "ClusterRole", "reader", [subject]))
    assert rbac.authorize(_res("get", "secrets", user=user, namespace="x")).allowed is allowed


def test_role_binding_to_cluster_role_is_namespace_scoped() -> None:
    rbac = _rbac(_cluster_role("reader", SECRET_READER),
                 _binding("RoleBinding", "b", "ClusterRole", "reader",
                          [{"kind": "User", "name": "alice"}], namespace="team"))
    assert rbac.authorize(_res("get", "secrets", namespace="team")) == Decision(
        True, 'RBAC: allowed by RoleBinding "b/team" of ClusterRole "reader" to User "alice"')
    assert not rbac.authorize(_res("get", "secrets", namespace="other")).allowed
    assert not rbac.authorize(_res("get", "secrets")).allowed  # not cluster-wide


def test_role_binding_to_role_uses_the_role_of_its_namespace() -> None:
    rbac = _rbac(_role("team", "reader", SECRET_READER), _role("other", "reader", []),
                 _binding("RoleBinding", "b", "Role", "reader",
                          [{"kind": "Group", "name": "dev"}], namespace="team"),
                 _binding("RoleBinding", "b", "Role", "reader",
                          [{"kind": "Group", "name": "dev"}], namespace="other"))
    assert rbac.authorize(_res("get", "secrets", namespace="team")).allowed
    assert not rbac.authorize(_res("get", "secrets", namespace="other")).allowed


def test_service_account_subject_defaults_to_binding_namespace() -> None:
    robot = UserInfo("system:serviceaccount:team:robot")
    rbac = _rbac(_role("team", "reader", SECRET_READER),
                 _binding("RoleBinding", "b", "Role", "reader",
                          [{"kind": "ServiceAccount", "name": "robot"}], namespace="team"))
    decision = rbac.authorize(_res("get", "secrets", user=robot, namespace="team"))
    assert decision.reason == ('RBAC: allowed by RoleBinding "b/team" of Role "reader" to '
                               'ServiceAccount "robot/team"')


def test_cluster_role_binding_reason() -> None:
    rbac = _rbac(_cluster_role("reader", SECRET_READER),
                 _binding("ClusterRoleBinding", "crb", "ClusterRole", "reader",
                          [{"kind": "Group", "name": "dev"}]))
    assert rbac.authorize(_res("get", "secrets", namespace="x")).reason == (
        'RBAC: allowed by ClusterRoleBinding "crb" of ClusterRole "reader" to Group "dev"')


def test_missing_roles_are_reported_in_the_reason() -> None:
    rbac = _rbac(_binding("ClusterRoleBinding", "a", "ClusterRole", "gone",
                          [{"kind": "User", "name": "alice"}]),
                 _binding("RoleBinding", "b", "Role", "absent",
                          [{"kind": "User", "name": "alice"}], namespace="ns"))
    assert rbac.authorize(_res("get", "pods", namespace="ns")) == Decision(
        False, 'RBAC: [clusterrole.rbac.authorization.k8s.io "gone" not found, '
               'role.rbac.authorization.k8s.io "absent" not found]')
    assert rbac.authorize(_res("get", "pods")) == Decision(
        False, 'RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found')


def test_no_binding_no_reason() -> None:
    assert _rbac().authorize(_res("get", "pods", namespace="x")) == Decision(False, "")


def test_cluster_role_binding_to_a_role_is_an_error() -> None:
    rbac = _rbac(_role("ns", "r", SECRET_READER),
                 _binding("ClusterRoleBinding", "a", "Role", "r",
                          [{"kind": "User", "name": "alice"}]))
    assert not rbac.authorize(_res("get", "secrets", namespace="ns")).allowed


def test_aggregated_cluster_role_follows_its_selector() -> None:
    rbac = _rbac(
        _cluster_role("monitoring", [], aggregationRule={"clusterRoleSelectors": [
            {"matchLabels": {"agg": "mon"}},
            {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["obs"]}]}]}),
        _cluster_role("part-a", SECRET_READER, {"agg": "mon"}),
        _cluster_role("part-b", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
                      {"tier": "obs"}),
        _cluster_role("unrelated", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
                      {"agg": "other"}),
        _binding("ClusterRoleBinding", "b", "ClusterRole", "monitoring",
                 [{"kind": "User", "name": "alice"}]))
    assert rbac.authorize(_res("get", "secrets", namespace="x")).allowed
    assert rbac.authorize(_res("list", "pods", namespace="x")).allowed
    assert not rbac.authorize(_res("delete", "pods", namespace="x")).allowed


@pytest.mark.parametrize("selector,labels,matches", [
    ({}, {"a": "1"}, False),
    ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
    ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
    ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
    ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
    ({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}, {"a": ""}, False),
])
def test_selector_matches(selector: dict[str, Any], labels: dict[str, str],
                          matches: bool) -> None:
    assert authz.selector_matches(selector, labels) is matches


def test_rules_for() -> None:
    rbac = _rbac(_cluster_role("reader", SECRET_READER),
                 _binding("RoleBinding", "b", "ClusterRole", "reader",
                          [{"kind": "User", "name": "alice"}], namespace="team"))
    assert rbac.rules_for(ALICE, "team") == SECRET_READER
    assert rbac.rules_for(ALICE, "other") == []


# --- bootstrap policy through the default authorizer --------------------------------------

def _cluster(*extra: dict[str, Any]) -> authz.UnionAuthorizer:
    lister = authz.StaticRBACLister([*authz.bootstrap_policy(), *extra])
    return authz.default_authorizer(lister, authz.PodGraph())


ANON = UserInfo("system:anonymous", ("system:unauthenticated",))
ADMIN = UserInfo("kubernetes-admin", ("system:masters", AUTH))
CONTROLLERS = UserInfo("system:kube-controller-manager", (AUTH,))


@pytest.mark.parametrize("attrs,allowed", [
    (_res("delete", "nodes", user=ADMIN), True),
    (_url("post", "/whatever", user=ADMIN), True),
    (_res("create", "selfsubjectaccessreviews", group="authorization.k8s.io"), True),
    (_res("create", "selfsubjectrulesreviews", group="authorization.k8s.io"), True),
    (_res("create", "selfsubjectaccessreviews", group="authorization.k8s.io", user=ANON), False),
    (_url("get", "/api"), True),
    (_url("get", "/apis/apps/v1"), True),
    (_url("get", "/openapi/v3"), True),
    (_url("get", "/version", user=ANON), True),
    (_url("get", "/healthz", user=ANON), True),
    (_url("get", "/api", user=ANON), False),
    (_url("get", "/metrics"), False),
    (_res("get", "pods", namespace="default"), False),
    (_res("bind", "persistentvolumes", user=CONTROLLERS), False),
    (_res("update", "persistentvolumes", user=CONTROLLERS), True),
    (_res("update", "persistentvolumeclaims", user=CONTROLLERS, namespace="x"), True),
    (_res("create", "pods", user=CONTROLLERS, namespace="x", sub="binding"), True),
    (_res("list", "storageclasses", group="storage.k8s.io", user=CONTROLLERS), True),
    (_res("delete", "namespaces", user=CONTROLLERS), False),
])
def test_bootstrap_policy(attrs: Attributes, allowed: bool) -> None:
    assert _cluster().authorize(attrs).allowed is allowed


@pytest.mark.parametrize("role,attrs,allowed", [
    ("view", _res("get", "pods", namespace="team"), True),
    ("view", _res("get", "persistentvolumeclaims", namespace="team"), True),
    ("view", _res("get", "secrets", namespace="team"), False),
    ("view", _res("create", "pods", namespace="team"), False),
    ("view", _res("get", "pods", namespace="other"), False),
    ("edit", _res("get", "secrets", namespace="team"), True),
    ("edit", _res("create", "persistentvolumeclaims", namespace="team"), True),
    ("edit", _res("create", "rolebindings", group="rbac.authorization.k8s.io",
                  namespace="team"), False),
    ("admin", _res("create", "rolebindings", group="rbac.authorization.k8s.io",
                   namespace="team"), True),
    ("admin", _res("delete", "deployments", group="apps", namespace="team"), True),
    ("admin", _res("get", "persistentvolumes"), False),  # cluster-scoped: never via RoleBinding
])
def test_user_facing_roles(role: str, attrs: Attributes, allowed: bool) -> None:
    binding = _binding("RoleBinding", "b", "ClusterRole", role,
                       [{"kind": "User", "name": "alice"}], namespace="team")
    assert _cluster(binding).authorize(attrs).allowed is allowed


def test_bootstrap_objects_are_well_formed() -> None:
    objects = authz.bootstrap_policy()
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for wanted in ("cluster-admin", "admin", "edit", "view", "system:basic-user",
                   "system:public-info-viewer", "system:discovery"):
        assert ("ClusterRole", wanted) in names
    for obj in objects:
        assert obj["apiVersion"] == "rbac.authorization.k8s.io/v1"
        assert obj["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
        if obj["kind"] == "ClusterRoleBinding":
            assert ("ClusterRole", obj["roleRef"]["name"]) in names
    assert len(names) == len(objects)


# --- the node authorizer ------------------------------------------------------------------

N1 = UserInfo("system:node:n1", ("system:nodes", AUTH))
POD = {"metadata": {"name": "db", "namespace": "app"}, "spec": {
    "nodeName": "n1",
    "imagePullSecrets": [{"name": "pull"}],
    "volumes": [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
        {"name": "cfg", "configMap": {"name": "db-config"}},
        {"name": "tls", "secret": {"secretName": "db-tls"}},
        {"name": "proj", "projected": {"sources": [{"secret": {"name": "proj-secret"}},
                                                   {"configMap": {"name": "proj-cm"}}]}},
        {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {}}},
    ],
    "initContainers": [{"name": "init", "envFrom": [{"configMapRef": {"name": "init-env"}}]}],
    "containers": [{"name": "db", "env": [
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db-pw", "key": "pw"}}},
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "x-cm", "key": "x"}}}],
        "envFrom": [{"secretRef": {"name": "env-secret"}}]}],
}}
OTHER_POD = {"metadata": {"name": "web", "namespace": "app"},
             "spec": {"nodeName": "n2", "volumes": [{"name": "s", "secret": {"secretName": "web"}}]}}
PENDING = {"metadata": {"name": "p", "namespace": "app"},
           "spec": {"volumes": [{"name": "s", "secret": {"secretName": "pending"}}]}}
GRAPH = authz.PodGraph.from_objects(
    [POD, OTHER_POD, PENDING],
    pvcs=[{"metadata": {"name": "data", "namespace": "app"}, "spec": {"volumeName": "pv-1"}}],
    pvs=[{"metadata": {"name": "pv-1"}, "spec": {"csi": {"nodePublishSecretRef": {
        "name": "csi-creds", "namespace": "storage"}}}}])
NODE = authz.NodeAuthorizer(GRAPH)


def test_pod_references() -> None:
    refs = authz.pod_references(POD)
    assert refs == {
        ("secrets", "app", n) for n in ("pull", "db-tls", "proj-secret", "db-pw", "env-secret")
    } | {("configmaps", "app", n) for n in ("db-config", "proj-cm", "init-env", "x-cm")} | {
        ("persistentvolumeclaims", "app", "data"), ("persistentvolumeclaims", "app", "db-scratch")}


R = "no relationship found between node 'n1' and this object"


@pytest.mark.parametrize("attrs,expected", [
    (_res("get", "secrets", user=N1, namespace="app", name="db-tls"), Decision(True)),
    (_res("watch", "secrets", user=N1, namespace="app", name="db-pw"), Decision(True)),
    (_res("get", "secrets", user=N1, namespace="app", name="web"), Decision(False, R)),
    (_res("get", "secrets", user=N1, namespace="app", name="pending"), Decision(False, R)),
    (_res("get", "secrets", user=N1, namespace="other", name="db-tls"), Decision(False, R)),
    (_res("list", "secrets", user=N1, namespace="app"), Decision(False, "No Object name found")),
    (_res("update", "secrets", user=N1, namespace="app", name="db-tls"),
     Decision(False, "can only read resources of this type")),
    (_res("get", "secrets", user=N1, name="db-tls"),
     Decision(False, "can only read namespaced object of this type")),
    (_res("get", "configmaps", user=N1, namespace="app", name="x-cm"), Decision(True)),
    (_res("get", "configmaps", user=N1, namespace="app", name="nope"), Decision(False, R)),
    (_res("get", "persistentvolumeclaims", user=N1, namespace="app", name="data"), Decision(True)),
    (_res("list", "persistentvolumeclaims", user=N1, namespace="app"),
     Decision(False, "can only get individual resources of this type")),
    (_res("patch", "persistentvolumeclaims", user=N1, namespace="app", name="data", sub="status"),
     Decision(True)),
    (_res("get", "persistentvolumes", user=N1, name="pv-1"), Decision(True)),
    (_res("get", "persistentvolumes", user=N1, name="pv-2"), Decision(False, R)),
    (_res("get", "secrets", user=N1, namespace="storage", name="csi-creds"), Decision(True)),
    (_res("get", "nodes", user=N1, name="n1"), Decision(True)),
    (_res("create", "nodes", user=N1, name="n1"), Decision(True)),
    (_res("patch", "nodes", user=N1, name="n1", sub="status"), Decision(True)),
    (_res("patch", "nodes", user=N1, name="n2", sub="status"),
     Decision(False, 'node "n1" is not allowed to modify node "n2"')),
    (_res("create", "nodes", user=N1, name="n2"),
     Decision(False, 'node "n1" is not allowed to modify node "n2"')),
    (_res("get", "nodes", user=N1, name="n2"),
     Decision(False, "node 'n1' cannot read 'n2', only its own Node object")),
    (_res("list", "nodes", user=N1),
     Decision(False, "node 'n1' cannot read all nodes, only its own Node object")),
    (_res("delete", "nodes", user=N1, name="n1"), Decision(False)),
    (_res("list", "pods", user=N1, selector=(("spec.nodeName", "n1"),)), Decision(True)),
    (_res("watch", "pods", user=N1, selector=(("spec.nodeName", "n2"),)),
     Decision(False, "can only list/watch pods with spec.nodeName field selector")),
    (_res("get", "pods", user=N1, namespace="app", name="db"), Decision(True)),
    (_res("get", "pods", user=N1, namespace="app", name="web"), Decision(False, R)),
    (_res("update", "pods", user=N1, namespace="app", name="db", sub="status"), Decision(True)),
    (_res("patch", "pods", user=N1, namespace="app", name="web", sub="status"),
     Decision(False, 'node "n1" can only update pod status for pods with spec.nodeName set '
                     "to itself")),
    (_res("delete", "pods", user=N1, namespace="app", name="db"), Decision(True)),
    (_res("create", "pods", user=N1, namespace="app", name="x"), Decision(False)),
    (_res("update", "pods", user=N1, namespace="app", name="db"), Decision(False)),
    (_res("update", "leases", group="coordination.k8s.io", user=N1,
          namespace="kube-node-lease", name="n1"), Decision(True)),
    (_res("create", "leases", group="coordination.k8s.io", user=N1,
          namespace="kube-node-lease", name="n1"), Decision(True)),
    (_res("update", "leases", group="coordination.k8s.io", user=N1,
          namespace="kube-node-lease", name="n2"),
     Decision(False, "can only access node lease with the same name as the requesting node")),
    (_res("get", "leases", group="coordination.k8s.io", user=N1, namespace="default", name="n1"),
     Decision(False, 'can only access leases in the "kube-node-lease" system namespace')),
    (_res("list", "leases", group="coordination.k8s.io", user=N1, namespace="kube-node-lease"),
     Decision(False, "can only get, create, update, patch, or delete a node lease")),
    (_res("create", "csinodes", group="storage.k8s.io", user=N1, name="n1"), Decision(True)),
    (_res("create", "events", user=N1, namespace="app"), Decision(True)),
    (_res("list", "services", user=N1), Decision(True)),
    (_res("list", "storageclasses", group="storage.k8s.io", user=N1), Decision(False)),
    (_res("get", "secrets", user=UserInfo("system:node:n1", ("dev",)), namespace="app",
          name="db-tls"), Decision(False)),  # not in system:nodes: not a node at all
    (_res("get", "secrets", user=UserInfo("system:node:", ("system:nodes",)), namespace="app",
          name="db-tls"), Decision(False, 'unknown node for user "system:node:"')),
])
def test_node_authorizer(attrs: Attributes, expected: Decision) -> None:
    assert NODE.authorize(attrs) == expected


def test_node_denial_through_the_union_keeps_the_reason() -> None:
    lister = authz.StaticRBACLister(authz.bootstrap_policy())
    union = authz.default_authorizer(lister, GRAPH)
    attrs = _res("get", "secrets", user=N1, namespace="app", name="web")
    decision = union.authorize(attrs)
    assert decision == Decision(False, R)
    assert authz.forbidden_error(attrs, decision.reason).message == (
        'secrets "web" is forbidden: User "system:node:n1" cannot get resource "secrets" in API '
        'group "" in the namespace "app": ' + R)
    assert union.authorize(_res("create", "selfsubjectaccessreviews", user=N1,
                                group="authorization.k8s.io")).allowed


# --- the 403 ------------------------------------------------------------------------------

@pytest.mark.parametrize("attrs,message", [
    (_res("get", "secrets", user=UserInfo("x"), namespace="y"),
     'User "x" cannot get resource "secrets" in API group "" in the namespace "y"'),
    (_res("list", "persistentvolumes", user=UserInfo("x")),
     'User "x" cannot list resource "persistentvolumes" in API group "" at the cluster scope'),
    (_res("patch", "pods", user=UserInfo("x"), namespace="y", sub="status", name="p"),
     'User "x" cannot patch resource "pods/status" in API group "" in the namespace "y"'),
    (_res("create", "deployments", group="apps", user=UserInfo("x"), namespace="y"),
     'User "x" cannot create resource "deployments" in API group "apps" in the namespace "y"'),
    (_url("get", "/metrics", user=UserInfo("x")), 'User "x" cannot get path "/metrics"'),
    (_res("get", "pods", user=UserInfo('we"ird'), namespace="y"),
     'User "we\\"ird" cannot get resource "pods" in API group "" in the namespace "y"'),
])
def test_forbidden_message(attrs: Attributes, message: str) -> None:
    assert authz.forbidden_message(attrs) == message


def test_forbidden_error_status() -> None:
    attrs = _res("get", "secrets", user=UserInfo("x"), namespace="y", name="db")
    assert authz.forbidden_error(attrs).status() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'secrets "db" is forbidden: User "x" cannot get resource "secrets" in API '
                   'group "" in the namespace "y"',
        "reason": "Forbidden", "details": {"name": "db", "kind": "secrets"}, "code": 403}


@pytest.mark.parametrize("attrs,message,details", [
    (_res("list", "deployments", group="apps", user=UserInfo("x"), namespace="y"),
     ('deployments.apps is forbidden: User "x" cannot list resource "deployments" in API group '
     '"apps" in the namespace "y"'), {"kind": "deployments", "group": "apps"}),
    (_url("get", "/metrics", user=UserInfo("x")),
     'forbidden: User "x" cannot get path "/metrics"', {}),
    (_url("get", "/<script>", user=UserInfo("x")),
     'forbidden: User "x" cannot get path "/&lt;script&gt;"', {}),
])
def test_forbidden_error_forms(attrs: Attributes, message: str,
                               details: dict[str, str]) -> None:
    error = authz.forbidden_error(attrs)
    assert (error.code, error.reason, error.message, error.details) == (
        403, "Forbidden", message, details)


# --- request attributes -------------------------------------------------------------------

@pytest.mark.parametrize("method,path,query,expected", [
    ("GET", "/api/v1/namespaces/ns/pods", "", {"verb": "list", "namespace": "ns", "resource": "pods"}),
    ("GET", "/api/v1/namespaces/ns/pods", "watch=true",
     {"verb": "watch", "namespace": "ns", "resource": "pods"}),
    ("GET", "/api/v1/namespaces/ns/pods", "watch=1", {"verb": "watch"}),
    ("GET", "/api/v1/namespaces/ns/pods/p", "", {"verb": "get", "name": "p"}),
    ("GET", "/api/v1/namespaces/ns/pods/p/log", "", {"verb": "get", "subresource": "log"}),
    ("PATCH", "/api/v1/namespaces/ns/pods/p/status", "",
     {"verb": "patch", "resource": "pods", "name": "p", "subresource": "status"}),
    ("PUT", "/api/v1/nodes/n1/status", "", {"verb": "update", "namespace": "", "name": "n1",
                                                  "resource": "nodes", "subresource": "status"}),
    ("POST", "/api/v1/namespaces/ns/secrets", "", {"verb": "create", "resource": "secrets"}),
    ("DELETE", "/api/v1/namespaces/ns/secrets", "", {"verb": "deletecollection"}),
    ("DELETE", "/api/v1/namespaces/ns/secrets/s", "", {"verb": "delete", "name": "s"}),
    ("GET", "/apis/apps/v1/namespaces/ns/deployments", "",
     {"api_group": "apps", "api_version": "v1", "resource": "deployments"}),
    ("GET", "/apis/storage.k8s.io/v1/storageclasses/fast", "",
     {"api_group": "storage.k8s.io", "resource": "storageclasses", "name": "fast", "namespace": ""}),
    ("GET", "/api/v1/namespaces", "", {"verb": "list", "resource": "namespaces", "namespace": ""}),
    ("GET", "/api/v1/namespaces/ns", "", {"verb": "get", "resource": "namespaces", "name": "ns",
                                              "namespace": "ns"}),
    ("PUT", "/api/v1/namespaces/ns/finalize", "",
     {"resource": "namespaces", "name": "ns", "subresource": "finalize"}),
    ("GET", "/api/v1/namespaces/ns/secrets", "fieldSelector=metadata.name%3Ddb",
     {"verb": "list", "name": "db"}),
    ("GET", "/api/v1/pods", "fieldSelector=spec.nodeName%3Dn1&watch=true",
     {"verb": "watch", "field_selector": (("spec.nodeName", "n1"),)}),
    ("GET", "/api/v1/watch/namespaces/ns/pods/p", "", {"verb": "watch", "name": "p"}),
])
def test_request_attributes(method: str, path: str, query: str,
                            expected: dict[str, Any]) -> None:
    attrs = authz.request_attributes(ALICE, method, path, query)
    assert attrs.resource_request and attrs.user == ALICE
    assert {k: getattr(attrs, k) for k in expected} == expected


@pytest.mark.parametrize("method,path,verb", [
    ("GET", "/healthz", "get"), ("GET", "/api", "get"), ("GET", "/api/v1", "get"),
    ("GET", "/apis/apps/v1", "get"), ("POST", "/logs", "post"), ("GET", "/version/", "get"),
    ("GET", "/openapi/v2", "get"),
])
def test_non_resource_request_attributes(method: str, path: str, verb: str) -> None:
    attrs = authz.request_attributes(None, method, path)
    assert (attrs.resource_request, attrs.verb, attrs.path) == (False, verb, path)
    assert attrs.user.name == "system:anonymous"


@pytest.mark.parametrize("selector,terms", [
    ("", ()), ("a=b", (("a", "b"),)), ("a==b,c=d", (("a", "b"), ("c", "d"))),
    ("a!=b,c=d", (("c", "d"),)),
])
def test_parse_field_selector(selector: str, terms: tuple[tuple[str, str], ...]) -> None:
    assert authz.parse_field_selector(selector) == terms
