#!/bin/sh
# Reliability 3: node-2's kubelet container is killed (`docker kill`).
#  - the node lifecycle controller marks node-2 Ready=Unknown (reason NodeStatusUnknown) once
#    its grace period (40 s, kube-controller-manager's default) has passed, taints it
#    node.kubernetes.io/unreachable:NoSchedule and records NodeNotReady;
#  - node-2's pod gets Ready=False, with a NodeNotReady event, as Kubernetes does (its
#    containers keep running: pods are not evicted);
#  - node-1 keeps working: its pod keeps writing to an NFS-backed claim, and a new pod that
#    names no node is placed on node-1 and mounts the same claim.
# At the end node-2's container is started again; the check waits until node-2 is Ready,
# untainted, and its pod Ready again. It runs last: node-2 is down for about a minute.
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../lib.sh"
. "$HERE/common.sh"
UNKNOWN_LIMIT=${UNKNOWN_LIMIT:-90}

node2=$(lab_container node-2)
cleanup() {
    # Never leave the lab without node-2.
    if [ -n "$node2" ] && ! is_running "$node2"; then docker start "$node2" >/dev/null || true; fi
    kubectl delete -f "$HERE/newcomer.yaml" -f "$HERE/node-down.yaml" --ignore-not-found \
        --wait=true >/dev/null 2>&1 || true
}
trap cleanup EXIT

ready_of() {  # KIND NAME: "status reason" of its Ready condition
    kubectl get "$1" "$2" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].reason}'
}
node2_unknown() { [ "$(ready_of node node-2)" = "Unknown NodeStatusUnknown" ]; }
node2_back() {
    [ "$(ready_of node node-2)" = "True KubeletReady" ] \
        && [ -z "$(kubectl get node node-2 -o jsonpath='{.spec.taints}')" ]
}
pod_ready_is() { [ "$(kubectl get pod "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = "$2" ]; }
ticks() { kubectl exec steady -- wc -l /data/ticks | awk '{ print $1 }'; }
ticks_grow() { t=$(ticks); sleep 2; [ "$(ticks)" -gt "$t" ]; }

step "steady on node-1 writes to an NFS-backed claim; stranded runs on node-2"
if [ -z "$node2" ] || ! is_running "$node2"; then fail "node-2's container is not running"; fi
kubectl apply -f "$HERE/node-down.yaml" >/dev/null
pod_ready steady 90
pod_ready stranded 90
stranded_uid=$(kubectl get pod stranded -o jsonpath='{.metadata.uid}')
wait_until 20 "steady does not write to its NFS volume" ticks_grow

step "kill node-2's kubelet container"
docker kill "$node2" >/dev/null
killed=$(now_s)
echo "killed at $(date -u +%H:%M:%SZ)"
wait_until "$UNKNOWN_LIMIT" "node-2 was not marked Ready=Unknown/NodeStatusUnknown" node2_unknown
echo "node-2 Ready=Unknown (NodeStatusUnknown) after $(( $(now_s) - killed ))s"
kubectl get node node-2 -o jsonpath='{range .spec.taints[*]}{.key}:{.effect}{"\n"}{end}' \
    | grep -qx "node.kubernetes.io/unreachable:NoSchedule" \
    || fail "node-2 lacks the node.kubernetes.io/unreachable:NoSchedule taint"
kubectl get events --field-selector involvedObject.kind=Node,involvedObject.name=node-2,reason=NodeNotReady \
    -o jsonpath='{range .items[*]}{.message}{"\n"}{end}' | grep -qx "Node node-2 status is now: NodeNotReady" \
    || fail "no NodeNotReady event for node-2"
kubectl get nodes --no-headers | awk '{ printf "%s=%s ", $1, $2 } END { print "" }'

step "node-2's pod is reported not ready"
wait_until 30 "stranded's Ready condition did not become False" pod_ready_is stranded False
events_of "$stranded_uid" | grep -q " Warning NodeNotReady: Node is not ready$" \
    || fail "no NodeNotReady event on pod stranded"
echo "stranded: Ready=False after $(( $(now_s) - killed ))s; event NodeNotReady 'Node is not ready'"

step "node-1 keeps working: steady writes on, a new pod lands on node-1 and reads the claim"
pod_ready_is steady True || fail "steady on node-1 is not Ready any more"
wait_until 20 "steady stopped writing to its NFS volume" ticks_grow
kubectl apply -f "$HERE/newcomer.yaml" >/dev/null
pod_ready newcomer 90
where=$(kubectl get pod newcomer -o jsonpath='{.spec.nodeName}')
[ "$where" = node-1 ] || fail "newcomer was placed on '$where', not node-1"
kubectl exec newcomer -- tail -n 1 /data/ticks >/dev/null || fail "newcomer cannot read the claim"
echo "steady wrote $(ticks) lines; newcomer runs on node-1 and reads: $(kubectl exec newcomer -- tail -n 1 /data/ticks)"

step "start node-2's container again"
docker start "$node2" >/dev/null
started=$(now_s)
wait_until 60 "node-2 is not Ready and untainted again" node2_back
wait_until 30 "stranded is not Ready again" pod_ready_is stranded True
echo "node-2 Ready and untainted, stranded Ready again, $(( $(now_s) - started ))s after the start"
echo "PASS: node-2's loss was reported on the node and its pod, and node-1 kept working"
