"""The REST contract of the apiserver, on SQLite and PostgreSQL, through raw HTTP.

Each test pins one thing kube-apiserver does on the wire: paths, codes, `Status` reasons,
server-side defaults, resourceVersion rules, finalizers, namespaces, watch, pagination.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx

from tests.conftest import ApiServer

PVC = "/api/v1/namespaces/{ns}/persistentvolumeclaims"


def pvc(name: str, size: str = "1Gi", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                     **spec}}


def cm(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels or {}}, "data": data}


def test_create_applies_defaults_metadata_and_canonical_quantity(api: httpx.Client,
                                                                  namespace: str) -> None:
    r = api.post(PVC.format(ns=namespace), json=pvc("data", "1.5Gi"))
    assert r.status_code == 201, r.text
    obj = r.json()
    meta = obj["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert int(meta["resourceVersion"]) > 0
    assert obj["spec"]["volumeMode"] == "Filesystem"
    assert obj["status"] == {"phase": "Pending"}
    assert meta["finalizers"] == ["kubernetes.io/pvc-protection"]
    got = api.get(f"{PVC.format(ns=namespace)}/data").json()
    assert got["spec"]["resources"]["requests"]["storage"] == "1536Mi"


def test_pv_and_storageclass_defaults(api: httpx.Client) -> None:
    pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-defaults"},
          "spec": {"capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"],
                   "hostPath": {"path": "/tmp/pv-defaults"}}}
    created = api.post("/api/v1/persistentvolumes", json=pv).json()
    assert created["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert created["spec"]["volumeMode"] == "Filesystem"
    assert created["status"]["phase"] == "Pending"
    sc = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
          "metadata": {"name": "sc-defaults"}, "provisioner": "example.com/x"}
    created_sc = api.post("/apis/storage.k8s.io/v1/storageclasses", json=sc).json()
    assert created_sc["reclaimPolicy"] == "Delete"
    assert created_sc["volumeBindingMode"] == "Immediate"
    api.delete("/api/v1/persistentvolumes/pv-defaults")
    api.delete("/apis/storage.k8s.io/v1/storageclasses/sc-defaults")


def test_errors_are_status_objects_with_kubernetes_reasons(api: httpx.Client,
                                                           namespace: str) -> None:
    base = PVC.format(ns=namespace)
    assert api.post(base, json=pvc("dup")).status_code == 201
    taken = api.post(base, json=pvc("dup"))
    assert (taken.status_code, taken.json()["reason"]) == (409, "AlreadyExists")
    assert taken.json()["message"] == 'persistentvolumeclaims "dup" already exists'
    missing = api.get(f"{base}/nope")
    assert (missing.status_code, missing.json()["reason"]) == (404, "NotFound")
    assert missing.json()["kind"] == "Status" and missing.json()["status"] == "Failure"
    bad = api.post(base, json=pvc("Bad_Name", accessModes=["ReadWriteTwice"]))
    assert bad.status_code == 422 and bad.json()["reason"] == "Invalid"
    fields = {c["field"] for c in bad.json()["details"]["causes"]}
    assert fields == {"metadata.name", "spec.accessModes"}
    malformed = api.post(base, content=b"{not json", headers={"content-type": "application/json"})
    assert (malformed.status_code, malformed.json()["reason"]) == (400, "BadRequest")
    huge = api.post(base, content=b" " * (3 * 1024 * 1024 + 1),
                    headers={"content-type": "application/json"})
    assert (huge.status_code, huge.json()["reason"]) == (413, "RequestEntityTooLarge")
    unsupported = api.patch(f"{base}/dup", content=b"{}", headers={"content-type": "text/csv"})
    assert (unsupported.status_code, unsupported.json()["reason"]) == (415,
                                                                        "UnsupportedMediaType")
    unknown = api.get("/api/v1/namespaces/default/widgets")
    assert unknown.status_code == 404 and unknown.json()["kind"] == "Status"
    bad_quantity = api.post(base, json=pvc("q", "1x"))
    assert bad_quantity.status_code == 400
    assert "quantities must match" in bad_quantity.json()["message"]


def test_rejected_request_changes_nothing(api: httpx.Client, namespace: str) -> None:
    before = api.get(PVC.format(ns=namespace)).json()["metadata"]["resourceVersion"]
    assert api.post(PVC.format(ns=namespace), json=pvc("x;rm -rf")).status_code == 422
    after = api.get(PVC.format(ns=namespace)).json()
    assert after["items"] == []
    assert int(after["metadata"]["resourceVersion"]) >= int(before)


def test_stale_update_conflicts_and_unconditional_update_wins(api: httpx.Client,
                                                              namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    first = api.post(base, json=cm("c", a="1")).json()
    second = dict(first, data={"a": "2"})
    assert api.put(f"{base}/c", json=second).status_code == 200
    stale = dict(first, data={"a": "3"})
    r = api.put(f"{base}/c", json=stale)
    assert (r.status_code, r.json()["reason"]) == (409, "Conflict")
    assert "the object has been modified" in r.json()["message"]
    unconditional = dict(first, data={"a": "4"})
    unconditional["metadata"] = {k: v for k, v in first["metadata"].items()
                                 if k != "resourceVersion"}
    assert api.put(f"{base}/c", json=unconditional).json()["data"] == {"a": "4"}


def test_two_updates_from_one_version_exactly_one_wins(server: ApiServer, api: httpx.Client,
                                                      namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    obj = api.post(base, json=cm("race", a="0")).json()
    codes: list[int] = []
    barrier = threading.Barrier(2)

    def update(value: str) -> None:
        with server.client() as c:
            barrier.wait()
            codes.append(c.put(f"{base}/race", json=dict(obj, data={"a": value})).status_code)
    threads = [threading.Thread(target=update, args=(v,)) for v in "12"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200, 409]


def test_patch_types(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    api.post(base, json=cm("p", a="1", b="2"))
    merge = api.patch(f"{base}/p", content=json.dumps({"data": {"b": None, "c": "3"}}),
                      headers={"content-type": "application/merge-patch+json"})
    assert merge.json()["data"] == {"a": "1", "c": "3"}
    jp = api.patch(f"{base}/p", content=json.dumps([{"op": "replace", "path": "/data/a",
                                                     "value": "9"}]),
                   headers={"content-type": "application/json-patch+json"})
    assert jp.json()["data"]["a"] == "9"
    smp = api.patch(f"{base}/p", content=json.dumps({"metadata": {"labels": {"x": "y"}}}),
                    headers={"content-type": "application/strategic-merge-patch+json"})
    assert smp.json()["metadata"]["labels"] == {"x": "y"}
    failing = api.patch(f"{base}/p", content=json.dumps([{"op": "test", "path": "/data/a",
                                                          "value": "0"}]),
                        headers={"content-type": "application/json-patch+json"})
    assert failing.status_code == 422
    pinned = api.patch(f"{base}/p", content=json.dumps({"metadata": {"resourceVersion": "1"}}),
                       headers={"content-type": "application/merge-patch+json"})
    assert pinned.status_code == 409


def test_status_subresource_separates_spec_and_status(api: httpx.Client, namespace: str) -> None:
    base = PVC.format(ns=namespace)
    obj = api.post(base, json=pvc("s")).json()
    obj["status"] = {"phase": "Bound"}
    obj["metadata"]["labels"] = {"changed": "yes"}
    main = api.put(f"{base}/s", json=obj).json()
    assert main["status"]["phase"] == "Pending"
    assert main["metadata"]["labels"] == {"changed": "yes"}
    main["status"] = {"phase": "Bound", "capacity": {"storage": "1Gi"}}
    main["metadata"]["labels"] = {"changed": "again"}
    status = api.put(f"{base}/s/status", json=main).json()
    assert status["status"]["phase"] == "Bound"
    assert status["metadata"]["labels"] == {"changed": "yes"}


def test_pvc_spec_is_immutable_except_storage_request(api: httpx.Client, namespace: str) -> None:
    base = PVC.format(ns=namespace)
    obj = api.post(base, json=pvc("imm")).json()
    obj["spec"]["accessModes"] = ["ReadWriteMany"]
    r = api.put(f"{base}/imm", json=obj)
    assert r.status_code == 422 and r.json()["details"]["causes"][0]["field"] == "spec"


def test_finalizers_hold_deletion_until_removed(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    obj = cm("held")
    obj["metadata"]["finalizers"] = ["example.com/hold"]
    api.post(base, json=obj)
    r = api.delete(f"{base}/held")
    assert r.status_code == 200 and r.json()["metadata"]["deletionTimestamp"]
    held = api.get(f"{base}/held").json()
    assert held["metadata"]["deletionTimestamp"]
    patch = json.dumps({"metadata": {"finalizers": None}})
    api.patch(f"{base}/held", content=patch,
              headers={"content-type": "application/merge-patch+json"})
    assert api.get(f"{base}/held").status_code == 404


def test_delete_preconditions(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    api.post(base, json=cm("pre"))
    r = api.request("DELETE", f"{base}/pre", json={"preconditions": {"uid": "wrong"}})
    assert r.status_code == 409
    assert api.delete(f"{base}/pre").status_code == 200


def test_objects_need_an_existing_namespace(api: httpx.Client) -> None:
    r = api.post("/api/v1/namespaces/does-not-exist/configmaps", json=cm("x"))
    assert r.status_code == 404 and r.json()["message"] == 'namespaces "does-not-exist" not found'


def test_system_namespaces_exist_and_cannot_be_deleted(api: httpx.Client) -> None:
    names = {n["metadata"]["name"] for n in api.get("/api/v1/namespaces").json()["items"]}
    assert {"default", "kube-system", "kube-public"} <= names
    r = api.delete("/api/v1/namespaces/default")
    assert r.status_code == 403


def test_namespace_deletion_terminates_then_removes(api: httpx.Client) -> None:
    created = api.post("/api/v1/namespaces", json={"metadata": {"name": "doomed"}}).json()
    assert created["spec"]["finalizers"] == ["kubernetes"]
    api.post("/api/v1/namespaces/doomed/configmaps", json=cm("a"))
    r = api.delete("/api/v1/namespaces/doomed")
    assert r.json()["status"]["phase"] == "Terminating"
    refused = api.post("/api/v1/namespaces/doomed/configmaps", json=cm("b"))
    assert refused.status_code in (403, 404)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if api.get("/api/v1/namespaces/doomed").status_code == 404:
            break
        time.sleep(0.1)
    assert api.get("/api/v1/namespaces/doomed").status_code == 404
    assert api.get("/api/v1/namespaces/doomed/configmaps/a").status_code == 404


def test_list_pagination_and_selectors(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    for i in range(7):
        api.post(base, json=cm(f"c{i}", labels={"tier": "db" if i % 2 else "web",
                                                "idx": str(i)}))
    page = api.get(base, params={"limit": 3}).json()
    names = [i["metadata"]["name"] for i in page["items"]]
    while page["metadata"].get("continue"):
        page = api.get(base, params={"limit": 3, "continue": page["metadata"]["continue"]}).json()
        names += [i["metadata"]["name"] for i in page["items"]]
    assert names == [f"c{i}" for i in range(7)]
    db = api.get(base, params={"labelSelector": "tier=db"}).json()["items"]
    assert [i["metadata"]["name"] for i in db] == ["c1", "c3", "c5"]
    sets = api.get(base, params={"labelSelector": "idx in (1,2),tier!=db"}).json()["items"]
    assert [i["metadata"]["name"] for i in sets] == ["c2"]
    by_name = api.get(base, params={"fieldSelector": "metadata.name=c4"}).json()["items"]
    assert [i["metadata"]["name"] for i in by_name] == ["c4"]
    bad = api.get(base, params={"fieldSelector": "spec.nothing=x"})
    assert bad.status_code == 400


def test_pod_binding_sets_node_once(api: httpx.Client, namespace: str) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    created = api.post(pods, json=pod).json()
    assert created["spec"]["restartPolicy"] == "Always"
    assert created["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}}
    assert api.post(f"{pods}/p/binding", json=binding).status_code == 201
    bound = api.get(f"{pods}/p").json()
    assert bound["spec"]["nodeName"] == "node-1"
    assert any(c["type"] == "PodScheduled" and c["status"] == "True"
               for c in bound["status"]["conditions"])
    again = api.post(f"{pods}/p/binding", json=binding)
    assert again.status_code == 409
    node_pods = api.get("/api/v1/pods", params={"fieldSelector": "spec.nodeName=node-1"}).json()
    assert "p" in [p["metadata"]["name"] for p in node_pods["items"]]
    # A pod on a node that does not exist is removed by pod GC once deleted.
    api.delete(f"{pods}/p")
    deadline = time.monotonic() + 10
    while api.get(f"{pods}/p").status_code != 404 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert api.get(f"{pods}/p").status_code == 404


def test_watch_streams_events_from_a_revision(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    start = api.get(base).json()["metadata"]["resourceVersion"]
    created = api.post(base, json=cm("w", a="1")).json()
    api.put(f"{base}/w", json=dict(created, data={"a": "2"}))
    api.delete(f"{base}/w")
    events = []
    with api.stream("GET", base, params={"watch": "1", "resourceVersion": start,
                                         "timeoutSeconds": "5"}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            events.append(json.loads(line))
            if len(events) == 3:
                break
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    revisions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert revisions == sorted(revisions) and events[1]["object"]["data"] == {"a": "2"}


def test_watch_without_revision_starts_with_current_state(api: httpx.Client,
                                                          namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    api.post(base, json=cm("existing"))
    with api.stream("GET", base, params={"watch": "true", "timeoutSeconds": "3"}) as r:
        first = json.loads(next(r.iter_lines()))
    assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "existing"


def test_watch_with_label_selector_reports_leaving_as_deleted(api: httpx.Client,
                                                              namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    start = api.get(base).json()["metadata"]["resourceVersion"]
    obj = api.post(base, json=cm("sel", labels={"app": "a"})).json()
    obj["metadata"]["labels"] = {"app": "b"}
    api.put(f"{base}/sel", json=obj)
    with api.stream("GET", base, params={"watch": "1", "resourceVersion": start,
                                         "labelSelector": "app=a", "timeoutSeconds": "3"}) as r:
        lines = r.iter_lines()
        types = [json.loads(next(lines))["type"], json.loads(next(lines))["type"]]
    assert types == ["ADDED", "DELETED"]


def test_table_columns_are_kubernetes_own(api: httpx.Client, namespace: str) -> None:
    api.post(PVC.format(ns=namespace), json=pvc("t"))
    r = api.get(PVC.format(ns=namespace),
                headers={"accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
    table = r.json()
    assert table["kind"] == "Table"
    names = [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0]
    assert names == ["Name", "Status", "Volume", "Capacity", "Access Modes", "StorageClass",
                     "VolumeAttributesClass", "Age"]
    assert table["rows"][0]["cells"][:2] == ["t", "Pending"]


def test_discovery_lists_resources_with_short_names(api: httpx.Client) -> None:
    core = api.get("/api/v1").json()
    short = {r["name"]: r.get("shortNames") for r in core["resources"]}
    assert short["persistentvolumeclaims"] == ["pvc"] and short["pods"] == ["po"]
    assert "pods/binding" in short and "persistentvolumes/status" in short
    groups = {g["name"] for g in api.get("/apis").json()["groups"]}
    assert {"storage.k8s.io", "coordination.k8s.io", "rbac.authorization.k8s.io"} <= groups
    assert api.get("/version").json()["major"] == "1"


def test_metrics_count_requests(api: httpx.Client) -> None:
    api.get("/api/v1/namespaces")
    text = api.get("/metrics").text
    assert 'apiserver_request_total{code="200",resource="namespaces",subresource="",verb="LIST"}' \
        in text
    assert "apiserver_registered_watchers" in text
