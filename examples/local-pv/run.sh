#!/bin/sh
# Demo 2: a local PersistentVolume is pinned to its node. The claim waits for its first pod
# (node-2), the volume is made there with node affinity for node-2, and a later pod that
# names no node is scheduled to node-2 because of the volume, and finds the data.
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../lib.sh"

cleanup() {
    kubectl delete pod local-writer local-reader --ignore-not-found --wait=true >/dev/null 2>&1 || true
    kubectl delete pvc local-data --ignore-not-found >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "a claim on the local class and a writer pinned to node-2"
kubectl apply -f "$HERE/manifests.yaml" >/dev/null
pod_ready local-writer
pv=$(kubectl get pvc local-data -o jsonpath='{.spec.volumeName}')
[ -n "$pv" ] || fail "pvc/local-data is not bound"
affinity=$(kubectl get pv "$pv" -o jsonpath='{.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}')
[ "$affinity" = node-2 ] || fail "pv/$pv has node affinity '$affinity', expected node-2"
echo "pv/$pv is pinned to node-2"
kubectl delete pod local-writer --wait=true >/dev/null

step "a reader that names no node lands on node-2 and reads the data"
kubectl apply -f "$HERE/reader.yaml" >/dev/null
pod_ready local-reader
node=$(kubectl get pod local-reader -o jsonpath='{.spec.nodeName}')
[ "$node" = node-2 ] || fail "local-reader was scheduled to '$node', not node-2"
[ "$(kubectl exec local-reader -- cat /data/written-by)" = local-writer ] \
    || fail "local-reader does not see the writer's file"
echo "local-reader on $node reads: local-writer"
echo "PASS: the local volume keeps its pods on its node"
