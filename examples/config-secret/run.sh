#!/bin/sh
# Demo 3: a ConfigMap and a Secret reach a container as environment variables and as files;
# editing the ConfigMap changes the file in the running container, without a restart.
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../lib.sh"

cleanup() { kubectl delete -f "$HERE/app.yaml" --ignore-not-found --wait=true >/dev/null 2>&1 || true; }
trap cleanup EXIT

in_pod() { kubectl exec config-app -- "$@"; }
expect() {  # WHAT EXPECTED ACTUAL
    [ "$3" = "$2" ] || fail "$1 is '$3', expected '$2'"
    echo "$1 = $3"
}

step "create the ConfigMap, the Secret and the pod"
kubectl apply -f "$HERE/app.yaml" >/dev/null
pod_ready config-app
expect "env GREETING" hello "$(in_pod sh -c 'echo "$GREETING"')"
expect "env PASSWORD" s3cret "$(in_pod sh -c 'echo "$PASSWORD"')"
expect "file /etc/app/greeting" hello "$(in_pod cat /etc/app/greeting)"
expect "file /etc/app/app.properties" color=blue "$(in_pod cat /etc/app/app.properties)"
expect "file /etc/secret/password" s3cret "$(in_pod cat /etc/secret/password)"
started=$(kubectl get pod config-app -o jsonpath='{.status.containerStatuses[0].state.running.startedAt}')

step "edit the ConfigMap; the file follows, the container keeps running"
kubectl patch configmap app-config -p '{"data":{"app.properties":"color=green\n"}}' >/dev/null
file_is_green() { [ "$(in_pod cat /etc/app/app.properties)" = color=green ]; }
wait_until 90 "/etc/app/app.properties did not change to color=green" file_is_green
echo "file /etc/app/app.properties = color=green"
restarts=$(kubectl get pod config-app -o jsonpath='{.status.containerStatuses[0].restartCount}')
now=$(kubectl get pod config-app -o jsonpath='{.status.containerStatuses[0].state.running.startedAt}')
[ "$restarts" = 0 ] && [ "$now" = "$started" ] || fail "the container restarted ($restarts restarts)"
# Environment variables are read once, at container start (as in Kubernetes).
expect "env GREETING (unchanged)" hello "$(in_pod sh -c 'echo "$GREETING"')"
echo "PASS: env and files from a ConfigMap and a Secret; the file changed without a restart"
