#!/bin/sh
# Demo 4: an emptyDir shared by two containers of one pod: what one writes, the other reads,
# and a file the reader makes shows up for the writer.
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../lib.sh"

cleanup() { kubectl delete -f "$HERE/pod.yaml" --ignore-not-found --wait=true >/dev/null 2>&1 || true; }
trap cleanup EXIT

step "a pod with a writer and a reader sharing an emptyDir"
kubectl apply -f "$HERE/pod.yaml" >/dev/null
pod_ready shared-scratch
reader_sees_lines() { kubectl exec shared-scratch -c reader -- grep -q "line 2" /shared/log; }
wait_until 30 "the reader did not see the writer's lines" reader_sees_lines
echo "reader: $(kubectl exec shared-scratch -c reader -- head -n 2 /shared/log | tr '\n' ' ')"
kubectl logs shared-scratch -c reader | grep -q "line 1" || fail "the reader's log lacks 'line 1'"

step "the other way: the reader writes, the writer reads"
kubectl exec shared-scratch -c reader -- sh -c 'echo from-reader > /shared/note'
[ "$(kubectl exec shared-scratch -c writer -- cat /scratch/note)" = from-reader ] \
    || fail "the writer does not see the reader's file"
echo "writer reads: from-reader"
echo "PASS: both containers share one emptyDir"
