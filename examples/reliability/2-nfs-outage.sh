#!/bin/sh
# Reliability 2: the NFS server dies (`docker kill`) under a running database and comes back
# (`docker start`). The database must recover by itself within RECOVERY_LIMIT seconds of the
# server's return: a query succeeds, the rows written before the outage are there, and new
# writes succeed. What the pod saw during the outage and the events the kubelet recorded
# are printed, for the record.
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../lib.sh"
. "$HERE/common.sh"
OUTAGE_S=${OUTAGE_S:-15}
RECOVERY_LIMIT=${RECOVERY_LIMIT:-120}

server=""
cleanup() {
    # Never leave the lab without its NFS server.
    if [ -n "$server" ] && ! is_running "$server"; then docker start "$server" >/dev/null || true; fi
    db_delete
}
trap cleanup EXIT

# The rows from before are there and a new one can be written. Safe to retry: a write made
# during the outage that did commit, or a half-finished earlier try, is removed first.
recovered() {
    outage_write=$(sql "select count(*) from visits where who = 'during-outage'") || return 1
    sql "delete from visits where who in ('during-outage', 'dave')" >/dev/null \
        && [ "$(db_rows)" = "alice,bob,carol" ] \
        && sql "insert into visits (who) values ('dave')" >/dev/null \
        && [ "$(db_rows)" = "alice,bob,carol,dave" ]
}

step "PostgreSQL on node-1 writes rows to an NFS-backed claim"
db_start node-1
db_write_rows
sql "checkpoint" >/dev/null  # the rows in the data files too, not only in the WAL
uid=$(kubectl get pod reliable-db -o jsonpath='{.metadata.uid}')
restarts_before=$(db_restarts)
server=$(nfs_server)
[ -n "$server" ] || fail "the lab's NFS server container is not running"
echo "rows: $(db_rows)"

step "kill the NFS server (docker kill) for ${OUTAGE_S}s"
killed=$(now_s)
docker kill "$server" >/dev/null
echo "killed at $(date -u +%H:%M:%SZ)"
# A query during the outage: PostgreSQL may answer from its cache, fail, or wait.
during=$(timeout 10 kubectl exec reliable-db -- psql -U postgres -h 127.0.0.1 -tAc \
    "insert into visits (who) values ('during-outage') returning id" 2>&1 | head -n 3 | tr '\n' ' ')
echo "a write during the outage: ${during:-no answer within 10s}"
left=$(( OUTAGE_S - ($(now_s) - killed) ))
[ "$left" -le 0 ] || sleep "$left"
echo "pod during the outage: $(kubectl get pod reliable-db -o jsonpath='phase={.status.phase} ready={.status.conditions[?(@.type=="Ready")].status} restarts={.status.containerStatuses[0].restartCount}')"

step "start the NFS server again; the database must recover within ${RECOVERY_LIMIT}s"
docker start "$server" >/dev/null
back=$(now_s)
echo "started again at $(date -u +%H:%M:%SZ)"
deadline=$(( back + RECOVERY_LIMIT ))
until recovered 2>/dev/null; do
    [ "$(now_s)" -lt "$deadline" ] || {
        kubectl describe pod reliable-db | tail -20
        fail "the database did not recover within ${RECOVERY_LIMIT}s of the NFS server's return"
    }
    sleep 1
done
echo "recovered $(( $(now_s) - back ))s after the server returned ($(( $(now_s) - killed ))s after the kill)"
rows=$(db_rows)
[ "$rows" = "alice,bob,carol,dave" ] || fail "after the outage the rows are '$rows'"
echo "rows: $rows (the three from before, and one written after the outage)"
case "$outage_write" in
    0) echo "the write tried during the outage did not commit" ;;
    *) echo "the write tried during the outage waited for the server and committed after it returned" ;;
esac
echo "PostgreSQL container restarts during the outage: $(( $(db_restarts) - restarts_before ))"
echo "events of the pod:"
events_of "$uid" | grep -v -E " Normal (Scheduled|Pulled|Created|Started):" | sed 's/^/  /' || true
echo "PASS: the database recovered from the NFS server's outage with its rows"
