# What the reliability checks share (sourced after lib.sh): the lab's own script and a
# PostgreSQL pod, `reliable-db`, keeping its data on an NFS-backed claim (database.yaml).
# shellcheck disable=SC2034  # used by the scripts that source this file
LAB_SH="$(cd "$HERE/../.." && pwd)/lab/lab.sh"

# db_start NODE: the claim and the pod pinned to NODE; returns once PostgreSQL answers.
db_start() {
    sed "s/NODE/$1/" "$HERE/database.yaml" | kubectl apply -f - >/dev/null
    kubectl wait --for=jsonpath='{.status.phase}'=Bound pvc/reliable-data --timeout=60s \
        >/dev/null || fail "pvc/reliable-data is not Bound"
    pod_ready reliable-db 120
    # initdb on a fresh NFS volume takes a while before the server listens.
    wait_until 120 "PostgreSQL in reliable-db does not accept connections" sql "select 1"
}

sql() { kubectl exec reliable-db -- psql -U postgres -h 127.0.0.1 -v ON_ERROR_STOP=1 -tAc "$1"; }

db_rows() { sql "select string_agg(who, ',' order by id) from visits"; }

db_write_rows() {
    sql "create table visits (id serial primary key, who text)" >/dev/null
    sql "insert into visits (who) values ('alice'), ('bob'), ('carol')" >/dev/null
    [ "$(db_rows)" = "alice,bob,carol" ] || fail "the rows were not written"
}

db_restarts() { kubectl get pod reliable-db -o jsonpath='{.status.containerStatuses[0].restartCount}'; }

db_delete() {
    kubectl delete pod reliable-db --ignore-not-found --wait=true >/dev/null 2>&1 || true
    kubectl delete pvc reliable-data --ignore-not-found --wait=true >/dev/null 2>&1 || true
}

# The events of one object (by uid, so an earlier run's object of the same name is left out).
events_of() {
    kubectl get events --field-selector "involvedObject.uid=$1" \
        -o jsonpath='{range .items[*]}{.lastTimestamp} {.type} {.reason}: {.message}{"\n"}{end}' \
        | LC_ALL=C sort
}

now_s() { date +%s; }
