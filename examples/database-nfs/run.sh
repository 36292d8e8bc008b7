#!/bin/sh
# Demo 1: a database's data outlives its pod, its node and its claim.
#  1. PostgreSQL on node-1 writes rows to an NFS-backed claim.
#  2. The pod is deleted and started again pinned to node-2: the rows are there.
#  3. The volume's reclaim policy becomes Retain and the claim is deleted: the data stays on
#     the NFS server.
#  4. A new claim binds to the same volume; PostgreSQL on node-1 finds the rows again.
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../lib.sh"

pv=""
cleanup() {
    kubectl delete pod postgres --ignore-not-found --wait=true >/dev/null 2>&1 || true
    kubectl delete pvc pgdata pgdata-again --ignore-not-found >/dev/null 2>&1 || true
    if [ -n "$pv" ]; then
        # The demo's own volume: give it back to the provisioner so its directory goes too.
        kubectl patch pv "$pv" -p '{"spec":{"persistentVolumeReclaimPolicy":"Delete"}}' \
            >/dev/null 2>&1 || true
        kubectl delete pv "$pv" --ignore-not-found >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

run_postgres() {  # NODE CLAIM
    sed -e "s/NODE/$1/" -e "s/CLAIM/$2/" "$HERE/postgres-pod.yaml" | kubectl apply -f - >/dev/null
    pod_ready postgres 120
    wait_until 90 "PostgreSQL on $1 accepts connections" \
        kubectl exec postgres -- psql -U postgres -h 127.0.0.1 -c "select 1"
    node=$(kubectl get pod postgres -o jsonpath='{.spec.nodeName}')
    [ "$node" = "$1" ] || fail "postgres runs on $node, not $1"
}
sql() { kubectl exec postgres -- psql -U postgres -h 127.0.0.1 -tAc "$1"; }
stop_postgres() { kubectl delete pod postgres --wait=true >/dev/null; }

step "claim a volume from the default class (nfs)"
kubectl apply -f "$HERE/pvc.yaml" >/dev/null
kubectl wait --for=jsonpath='{.status.phase}'=Bound pvc/pgdata --timeout=60s >/dev/null \
    || fail "pvc/pgdata is not Bound"
pv=$(kubectl get pvc pgdata -o jsonpath='{.spec.volumeName}')
echo "pvc/pgdata is bound to $pv"

step "PostgreSQL on node-1 writes three rows"
run_postgres node-1 pgdata
sql "create table visits (id serial primary key, who text)" >/dev/null
sql "insert into visits (who) values ('alice'), ('bob'), ('carol')" >/dev/null
[ "$(sql 'select count(*) from visits')" = 3 ] || fail "rows were not written on node-1"

step "delete the pod; run PostgreSQL pinned to node-2 on the same claim"
stop_postgres
run_postgres node-2 pgdata
rows=$(sql "select string_agg(who, ',' order by id) from visits")
[ "$rows" = "alice,bob,carol" ] || fail "node-2 sees rows '$rows', not alice,bob,carol"
echo "node-2 sees: $rows"

step "reclaim policy Retain; delete the claim: the data stays on the NFS server"
stop_postgres
kubectl patch pv "$pv" -p '{"spec":{"persistentVolumeReclaimPolicy":"Retain"}}' >/dev/null
kubectl delete pvc pgdata --wait=true >/dev/null
kubectl wait --for=jsonpath='{.status.phase}'=Released "pv/$pv" --timeout=60s >/dev/null \
    || fail "pv/$pv did not become Released"
server=$(nfs_server)
[ -n "$server" ] || fail "the lab's NFS server container is not running"
docker exec "$server" sh -c 'test -s /srv/export/"$1"/pgdata/PG_VERSION' sh "$pv" \
    || fail "the data directory of $pv is gone from the NFS server"
echo "the NFS server still holds /srv/export/$pv/pgdata"

step "a new claim binds to the retained volume; PostgreSQL on node-1 reads the rows"
kubectl patch pv "$pv" --type json -p '[{"op":"remove","path":"/spec/claimRef"}]' >/dev/null
sed "s/PV_NAME/$pv/" "$HERE/rebind-pvc.yaml" | kubectl apply -f - >/dev/null
kubectl wait --for=jsonpath='{.status.phase}'=Bound pvc/pgdata-again --timeout=60s >/dev/null \
    || fail "pvc/pgdata-again did not bind to $pv"
run_postgres node-1 pgdata-again
rows=$(sql "select string_agg(who, ',' order by id) from visits")
[ "$rows" = "alice,bob,carol" ] || fail "after rebinding, rows are '$rows'"
echo "after rebinding: $rows"
echo "PASS: the rows outlived the pod, the node and the claim"
