# Helpers the demo scripts share (sourced, POSIX sh). Every check that fails ends the demo
# with a non-zero status and says what did not hold.
set -eu
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $*"; }
# wait_until SECONDS DESCRIPTION COMMAND...: retry COMMAND until it succeeds.
wait_until() {
    limit=$1; what=$2; shift 2
    deadline=$(( $(date +%s) + limit ))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "$what (not within ${limit}s)"
        sleep 0.5
    done
}
pod_ready() { kubectl wait --for=condition=Ready "pod/$1" --timeout="${2:-90}s" >/dev/null \
    || { kubectl describe pod "$1" | tail -15; fail "pod $1 is not Ready"; }; }
# The lab's container of a compose service, running or not (compose project storagelab-lab).
lab_container() {
    docker ps -aq --filter label=com.docker.compose.project="${COMPOSE_PROJECT_NAME:-storagelab-lab}" \
        --filter label=com.docker.compose.service="$1" | head -n1
}
is_running() { [ "$(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ]; }
# The lab's NFS server container while it runs (service nfs).
nfs_server() {
    server=$(lab_container nfs)
    if [ -n "$server" ] && is_running "$server"; then echo "$server"; fi
}
