"""The real kubectl against our apiserver: what a user types, and what they read back.

Each test runs kubectl as a user would (apply, get, describe, patch, wait, delete, explain
...) and pins the output a real cluster prints: table headers and cells, JSON shapes, and the
error lines of the mistakes users make. Tests whose answer goes through the store's writes,
watch or conflicts run on both stores; the read-only ones share one applied lab on SQLite,
to keep the suite fast.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.compat.conftest import (
    MANIFESTS,
    Kubectl,
    fresh_namespace,
    header_of,
    parse_table,
    render_manifest,
)
from tests.conftest import ApiServer, kubectl_available, require_real

AGE = re.compile(r"^\d+s$")
DNS1123_SUBDOMAIN_HINT = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
QUANTITY_REGEX_HINT = ("quantities must match the regular expression "
                       "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


@dataclass(frozen=True)
class Lab:
    """lab.yaml rendered for one namespace; `suffix` names its cluster-scoped objects."""

    kubectl: Kubectl
    suffix: str
    manifest: Path

    @property
    def storage_class(self) -> str:
        return f"fast-{self.suffix}"

    @property
    def volume(self) -> str:
        return f"pv-{self.suffix}"


def _delete_cluster_objects(server: ApiServer, suffix: str) -> None:
    with server.client() as api:
        for path in (f"/api/v1/persistentvolumes/pv-{suffix}",
                     f"/apis/storage.k8s.io/v1/storageclasses/fast-{suffix}"):
            api.patch(path, json={"metadata": {"finalizers": None}},
                      headers={"content-type": "application/merge-patch+json"})
            api.delete(path)


@contextlib.contextmanager
def _lab_names(kubectl: Kubectl, tmp_path: Path) -> Iterator[Lab]:
    """lab.yaml rendered with fresh names; its cluster-scoped objects deleted afterwards."""
    suffix = uuid.uuid4().hex[:8]
    manifest = render_manifest("lab.yaml", tmp_path, suffix=suffix)
    try:
        yield Lab(kubectl, suffix, manifest)
    finally:
        _delete_cluster_objects(kubectl.server, suffix)


@pytest.fixture(scope="module")
def shared_lab(sqlite_server: ApiServer,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """lab.yaml applied once on the SQLite server, for the tests that only read it.

    Tests using it may add objects of their own but change none of the lab's, and name the
    objects they look at, so that they stay independent of each other's order.
    """
    require_real(kubectl_available(), "kubectl is not installed")
    with fresh_namespace(sqlite_server) as namespace:
        kubectl = Kubectl(sqlite_server, namespace)
        with _lab_names(kubectl, tmp_path_factory.mktemp("lab")) as lab:
            kubectl.out("apply", "-f", str(lab.manifest))
            yield lab


@pytest.fixture()
def own_lab(sqlite_kubectl: Kubectl, tmp_path: Path) -> Iterator[Lab]:
    """lab.yaml applied in a namespace of this test's own, for tests that change it."""
    with _lab_names(sqlite_kubectl, tmp_path) as lab:
        sqlite_kubectl.out("apply", "-f", str(lab.manifest))
        yield lab


def _minutes_ago(minutes: int) -> str:
    moment = datetime.now(UTC) - timedelta(minutes=minutes)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _one_row(text: str) -> dict[str, str]:
    rows = parse_table(text)
    assert len(rows) == 1, text
    return rows[0]


# ---- apply ------------------------------------------------------------------------------

def test_apply_creates_then_reapply_changes_through_strategic_merge(kubectl: Kubectl,
                                                                    tmp_path: Path) -> None:
    with _lab_names(kubectl, tmp_path) as lab:
        sc, pv = f"storageclass.storage.k8s.io/{lab.storage_class}", f"persistentvolume/{lab.volume}"
        created = kubectl.out("apply", "-f", str(lab.manifest)).splitlines()
        assert created == [f"{sc} created", f"{pv} created", "persistentvolumeclaim/data created",
                           "configmap/settings created", "secret/creds created",
                           "pod/db created"]
        # The file asks for 1.5Gi and the server keeps 1536Mi, so kubectl's three-way diff
        # is never empty for that claim: a real cluster says "configured" here too
        # (kubernetes/kubernetes#116135).
        again = kubectl.out("apply", "-f", str(lab.manifest)).splitlines()
        assert again == [line.replace("created", "configured" if "claim" in line
                                      else "unchanged") for line in created]

        # A label added by hand survives the next apply; one dropped from the file goes.
        kubectl.out("label", "pvc", "data", "added-by-hand=kept")
        changed = render_manifest("lab-changed.yaml", tmp_path, suffix=lab.suffix)
        assert kubectl.out("apply", "-f", str(changed)).splitlines() == [
            f"{sc} unchanged", f"{pv} configured", "persistentvolumeclaim/data configured",
            "configmap/settings configured", "secret/creds unchanged", "pod/db configured"]

        pvc = json.loads(kubectl.out("get", "pvc", "data", "-o", "json"))
        assert pvc["metadata"]["labels"] == {"app": "db", "added-by-hand": "kept"}
        config = json.loads(kubectl.out("get", "cm", "settings", "-o", "json"))
        assert config["data"] == {"mode": "replica"}
        pod = json.loads(kubectl.out("get", "pod", "db", "-o", "json"))
        container = pod["spec"]["containers"][0]
        assert container["image"] == "busybox:1.36"
        # Strategic merge keyed the container by name: what the file kept is still there,
        # and the server's defaults were not wiped by the patch.
        assert container["command"] == ["sleep", "3600"]
        assert container["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
        assert container["terminationMessagePath"] == "/dev/termination-log"
        assert kubectl.out("get", "pv", lab.volume, "-o",
                           "jsonpath={.spec.capacity.storage}") == "5Gi"


# ---- get --------------------------------------------------------------------------------

def test_get_prints_the_default_columns_of_each_kind(shared_lab: Lab) -> None:
    k, lab = shared_lab.kubectl, shared_lab
    pvc = k.out("get", "pvc", "data")
    assert header_of(pvc) == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES",
                              "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE"]
    row = _one_row(pvc)
    assert AGE.match(row.pop("AGE"))
    assert row == {"NAME": "data", "STATUS": "Pending", "VOLUME": "", "CAPACITY": "",
                   "ACCESS MODES": "", "STORAGECLASS": lab.storage_class,
                   "VOLUMEATTRIBUTESCLASS": "<unset>"}

    pv = k.out("get", "pv", lab.volume)
    assert header_of(pv) == ["NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS",
                             "CLAIM", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "REASON", "AGE"]
    row = _one_row(pv)
    assert AGE.match(row.pop("AGE"))
    assert row == {"NAME": lab.volume, "CAPACITY": "2Gi", "ACCESS MODES": "RWO",
                   "RECLAIM POLICY": "Retain", "STATUS": "Pending", "CLAIM": "",
                   "STORAGECLASS": lab.storage_class, "VOLUMEATTRIBUTESCLASS": "<unset>",
                   "REASON": ""}

    sc = k.out("get", "sc", lab.storage_class)
    assert header_of(sc) == ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE",
                             "ALLOWVOLUMEEXPANSION", "AGE"]
    assert _one_row(sc)["VOLUMEBINDINGMODE"] == "WaitForFirstConsumer"
    assert _one_row(sc)["ALLOWVOLUMEEXPANSION"] == "true"

    assert header_of(k.out("get", "cm", "settings")) == ["NAME", "DATA", "AGE"]
    assert _one_row(k.out("get", "cm", "settings"))["DATA"] == "2"
    secret = _one_row(k.out("get", "secret", "creds"))
    assert (secret["NAME"], secret["TYPE"], secret["DATA"]) == ("creds", "Opaque", "1")
    pod = k.out("get", "pods", "db")
    assert header_of(pod) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    row = _one_row(pod)
    assert (row["NAME"], row["READY"], row["STATUS"], row["RESTARTS"]) == \
        ("db", "0/1", "Pending", "0")


def test_get_wide_adds_the_wide_columns(shared_lab: Lab) -> None:
    k = shared_lab.kubectl
    pvc = k.out("get", "pvc", "data", "-o", "wide")
    assert header_of(pvc)[-2:] == ["AGE", "VOLUMEMODE"]
    assert _one_row(pvc)["VOLUMEMODE"] == "Filesystem"
    pod = k.out("get", "pod", "db", "-o", "wide")
    assert header_of(pod) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
                              "NOMINATED NODE", "READINESS GATES"]
    row = _one_row(pod)
    assert [row[c] for c in ("IP", "NODE", "NOMINATED NODE", "READINESS GATES")] == \
        ["<none>"] * 4


def test_get_several_kinds_prefixes_names_with_the_kind(shared_lab: Lab) -> None:
    out = shared_lab.kubectl.out("get", "pvc/data", "cm/settings")
    blocks = out.strip().split("\n\n")
    assert [parse_table(b)[0]["NAME"] for b in blocks] == \
        ["persistentvolumeclaim/data", "configmap/settings"]


def test_get_json_and_jsonpath(shared_lab: Lab) -> None:
    k = shared_lab.kubectl
    listed = json.loads(k.out("get", "pvc", "-l", "app=db", "-o", "json"))
    assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")
    [item] = listed["items"]
    assert (item["apiVersion"], item["kind"]) == ("v1", "PersistentVolumeClaim")
    # 1.5Gi in the file, the canonical form back from the server.
    assert item["spec"]["resources"]["requests"]["storage"] == "1536Mi"
    assert item["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    assert "kubectl.kubernetes.io/last-applied-configuration" in item["metadata"]["annotations"]

    assert k.out("get", "pvc", "data", "-o",
                 "jsonpath={.spec.resources.requests.storage} {.status.phase}") == \
        "1536Mi Pending"
    assert k.out("get", "cm/settings", "secret/creds", "-o",
                 "jsonpath={.items[*].metadata.name}") == "settings creds"
    assert k.out("get", "cm", "settings", "-o", "jsonpath={.data.mode}") == "primary"
    ranged = k.out("get", "pods", "-l", "app=db", "-o", 'jsonpath={range .items[*]}{.metadata.name}='
                   '{.spec.volumes[0].persistentVolumeClaim.claimName}{"\\n"}{end}')
    assert ranged == "db=data\n"
    assert k.out("get", "cm", "settings", "-o", "name") == "configmap/settings\n"


def test_label_and_field_selectors(shared_lab: Lab) -> None:
    k = shared_lab.kubectl
    k.out("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "other", "labels": {"app": "web", "tier": "slow"}}}))
    by_label = {
        "app=db": "configmap/settings\n",
        "app!=db": "configmap/other\n",
        "tier in (slow,medium)": "configmap/other\n",
        "!tier": "configmap/settings\n",
        "app": "configmap/other\nconfigmap/settings\n",
    }
    for selector, expected in by_label.items():
        assert k.out("get", "cm", "-l", selector, "-o", "name") == expected, selector
    assert k.out("get", "pvc", "-l", "app=db,tier=fast", "-o", "name") == \
        "persistentvolumeclaim/data\n"

    assert k.out("get", "cm", "--field-selector", "metadata.name=other", "-o", "name") == \
        "configmap/other\n"
    assert k.out("get", "pods", "--field-selector", "status.phase=Pending,spec.nodeName=",
                 "-o", "name") == "pod/db\n"
    assert k.out("get", "secrets", "--field-selector", "type=Opaque", "-o", "name") == \
        "secret/creds\n"
    assert k.out("get", "cm", "-l", "app=web", "--field-selector",
                 "metadata.name!=other", "-o", "name") == ""
    nothing = k.run("get", "pods", "--field-selector", "status.phase=Running")
    assert nothing.stdout == ""
    assert nothing.stderr.strip() == f"No resources found in {k.namespace} namespace."


def test_get_watch_sees_changes(kubectl: Kubectl) -> None:
    kubectl.out("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "watched"},
        "data": {"a": "1"}}))
    watcher = kubectl.background("get", "cm", "-w", "--output-watch-events",
                                 "--request-timeout=30s")
    try:
        assert re.split(r"\s{2,}", watcher.wait_for_line(r"^EVENT")) == \
            ["EVENT", "NAME", "DATA", "AGE"]
        assert re.split(r"\s+", watcher.wait_for_line(r"watched"))[:3] == \
            ["ADDED", "watched", "1"]
        kubectl.out("patch", "cm", "watched", "--type", "merge", "-p", '{"data":{"b":"2"}}')
        assert re.split(r"\s+", watcher.wait_for_line(r"watched"))[:3] == \
            ["MODIFIED", "watched", "2"]
        kubectl.out("delete", "cm", "watched")
        assert re.split(r"\s+", watcher.wait_for_line(r"watched"))[:3] == \
            ["DELETED", "watched", "2"]
    finally:
        watcher.stop()


# ---- describe ---------------------------------------------------------------------------

def test_describe_pvc_shows_its_fields_and_events(shared_lab: Lab) -> None:
    k, lab = shared_lab.kubectl, shared_lab
    uid = k.out("get", "pvc", "data", "-o", "jsonpath={.metadata.uid}")
    event = {"apiVersion": "v1", "kind": "Event",
             "metadata": {"name": "data.compat-1"},
             "involvedObject": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                "namespace": k.namespace, "name": "data", "uid": uid},
             "reason": "WaitForFirstConsumer", "type": "Normal", "count": 3,
             "message": "waiting for first consumer to be created before binding",
             "source": {"component": "persistentvolume-controller"},
             "firstTimestamp": _minutes_ago(10), "lastTimestamp": _minutes_ago(2)}
    k.out("create", "-f", "-", input=json.dumps(event))
    described = k.out("describe", "pvc", "data")
    fields = dict(re.split(r":\s+", line, maxsplit=1) for line in described.splitlines()
                  if re.match(r"^[A-Z][A-Za-z ]+:\s+\S", line))
    assert fields["Name"] == "data"
    assert fields["Namespace"] == k.namespace
    assert fields["StorageClass"] == lab.storage_class
    assert fields["Status"] == "Pending"
    assert fields["Labels"] == "app=db"
    assert fields["Finalizers"] == "[kubernetes.io/pvc-protection]"
    assert fields["VolumeMode"] == "Filesystem"
    assert fields["Used By"] == "db"
    events = described.split("Events:", 1)[1].strip().splitlines()
    assert re.split(r"\s{2,}", events[0].strip()) == ["Type", "Reason", "Age", "From",
                                                      "Message"]
    row = re.split(r"\s{2,}", events[2].strip())
    assert (row[0], row[1], row[3], row[4]) == (
        "Normal", "WaitForFirstConsumer", "persistentvolume-controller",
        "waiting for first consumer to be created before binding")
    assert re.match(r"^2m(\d+s)? \(x3 over 10m\)$", row[2]), row[2]


# ---- patch, delete, wait ----------------------------------------------------------------

def test_patch_with_each_patch_type(own_lab: Lab) -> None:
    k = own_lab.kubectl
    assert k.out("patch", "pod", "db", "--type", "strategic", "-p",
                 '{"spec":{"containers":[{"name":"db","image":"busybox:1.36"}]}}') == \
        "pod/db patched\n"
    container = json.loads(k.out("get", "pod", "db", "-o", "jsonpath={.spec.containers[0]}"))
    assert (container["image"], container["command"]) == ("busybox:1.36", ["sleep", "3600"])
    assert k.out("patch", "pod", "db", "--type", "strategic", "-p",
                 '{"spec":{"containers":[{"name":"db","image":"busybox:1.36"}]}}') == \
        "pod/db patched (no change)\n"

    # A merge patch replaces lists whole and deletes keys set to null.
    k.out("patch", "pvc", "data", "--type", "merge", "-p",
          '{"metadata":{"labels":{"tier":null,"merged":"yes"}}}')
    assert json.loads(k.out("get", "pvc", "data", "-o", "jsonpath={.metadata.labels}")) == \
        {"app": "db", "merged": "yes"}

    k.out("patch", "cm", "settings", "--type", "json", "-p", json.dumps([
        {"op": "test", "path": "/data/mode", "value": "primary"},
        {"op": "replace", "path": "/data/mode", "value": "standby"},
        {"op": "remove", "path": "/data/port"}]))
    assert k.out("get", "cm", "settings", "-o", "jsonpath={.data}") == '{"mode":"standby"}'
    failed = k.fails("patch", "cm", "settings", "--type", "json", "-p",
                     '[{"op":"test","path":"/data/mode","value":"primary"}]')
    assert failed.startswith("The request is invalid")
    assert k.out("get", "cm", "settings", "-o", "jsonpath={.data.mode}") == "standby"


def test_delete_and_wait_for_delete(kubectl: Kubectl) -> None:
    pvc = str(MANIFESTS / "pvc.yaml")
    kubectl.out("create", "-f", pvc)
    kubectl.out("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gone"}}))
    assert kubectl.out("delete", "cm", "gone") == 'configmap "gone" deleted\n'
    assert kubectl.out("wait", "--for=delete", "cm/gone", "--timeout=5s") == ""

    # The claim's protection finalizer holds it; wait sees it go once that is removed.
    assert kubectl.out("delete", "pvc", "claim", "--wait=false") == \
        'persistentvolumeclaim "claim" deleted\n'
    assert kubectl.out("get", "pvc", "claim", "-o", "jsonpath={.metadata.deletionTimestamp}")
    waiter = kubectl.background("wait", "--for=delete", "pvc/claim", "--timeout=20s", "-v=6")
    try:
        # Once kubectl watches (its log says so), the finalizer goes; a claim already gone
        # when wait starts would end it silently, proving nothing.
        waiter.wait_for_line(r"watch=true", stream="stderr")
        kubectl.out("patch", "pvc", "claim", "--type", "json", "-p",
                    '[{"op":"remove","path":"/metadata/finalizers"}]')
        assert waiter.finish() == (0, "persistentvolumeclaim/claim condition met")
    finally:
        waiter.stop()
    assert kubectl.fails("get", "pvc", "claim") == \
        'Error from server (NotFound): persistentvolumeclaims "claim" not found'


def test_wait_for_jsonpath(sqlite_kubectl: Kubectl) -> None:
    sqlite_kubectl.out("apply", "-f", str(MANIFESTS / "pvc.yaml"))
    assert sqlite_kubectl.out("wait", "--for=jsonpath={.status.phase}=Pending", "pvc/claim",
                              "--timeout=5s") == "persistentvolumeclaim/claim condition met\n"
    waiter = sqlite_kubectl.background("wait", "--for=jsonpath={.metadata.labels.ready}=yes",
                                       "pvc/claim", "--timeout=20s", "-v=6")
    try:
        waiter.wait_for_line(r"watch=true", stream="stderr")
        sqlite_kubectl.out("label", "pvc", "claim", "ready=yes")
        assert waiter.finish() == (0, "persistentvolumeclaim/claim condition met")
    finally:
        waiter.stop()
    timed_out = sqlite_kubectl.fails("wait", "--for=jsonpath={.status.phase}=Bound",
                                     "pvc/claim", "--timeout=1s")
    assert timed_out == "error: timed out waiting for the condition on " \
                        "persistentvolumeclaims/claim"


# ---- discovery, explain, auth -----------------------------------------------------------

def test_api_resources_lists_short_names(sqlite_kubectl: Kubectl) -> None:
    rows = {r["NAME"]: r for r in parse_table(sqlite_kubectl.out("api-resources"))}
    expected = {"persistentvolumes": ("pv", "v1", "false", "PersistentVolume"),
                "persistentvolumeclaims": ("pvc", "v1", "true", "PersistentVolumeClaim"),
                "storageclasses": ("sc", "storage.k8s.io/v1", "false", "StorageClass"),
                "configmaps": ("cm", "v1", "true", "ConfigMap"),
                "pods": ("po", "v1", "true", "Pod"),
                "namespaces": ("ns", "v1", "false", "Namespace"),
                "nodes": ("no", "v1", "false", "Node"),
                "events": ("ev", "v1", "true", "Event"),
                "secrets": ("", "v1", "true", "Secret")}
    for name, (short, version, namespaced, kind) in expected.items():
        row = rows[name]
        assert (row["SHORTNAMES"], row["APIVERSION"], row["NAMESPACED"], row["KIND"]) == \
            (short, version, namespaced, kind), name
    # Short names work wherever a resource is named.
    assert sqlite_kubectl.out("get", "ns", sqlite_kubectl.namespace, "-o", "name") == \
        f"namespace/{sqlite_kubectl.namespace}\n"


def test_explain_pvc_spec(sqlite_kubectl: Kubectl) -> None:
    out = sqlite_kubectl.out("explain", "pvc.spec")
    assert out.startswith("KIND:       PersistentVolumeClaim\nVERSION:    v1\n\n"
                          "FIELD: spec <PersistentVolumeClaimSpec>\n")
    fields = dict(re.findall(r"^  (\w+)\t<(.+)>$", out, re.MULTILINE))
    assert {"accessModes": "[]string", "resources": "VolumeResourceRequirements",
            "storageClassName": "string", "volumeMode": "string", "volumeName": "string",
            "selector": "LabelSelector", "dataSource": "TypedLocalObjectReference",
            }.items() <= fields.items()


def test_explain_shows_quantities_as_quantity(sqlite_kubectl: Kubectl) -> None:
    out = sqlite_kubectl.out("explain", "pvc.spec.resources.requests")
    assert "FIELD: requests <map[string]Quantity>" in out


def test_auth_can_i(sqlite_kubectl: Kubectl) -> None:
    yes = sqlite_kubectl.run("auth", "can-i", "create", "persistentvolumeclaims")
    assert (yes.returncode, yes.stdout) == (0, "yes\n")
    assert sqlite_kubectl.out("auth", "can-i", "delete", "pv", "--all-namespaces") == "yes\n"


def test_auth_can_i_as_another_user(sqlite_kubectl: Kubectl) -> None:
    nobody = sqlite_kubectl.run("auth", "can-i", "create", "pvc",
                                "--as=system:serviceaccount:default:nobody", check=False)
    assert (nobody.returncode, nobody.stdout) == (1, "no\n")


# ---- errors as a real cluster prints them -----------------------------------------------

def test_invalid_name_is_reported_field_by_field(sqlite_kubectl: Kubectl) -> None:
    err = sqlite_kubectl.fails("apply", "-f", str(MANIFESTS / "pvc-bad-name.yaml"))
    assert err == ('The PersistentVolumeClaim "Bad_Name" is invalid: metadata.name: Invalid '
                   f'value: "Bad_Name": {DNS1123_SUBDOMAIN_HINT}')


def test_bad_quantity_cannot_be_decoded(sqlite_kubectl: Kubectl) -> None:
    path = str(MANIFESTS / "pvc-bad-quantity.yaml")
    assert sqlite_kubectl.fails("create", "-f", path) == (
        f'Error from server (BadRequest): error when creating "{path}": PersistentVolumeClaim '
        f'in version "v1" cannot be handled as a PersistentVolumeClaim: {QUANTITY_REGEX_HINT}')


def test_create_twice_already_exists_and_missing_is_not_found(kubectl: Kubectl) -> None:
    path = str(MANIFESTS / "pvc.yaml")
    kubectl.out("create", "-f", path)
    assert kubectl.fails("create", "-f", path) == (
        f'Error from server (AlreadyExists): error when creating "{path}": '
        f'persistentvolumeclaims "claim" already exists')
    not_found = 'Error from server (NotFound): persistentvolumeclaims "nope" not found'
    assert kubectl.fails("get", "pvc", "nope") == not_found
    assert kubectl.fails("delete", "pvc", "nope") == not_found
    assert kubectl.fails("describe", "pvc", "nope") == not_found


def test_replace_with_a_stale_resource_version_conflicts(kubectl: Kubectl,
                                                          tmp_path: Path) -> None:
    kubectl.out("apply", "-f", str(MANIFESTS / "pvc.yaml"))
    stale = tmp_path / "stale.json"
    stale.write_text(kubectl.out("get", "pvc", "claim", "-o", "json"))
    kubectl.out("label", "pvc", "claim", "moved=on")
    assert kubectl.fails("replace", "-f", str(stale)) == (
        f'Error from server (Conflict): error when replacing "{stale}": Operation cannot be '
        f'fulfilled on persistentvolumeclaims "claim": the object has been modified; please '
        f'apply your changes to the latest version and try again')
    assert kubectl.out("get", "pvc", "claim", "-o", "jsonpath={.metadata.labels.moved}") == "on"


def test_apply_new_object_with_unknown_field_is_a_strict_decoding_error(
        sqlite_kubectl: Kubectl) -> None:
    path = str(MANIFESTS / "pvc-unknown-field.yaml")
    assert sqlite_kubectl.fails("apply", "-f", path) == (
        f'Error from server (BadRequest): error when creating "{path}": PersistentVolumeClaim '
        f'in version "v1" cannot be handled as a PersistentVolumeClaim: strict decoding '
        f'error: unknown field "spec.resourcez"')
    assert sqlite_kubectl.fails("get", "pvc", "claim").startswith("Error from server (NotFound)")


def test_apply_over_existing_object_with_unknown_field_is_a_strict_decoding_error(
        sqlite_kubectl: Kubectl) -> None:
    sqlite_kubectl.out("apply", "-f", str(MANIFESTS / "pvc.yaml"))
    err = sqlite_kubectl.fails("apply", "-f", str(MANIFESTS / "pvc-unknown-field.yaml"))
    assert err.startswith("Error from server (BadRequest): error when applying patch:")
    assert err.endswith('strict decoding error: unknown field "spec.resourcez"')
    spec = json.loads(sqlite_kubectl.out("get", "pvc", "claim", "-o", "jsonpath={.spec}"))
    assert "resourcez" not in spec


def test_kubectl_create_subcommands_send_protobuf(sqlite_kubectl: Kubectl) -> None:
    name = f"c-{uuid.uuid4().hex[:10]}"
    try:
        assert sqlite_kubectl.out("create", "namespace", name) == f"namespace/{name} created\n"
    finally:
        sqlite_kubectl.server.kubectl("delete", "namespace", name, "--wait=false", check=False)
    assert sqlite_kubectl.out("create", "configmap", "made", "--from-literal=a=b") == \
        "configmap/made created\n"
    assert sqlite_kubectl.out("get", "cm", "made", "-o", "jsonpath={.data.a}") == "b"
    assert sqlite_kubectl.out("create", "secret", "generic", "creds",
                              "--from-literal=password=hunter2") == "secret/creds created\n"
    assert sqlite_kubectl.out("get", "secret", "creds", "-o",
                              "jsonpath={.data.password}") == "aHVudGVyMg=="
