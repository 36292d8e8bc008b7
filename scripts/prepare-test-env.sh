#!/usr/bin/env bash
# Installs and starts what the tests need: PostgreSQL (a test database), kubectl checks,
# and, when root, the Debian packages. Idempotent; writes ./.test-env with the variables the
# tests read (STORAGELAB_TEST_PG). Without root it only reports what is missing, and the
# tests that need it skip (or fail under STORAGELAB_REQUIRE_REAL=1).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "storagelab: $*"; }
: > .test-env

# PostgreSQL: the second store. NFS-Ganesha, rpcbind, libnfs, fuse3: the NFS server and the
# userspace NFS client. docker.io, busybox-static: pods and the offline busybox image.
# openssh-server: the SFTP path of the nfs driver. e2fsprogs: hard capacity (loop + ext4).
# docker-compose, mmdebstrap: the lab (tests/e2e), its base image built offline.
APT_PACKAGES=(postgresql nfs-ganesha nfs-ganesha-vfs rpcbind libnfs13 libnfs-utils fuse3
              docker.io busybox-static openssh-server e2fsprogs docker-compose mmdebstrap)
if [ "$(id -u)" = 0 ]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} (apt)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

command -v kubectl >/dev/null || say "kubectl not found: the kubectl compatibility tests will skip"

# PostgreSQL: start the machine's cluster, make a superuser role for this user, a test db.
if command -v pg_lsclusters >/dev/null; then
  cluster=$(pg_lsclusters -h 2>/dev/null | awk 'NR==1 {print $1" "$2}')
  if [ -n "$cluster" ]; then
    if [ "$(id -u)" = 0 ]; then
      # shellcheck disable=SC2086
      pg_ctlcluster $cluster start 2>/dev/null || true
      me=$(id -un)
      su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='$me'\"" | grep -q 1 \
        || su postgres -c "createuser -s $me"
    fi
    if psql -d postgres -qtAc 'SELECT 1' >/dev/null 2>&1; then
      echo "export STORAGELAB_TEST_PG='postgresql+psycopg:///postgres?host=/var/run/postgresql'" >> .test-env
      say "PostgreSQL ready for tests"
    else
      say "PostgreSQL not reachable: PostgreSQL tests will skip"
    fi
  fi
fi

# Docker engine: start it when installed and not running (pods run as containers).
scripts/start-docker.sh
