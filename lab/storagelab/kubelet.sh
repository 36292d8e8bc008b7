#!/bin/sh
# A lab node: wait for the credentials the control plane issues for it, then run the kubelet.
# Its root dir is the same absolute path inside this container and on the host, mounted with
# rshared propagation, so the bind and FUSE mounts it makes there are visible to the pod
# containers it starts on the host's Docker engine (which resolve bind sources on the host).
set -eu
NODE="${LAB_NODE:?LAB_NODE names this node}"
ROOT="${LAB_ROOT:-/var/lib/storagelab-lab}/$NODE"
DATA=/var/lib/storagelab
KUBECONFIG_FILE="$DATA/lab/kubelet-$NODE.kubeconfig"
i=0
until [ -s "$KUBECONFIG_FILE" ]; do
    i=$((i + 1))
    if [ "$i" -gt 300 ]; then echo "lab: no $KUBECONFIG_FILE after 60s" >&2; exit 1; fi
    sleep 0.2
done
mkdir -p "$ROOT/kubelet" "$ROOT/local"
exec storagelab kubelet --node "$NODE" --data-dir "$DATA" --kubeconfig "$KUBECONFIG_FILE" \
    --root-dir "$ROOT/kubelet" --local-path "$ROOT/local" \
    --node-ip "$(hostname -i | cut -d' ' -f1)" \
    --nfs-mounter "${LAB_NFS_MOUNTER:-auto}" --restart-backoff "${LAB_RESTART_BACKOFF:-10}"
