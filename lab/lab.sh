#!/bin/sh
# The lab's life cycle, called by lab.mk: `images`, `up`, `stop`, `start`, `down [--volumes]`,
# `test [demos|reliability]`.
#
# It works with `docker compose` (v2 and later) or Debian's `docker-compose` (1.29), preferring
# the first when both are installed (LAB_COMPOSE="docker-compose" forces one), under the
# compose project name `storagelab-lab`. The kubelets' root dirs live under
# /var/lib/storagelab-lab on the host; `up` makes that directory a shared mount (the kubelets
# mount it with rshared propagation so pods see their mounts), `stop` shuts the lab down the
# way a machine shuts down (pods first, then the nodes, then the servers) and keeps every
# container, `start` brings it back, `down` removes the lab's pods, containers and mounts,
# and with --volumes its data too.
set -eu

REPO="$(cd "$(dirname "$0")/.." && pwd)"
LAB_ROOT=/var/lib/storagelab-lab
NODES="node-1 node-2"
PROJECT="${COMPOSE_PROJECT_NAME:-storagelab-lab}"
BASE_TAG=storagelab-lab/base:bookworm
KUBECONFIG_OUT="$REPO/lab/kubeconfig"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
export LAB_API_PORT="${LAB_API_PORT:-6443}"

say() { echo "lab: $*"; }
die() { echo "lab: $*" >&2; exit 1; }

# The compose command: `docker compose` when the plugin is there, else `docker-compose`.
compose_command() {
    if [ -n "${LAB_COMPOSE:-}" ]; then
        echo "$LAB_COMPOSE"
    elif docker compose version >/dev/null 2>&1; then
        echo "docker compose"
    elif command -v docker-compose >/dev/null 2>&1; then
        echo "docker-compose"
    else
        die "neither 'docker compose' nor 'docker-compose' is installed (apt-get install docker-compose)"
    fi
}

compose() {
    [ -n "${COMPOSE_CMD:-}" ] || COMPOSE_CMD=$(compose_command)
    $COMPOSE_CMD -p "$PROJECT" -f "$REPO/docker-compose.yml" "$@"
}

# The lab's containers of one service (running or not), found by compose's labels, which
# both compose versions set; never another project's.
service_containers() {
    docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" \
        --filter "label=com.docker.compose.service=$1"
}

service_running() {
    [ -n "$(docker ps -q --filter "label=com.docker.compose.project=$PROJECT" \
        --filter "label=com.docker.compose.service=$1")" ]
}

use_database() {
    case "${DB:-sqlite}" in
        sqlite) unset COMPOSE_PROFILES STORAGELAB_DATABASE_URL || true ;;
        postgres)
            export COMPOSE_PROFILES=postgres
            export STORAGELAB_DATABASE_URL=postgresql+psycopg://postgres@postgres/storagelab ;;
        *) die "DB=${DB} is not one of sqlite, postgres" ;;
    esac
}

# ------------------------------------------------------------------ images

packages_sum() { sha256sum "$REPO/lab/base/packages.txt" | cut -c1-16; }

base_is_current() {
    [ "$(docker image inspect -f '{{index .Config.Labels "io.storagelab.packages"}}' \
        "$BASE_TAG" 2>/dev/null || true)" = "$(packages_sum)" ]
}

build_base() {
    if base_is_current; then
        say "base image $BASE_TAG is up to date"
        return
    fi
    # Only with LAB_BASE=registry is a registry contacted; the default builds from the
    # machine's own apt sources, which is what works offline.
    if [ "${LAB_BASE:-apt}" = registry ]; then
        docker build --label "io.storagelab.packages=$(packages_sum)" -t "$BASE_TAG" \
            "$REPO/lab/base"
    else
        command -v mmdebstrap >/dev/null || die "mmdebstrap is missing (apt-get install mmdebstrap)"
        "$REPO/lab/base/build-offline.sh" "$BASE_TAG" "io.storagelab.packages=$(packages_sum)"
    fi
}

# What an image is built from, as a short digest that the image carries as a label, so a
# changed checkout or Dockerfile rebuilds it (a stale storagelab image would run old code).
inputs_sum() {
    (cd "$REPO" && find "$@" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' | LC_ALL=C sort \
        | xargs sha256sum) | sha256sum | cut -c1-16
}

export_input_sums() {
    LAB_STORAGELAB_SUM=$(inputs_sum pyproject.toml apimachinery apiserver storage csi_like \
        kubelet storagelab lab/storagelab)
    LAB_NFS_SUM=$(inputs_sum lab/nfs)
    LAB_POSTGRES_SUM=$(inputs_sum lab/postgres)
    export LAB_STORAGELAB_SUM LAB_NFS_SUM LAB_POSTGRES_SUM
}

image_label() {
    docker image inspect -f '{{index .Config.Labels "io.storagelab.inputs"}}' "$1" 2>/dev/null \
        || true
}

build_wheels() {
    wheels="$REPO/lab/.build/wheels"
    app="$REPO/lab/.build/app"
    mkdir -p "$wheels" "$app"
    [ -x "$PYTHON" ] || die "$PYTHON is missing: run 'make venv' first"
    # Dependencies once (they come from the configured index) into one directory, storagelab
    # from the checkout every time into another: the image installs them in separate layers,
    # so a code change rebuilds only the last one.
    if [ ! -f "$wheels/.deps-$(sha256sum "$REPO/pyproject.toml" | cut -c1-16)" ]; then
        say "collecting the Python dependencies as wheels (once)"
        # Afresh: the image installs every wheel there, so none of an older set may remain.
        rm -rf "$wheels" && mkdir -p "$wheels"
        "$PYTHON" -m pip wheel -q --disable-pip-version-check -w "$wheels" "$REPO[node,nfs]" 2>&1 \
            | grep -v "^WARNING: Location" || true
        touch "$wheels/.deps-$(sha256sum "$REPO/pyproject.toml" | cut -c1-16)"
    fi
    rm -f "$wheels"/storagelab-*.whl "$app"/storagelab-*.whl
    "$PYTHON" -m pip wheel -q --disable-pip-version-check --no-deps -w "$app" "$REPO" 2>&1 \
        | grep -v "^WARNING: Location" || true
    ls "$app"/storagelab-*.whl >/dev/null 2>&1 || die "could not build the storagelab wheel"
}

cmd_images() {
    start=$(date +%s)
    build_base
    build_wheels
    export_input_sums
    COMPOSE_PROFILES=postgres compose build -q
    if ! docker image inspect busybox:latest >/dev/null 2>&1; then
        "$PYTHON" -m storagelab.cli images build
    fi
    say "images built in $(( $(date +%s) - start ))s"
}

# Every image is there and was built from what the checkout holds now.
images_current() {
    base_is_current || return 1
    docker image inspect busybox:latest >/dev/null 2>&1 || return 1
    export_input_sums
    [ "$(image_label storagelab-lab/storagelab:latest)" = "$LAB_STORAGELAB_SUM" ] \
        && [ "$(image_label storagelab-lab/nfs:latest)" = "$LAB_NFS_SUM" ] \
        && [ "$(image_label storagelab-lab/postgres:15)" = "$LAB_POSTGRES_SUM" ]
}

# ------------------------------------------------------------------ up

prepare_host_dirs() {
    for node in $NODES; do mkdir -p "$LAB_ROOT/$node/kubelet" "$LAB_ROOT/$node/local"; done
    # rshared bind mounts need a shared mount at their source; this machine's / may be
    # private, so the lab root becomes its own shared mount point.
    if ! mountpoint -q "$LAB_ROOT"; then
        mount --bind "$LAB_ROOT" "$LAB_ROOT" || die "cannot bind-mount $LAB_ROOT (run as root)"
    fi
    mount --make-rshared "$LAB_ROOT"
    for node in $NODES; do
        # A node container that stopped without 'lab.sh stop' (killed, or stopped by compose
        # itself) leaves its FUSE mounts behind, dead; its next kubelet must mount afresh.
        service_running "$node" || unmount_under "$LAB_ROOT/$node/"
    done
}

write_kubeconfig() {
    tries=0
    # `docker exec` on the container compose made: `compose exec` takes seconds longer.
    until docker exec "$(service_containers controlplane | head -n1)" storagelab kubeconfig \
            --data-dir /var/lib/storagelab --server "https://127.0.0.1:$LAB_API_PORT" \
            >"$KUBECONFIG_OUT.partial" 2>/dev/null; do
        tries=$((tries + 1))
        [ "$tries" -lt 60 ] || die "the control plane did not issue a kubeconfig; see: $(logs_hint)"
        sleep 0.5
    done
    chmod 600 "$KUBECONFIG_OUT.partial"
    mv "$KUBECONFIG_OUT.partial" "$KUBECONFIG_OUT"
}

# Every node is Ready and its kubelet renewed its Lease at or after SINCE (epoch seconds):
# the Node objects of a lab that was stopped still say Ready=True from before, so Ready
# alone would not show that the kubelets are back.
nodes_ready() {
    since=$1
    ready=$(kubectl --kubeconfig "$KUBECONFIG_OUT" get nodes -o \
        jsonpath='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{" "}{end}' \
        2>/dev/null) || return 1
    renewed=$(kubectl --kubeconfig "$KUBECONFIG_OUT" get leases -n kube-node-lease -o \
        jsonpath='{range .items[*]}{.metadata.name}={.spec.renewTime}{" "}{end}' 2>/dev/null) \
        || return 1
    for node in $NODES; do
        case " $ready" in *" $node=True "*) ;; *) return 1 ;; esac
        stamp=$(echo "$renewed" | tr ' ' '\n' | sed -n "s/^$node=//p")
        [ -n "$stamp" ] && [ "$(date -d "$stamp" +%s)" -ge "$since" ] || return 1
    done
}

wait_nodes_ready() {  # SINCE
    tries=0
    until nodes_ready "$1"; do
        tries=$((tries + 1))
        [ "$tries" -lt 240 ] || die "nodes not Ready after 60s; see: $(logs_hint)"
        sleep 0.25
    done
}

logs_hint() { echo "$(compose_command) -p $PROJECT logs"; }

elapsed_since() {  # START_NS: "12.3s"
    ms=$(( ($(date +%s%N) - $1) / 1000000 ))
    echo "$((ms / 1000)).$(( (ms % 1000) / 100 ))s"
}

cmd_up() {
    use_database
    images_current || cmd_images
    start_ns=$(date +%s%N)
    since=$(date +%s)
    prepare_host_dirs
    compose up -d
    write_kubeconfig
    wait_nodes_ready "$since"
    say "Ready in $(elapsed_since "$start_ns") (store: ${DB:-sqlite})"
    cat <<EOF

  The lab is up: an NFS server, the control plane and nodes node-1 and node-2.
  Next:
    export KUBECONFIG=$KUBECONFIG_OUT
    kubectl get nodes,storageclasses
    kubectl apply -f examples/emptydir/        # or: make lab-test (every demo)
  Stop it with 'make lab-stop' (start again: 'make lab-start'), 'make lab-down' (removes the
  containers, keeps data) or 'make lab-down ARGS=--volumes' (DELETES data).
  Walk-through: lab/README.md
EOF
}

# ------------------------------------------------------------------ stop, start

# The lab's pods: the containers its kubelets started.
pod_containers() {
    for node in $NODES; do
        docker ps -aq --filter "label=io.storagelab.kubelet.root=$LAB_ROOT/$node/kubelet"
    done
}

# The kubelet process of a node container: the only child of its init (compose `init: true`).
# Frozen, it cannot restart the pods we stop, while the NFS clients it spawned (processes of
# their own) keep serving those pods until they have shut down cleanly.
freeze_kubelet() {
    for id in $(service_containers "$1"); do
        docker exec "$id" sh -c 'kill -STOP $(cat /proc/1/task/1/children)' 2>/dev/null || true
    done
}

use_existing_profiles() {
    # Start and stop the PostgreSQL store too when this lab was made with it.
    if [ -n "$(service_containers postgres)" ]; then export COMPOSE_PROFILES=postgres; fi
}

cmd_stop() {
    use_existing_profiles
    [ -n "$(service_containers controlplane)" ] || die "no lab here: 'make lab' creates it"
    # As a machine shuts down: the pods first (their NFS mounts still served), then the
    # nodes, then the servers. Every container stays, with its data.
    for node in $NODES; do freeze_kubelet "$node"; done
    ids=$(pod_containers)
    [ -z "$ids" ] || docker stop -t 10 $ids >/dev/null
    compose kill -s KILL $NODES >/dev/null 2>&1 || true  # frozen: a TERM would only wait
    compose stop
    # A FUSE mount outlives its (now stopped) server process as a dead mount point; a
    # rebooted machine would not have it, and a restarted kubelet must mount afresh.
    unmount_under "$LAB_ROOT/"
    say "stopped; containers and data kept. 'make lab-start' starts it again"
}

container_health() {
    docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$1" 2>/dev/null || true
}

wait_controlplane_healthy() {
    id=$(service_containers controlplane)
    tries=0
    until [ "$(container_health "$id")" = healthy ]; do
        tries=$((tries + 1))
        [ "$tries" -lt 240 ] || die "the control plane is not healthy after 60s; see: $(logs_hint)"
        sleep 0.25
    done
}

cmd_start() {
    use_existing_profiles
    [ -n "$(service_containers controlplane)" ] || die "no lab here: 'make lab' creates it"
    start_ns=$(date +%s%N)
    since=$(date +%s)
    prepare_host_dirs
    # In the order compose's depends_on gives to `up`: the servers, a healthy control plane,
    # then the nodes.
    compose start nfs ${COMPOSE_PROFILES:+postgres} controlplane >/dev/null
    wait_controlplane_healthy
    compose start $NODES >/dev/null
    # The API's port was published when the containers were made; the kubeconfig written then
    # still holds (same CA, same port) unless it is gone.
    published=$(docker port "$(service_containers controlplane | head -n1)" 6443/tcp | head -n1)
    LAB_API_PORT=${published##*:}
    grep -q "server: https://127.0.0.1:$LAB_API_PORT\$" "$KUBECONFIG_OUT" 2>/dev/null \
        || write_kubeconfig
    wait_nodes_ready "$since"
    say "started; Ready in $(elapsed_since "$start_ns")"
}

# ------------------------------------------------------------------ down

unmount_under() {  # PREFIX (ending in /)
    # Deepest first; lazily, since a FUSE mount whose kubelet is gone cannot answer.
    mounts=$(awk -v root="$1" '{ if (index($5, root) == 1) print $5 }' \
        /proc/self/mountinfo | sort -r | uniq)
    for m in $mounts; do umount -l "$m" 2>/dev/null || true; done
}

cmd_down() {
    volumes=""
    for arg in "$@"; do
        case "$arg" in
            --volumes|-v) volumes=--volumes ;;
            *) die "unknown option $arg (only --volumes)" ;;
        esac
    done
    export COMPOSE_PROFILES=postgres  # so its container goes too, whichever store ran
    ids=$(pod_containers)
    [ -z "$ids" ] || docker rm -f $ids >/dev/null
    compose down --remove-orphans $volumes
    unmount_under "$LAB_ROOT/"
    if [ -n "$volumes" ]; then
        say "deleting the lab's data: compose volumes and $LAB_ROOT"
        mountpoint -q "$LAB_ROOT" && umount -l "$LAB_ROOT"
        rm -rf "$LAB_ROOT" "$KUBECONFIG_OUT"
    else
        say "stopped; data kept (volumes, $LAB_ROOT). 'make lab-down ARGS=--volumes' deletes it"
    fi
}

# ------------------------------------------------------------------ test

# `test` runs the demos, then the reliability checks in their numbered order (the last one
# takes node-2 down and brings it back); `test demos` or `test reliability` runs one kind.
run_scripts() {  # KIND SCRIPT...
    kind=$1; shift
    for script in "$@"; do
        [ -f "$script" ] || continue
        name=$(basename "$(dirname "$script")")
        [ "$kind" = demo ] || name=$(basename "$script" .sh)
        say "$kind $name"
        if sh "$script"; then
            say "$kind $name: PASS"
        else
            say "$kind $name: FAIL"
            failed="$failed $name"
        fi
    done
}

cmd_test() {
    [ -f "$KUBECONFIG_OUT" ] || die "no $KUBECONFIG_OUT: run 'make lab' first"
    export KUBECONFIG="$KUBECONFIG_OUT"
    what="${1:-all}"
    failed=""
    case "$what" in
        all|demos) run_scripts demo "$REPO"/examples/*/run.sh ;;
        reliability) ;;
        *) die "lab.sh test: '$what' is not one of demos, reliability" ;;
    esac
    case "$what" in
        all|reliability) run_scripts check "$REPO"/examples/reliability/[0-9]*.sh ;;
    esac
    [ -z "$failed" ] || die "failed:$failed"
    say "every check passed ($what)"
}

case "${1:-}" in
    images) cmd_images ;;
    up) cmd_up ;;
    stop) cmd_stop ;;
    start) cmd_start ;;
    down) shift; cmd_down "$@" ;;
    test) shift; cmd_test "$@" ;;
    *) die "usage: lab.sh images|up|stop|start|down [--volumes]|test [demos|reliability]" ;;
esac
