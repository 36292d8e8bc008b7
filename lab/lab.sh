#!/bin/sh
# The lab's life cycle, called by lab.mk: `images`, `up`, `down [--volumes]`, `test`.
#
# It works with `docker compose` (v2) or Debian's `docker-compose` (1.29), whichever is
# installed, under the compose project name `storagelab-lab`. The kubelets' root dirs live
# under /var/lib/storagelab-lab on the host; `up` makes that directory a shared mount (the
# kubelets mount it with rshared propagation so pods see their mounts), `down` removes the
# lab's pods, containers and mounts, and with --volumes its data too.
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

compose() {
    if docker compose version >/dev/null 2>&1; then
        docker compose -p "$PROJECT" -f "$REPO/docker-compose.yml" "$@"
    elif command -v docker-compose >/dev/null 2>&1; then
        docker-compose -p "$PROJECT" -f "$REPO/docker-compose.yml" "$@"
    else
        die "neither 'docker compose' nor 'docker-compose' is installed (apt-get install docker-compose)"
    fi
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

build_wheels() {
    wheels="$REPO/lab/.build/wheels"
    mkdir -p "$wheels"
    [ -x "$PYTHON" ] || die "$PYTHON is missing: run 'make venv' first"
    # Dependencies once (they come from the configured index), storagelab from the checkout
    # every time.
    if [ ! -f "$wheels/.deps-$(sha256sum "$REPO/pyproject.toml" | cut -c1-16)" ]; then
        say "collecting the Python dependencies as wheels (once)"
        "$PYTHON" -m pip wheel -q --disable-pip-version-check -w "$wheels" "$REPO[node,nfs]" 2>&1 \
            | grep -v "^WARNING: Location" || true
        touch "$wheels/.deps-$(sha256sum "$REPO/pyproject.toml" | cut -c1-16)"
    fi
    rm -f "$wheels"/storagelab-*.whl
    "$PYTHON" -m pip wheel -q --disable-pip-version-check --no-deps -w "$wheels" "$REPO" 2>&1 \
        | grep -v "^WARNING: Location" || true
    ls "$wheels"/storagelab-*.whl >/dev/null 2>&1 || die "could not build the storagelab wheel"
}

cmd_images() {
    start=$(date +%s)
    build_base
    build_wheels
    COMPOSE_PROFILES=postgres compose build -q
    if ! docker image inspect busybox:latest >/dev/null 2>&1; then
        "$PYTHON" -m storagelab.cli images build
    fi
    say "images built in $(( $(date +%s) - start ))s"
}

images_present() {
    for image in "$BASE_TAG" storagelab-lab/storagelab:latest storagelab-lab/nfs:latest \
                 storagelab-lab/postgres:15 busybox:latest; do
        docker image inspect "$image" >/dev/null 2>&1 || return 1
    done
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
}

write_kubeconfig() {
    tries=0
    until compose exec -T controlplane storagelab kubeconfig --data-dir /var/lib/storagelab \
            --server "https://127.0.0.1:$LAB_API_PORT" >"$KUBECONFIG_OUT.partial" 2>/dev/null; do
        tries=$((tries + 1))
        [ "$tries" -lt 60 ] || die "the control plane did not issue a kubeconfig; see: $(logs_hint)"
        sleep 0.5
    done
    chmod 600 "$KUBECONFIG_OUT.partial"
    mv "$KUBECONFIG_OUT.partial" "$KUBECONFIG_OUT"
}

nodes_ready() {
    ready=$(kubectl --kubeconfig "$KUBECONFIG_OUT" get nodes -o \
        jsonpath='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{" "}{end}' \
        2>/dev/null) || return 1
    for node in $NODES; do
        case " $ready" in *" $node=True "*) ;; *) return 1 ;; esac
    done
}

logs_hint() { echo "docker-compose -p $PROJECT logs"; }

cmd_up() {
    use_database
    images_present || cmd_images
    start_ns=$(date +%s%N)
    prepare_host_dirs
    compose up -d
    write_kubeconfig
    tries=0
    until nodes_ready; do
        tries=$((tries + 1))
        [ "$tries" -lt 240 ] || die "nodes not Ready after 60s; see: $(logs_hint)"
        sleep 0.25
    done
    elapsed=$(( ($(date +%s%N) - start_ns) / 1000000 ))
    say "Ready in $((elapsed / 1000)).$(( (elapsed % 1000) / 100 ))s (store: ${DB:-sqlite})"
    cat <<EOF

  The lab is up: an NFS server, the control plane and nodes node-1 and node-2.
  Next:
    export KUBECONFIG=$KUBECONFIG_OUT
    kubectl get nodes,storageclasses
    kubectl apply -f examples/emptydir/        # or: make lab-test (every demo)
  Stop it with 'make lab-down' (keeps data) or 'make lab-down ARGS=--volumes' (DELETES data).
  Walk-through: lab/README.md
EOF
}

# ------------------------------------------------------------------ down

remove_pods() {
    for node in $NODES; do
        ids=$(docker ps -aq --filter "label=io.storagelab.kubelet.root=$LAB_ROOT/$node/kubelet")
        [ -z "$ids" ] || docker rm -f $ids >/dev/null
    done
}

unmount_lab() {
    # Deepest first; lazily, since a FUSE mount whose kubelet is gone cannot answer.
    mounts=$(awk -v root="$LAB_ROOT/" '{ if (index($5, root) == 1) print $5 }' \
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
    remove_pods
    compose down --remove-orphans $volumes
    unmount_lab
    if [ -n "$volumes" ]; then
        say "deleting the lab's data: compose volumes and $LAB_ROOT"
        mountpoint -q "$LAB_ROOT" && umount -l "$LAB_ROOT"
        rm -rf "$LAB_ROOT" "$KUBECONFIG_OUT"
    else
        say "stopped; data kept (volumes, $LAB_ROOT). 'make lab-down ARGS=--volumes' deletes it"
    fi
}

# ------------------------------------------------------------------ test

cmd_test() {
    [ -f "$KUBECONFIG_OUT" ] || die "no $KUBECONFIG_OUT: run 'make lab' first"
    export KUBECONFIG="$KUBECONFIG_OUT"
    failed=""
    for script in "$REPO"/examples/*/run.sh; do
        name=$(basename "$(dirname "$script")")
        say "demo $name"
        if sh "$script"; then say "demo $name: PASS"; else say "demo $name: FAIL"; failed="$failed $name"; fi
    done
    [ -z "$failed" ] || die "failed demos:$failed"
    say "every demo passed"
}

case "${1:-}" in
    images) cmd_images ;;
    up) cmd_up ;;
    down) shift; cmd_down "$@" ;;
    test) cmd_test ;;
    *) die "usage: lab.sh images|up|down [--volumes]|test" ;;
esac
