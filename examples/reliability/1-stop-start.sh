#!/bin/sh
# Reliability 1: stop the whole lab and start it again (`lab.sh stop`, `lab.sh start`).
#  - every PV, PVC and Secret is there afterwards with the same uid, phase, binding and data;
#  - a Secret's value reads back intact through the API, and is still encrypted at rest;
#  - both nodes come back Ready (their kubelets renewed their Leases after the start);
#  - PostgreSQL, whose data is on an NFS-backed claim, runs again and has its rows.
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../lib.sh"
. "$HERE/common.sh"

cleanup() {
    # A failed check must not leave a stopped lab to the next one.
    controlplane=$(lab_container controlplane)
    if [ -n "$controlplane" ] && ! is_running "$controlplane"; then
        "$LAB_SH" start >/dev/null 2>&1 || true
    fi
    kubectl delete secret reliable-credentials --ignore-not-found >/dev/null 2>&1 || true
    db_delete
}
trap cleanup EXIT

# kind, name, uid, phase, binding and data of every PV, PVC and Secret, one line each.
inventory() {
    kubectl get pv,pvc,secrets -A -o jsonpath='{range .items[*]}{.kind} {.metadata.namespace}/{.metadata.name} uid={.metadata.uid} phase={.status.phase} volume={.spec.volumeName} claim={.spec.claimRef.uid} data={.data}{"\n"}{end}' \
        | LC_ALL=C sort
}

secret_value() {
    kubectl get secret reliable-credentials -o jsonpath='{.data.password}' | base64 -d
}

# What `storagelab secrets status` says of our Secret: "<key> <state>", e.g. "secretbox:key1 current".
secret_at_rest() {
    docker exec "$(lab_container controlplane)" storagelab secrets status \
        --data-dir /var/lib/storagelab --kubeconfig /var/lib/storagelab/kubeconfig 2>/dev/null \
        | awk '$1 == "default" && $2 == "reliable-credentials" { print $3, $4 }'
}

plaintext_in_store() {  # VALUE: found in the SQLite files of the store (the default store)
    docker exec "$(lab_container controlplane)" sh -c \
        'ls /var/lib/storagelab/state.db* >/dev/null 2>&1 && grep -a -q -F "$1" /var/lib/storagelab/state.db*' \
        sh "$1"
}

step "PostgreSQL on node-1 writes rows to an NFS-backed claim; a Secret holds a password"
db_start node-1
db_write_rows
password="pw-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
kubectl create secret generic reliable-credentials --from-literal=password="$password" >/dev/null
[ "$(secret_value)" = "$password" ] || fail "the Secret does not read back before the stop"
before=$(inventory)
pv=$(kubectl get pvc reliable-data -o jsonpath='{.spec.volumeName}')
for name in "PersistentVolume /$pv " "PersistentVolumeClaim default/reliable-data " \
            "Secret default/reliable-credentials "; do
    echo "$before" | grep -q "^$name" || fail "$name is missing from the inventory before the stop"
done
restarts_before=$(db_restarts)
echo "$(echo "$before" | wc -l) PVs, PVCs and Secrets recorded; rows: $(db_rows)"

step "stop the whole lab"
started=$(now_s)
"$LAB_SH" stop
[ -z "$(docker ps -q --filter label=com.docker.compose.project="${COMPOSE_PROJECT_NAME:-storagelab-lab}")" ] \
    || fail "lab containers still run after 'lab.sh stop'"
[ -z "$(docker ps -q --filter label=io.kubernetes.pod.name=reliable-db)" ] \
    || fail "the database pod's container still runs after 'lab.sh stop'"
echo "stopped in $(( $(now_s) - started ))s: no lab container and no pod container runs"

step "start it again"
started=$(now_s)
"$LAB_SH" start
echo "nodes Ready again in $(( $(now_s) - started ))s"
for node in node-1 node-2; do
    [ "$(kubectl get node "$node" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ] \
        || fail "$node is not Ready after the start"
done

step "every PV, PVC and Secret survived, unchanged"
after=$(inventory)
if [ "$before" != "$after" ]; then
    echo "before:"; echo "$before"; echo "after:"; echo "$after"
    fail "the PVs, PVCs or Secrets differ after the restart"
fi
[ "$(secret_value)" = "$password" ] || fail "the Secret's value changed across the restart"
at_rest=$(secret_at_rest)
case "$at_rest" in
    *" current") ;;
    *) fail "the Secret is not under the current encryption key at rest: '$at_rest'" ;;
esac
case "$at_rest" in identity*) fail "the Secret is stored unencrypted ($at_rest)" ;; esac
if plaintext_in_store "$password"; then fail "the Secret's value is in the store in plain text"; fi
echo "$(echo "$after" | wc -l) objects identical; the Secret decrypts intact, at rest under $at_rest"

step "PostgreSQL runs again on node-1 with its rows"
pod_ready reliable-db 120
wait_until 120 "PostgreSQL does not accept connections after the restart" sql "select 1"
[ "$(kubectl get pod reliable-db -o jsonpath='{.spec.nodeName}')" = node-1 ] \
    || fail "reliable-db moved off node-1"
[ "$(db_restarts)" -gt "$restarts_before" ] \
    || fail "reliable-db's container was not restarted (restartCount $(db_restarts))"
rows=$(db_rows)
[ "$rows" = "alice,bob,carol" ] || fail "after the restart the rows are '$rows'"
sql "insert into visits (who) values ('dave')" >/dev/null
[ "$(db_rows)" = "alice,bob,carol,dave" ] || fail "a new row could not be written after the restart"
echo "rows after the restart: $rows, and a new one written (restartCount $(db_restarts))"
echo "PASS: PVs, PVCs, Secrets and the database's rows survived stopping and starting the lab"
