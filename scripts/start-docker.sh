#!/usr/bin/env bash
# Makes a Docker engine available for the kubelet: as root, installs docker.io and
# busybox-static when missing and starts dockerd when it is not running. Without root it
# only says what is missing (storagelab then runs without a kubelet).
set -uo pipefail
say() { echo "storagelab: $*"; }
if docker info >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  say "no Docker engine reachable and not root: the cluster will run without a kubelet"
  exit 0
fi
if ! command -v dockerd >/dev/null; then
  say "installing docker.io and busybox-static (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io busybox-static >/dev/null
fi
say "starting dockerd (log: /var/log/dockerd.log)"
(dockerd >/var/log/dockerd.log 2>&1 &)
for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && exit 0; sleep 0.5; done
say "dockerd did not start: see /var/log/dockerd.log"
