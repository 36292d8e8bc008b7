#!/bin/sh
# Build the lab's base image without a registry: a Debian bookworm root file system made by
# mmdebstrap from this machine's own apt sources, imported with `docker import` under the tag
# the lab's Dockerfiles start FROM. With a registry, `lab/base/Dockerfile` builds the same tag
# from debian:bookworm-slim instead (see lab.mk, LAB_BASE=registry).
set -eu
TAG="${1:-storagelab-lab/base:bookworm}"
LABEL="${2:-io.storagelab.packages=unknown}"
HERE="$(cd "$(dirname "$0")" && pwd)"
PACKAGES="$(grep -v '^#' "$HERE/packages.txt" | tr '\n' ' ' | tr -s ' ' | sed 's/ $//' | tr ' ' ',')"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
echo "lab: building $TAG offline with mmdebstrap (packages: $PACKAGES)"
# --variant=apt: only apt and what the packages need; a plain tarball is enough
# for `docker import`. Documentation and locales are dropped to keep the image small.
mmdebstrap --quiet --variant=apt --include="$PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='chroot "$1" apt-get clean' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/*' \
    bookworm "$WORK/rootfs.tar"
docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' --change "LABEL $LABEL" "$WORK/rootfs.tar" "$TAG"
echo "lab: built $TAG"
