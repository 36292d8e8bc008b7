#!/bin/sh
# rpcbind first (NFSv3 clients ask it for the MOUNT and NFS ports), then Ganesha in the
# foreground; a TERM from `docker stop` ends Ganesha and with it the container.
set -eu
mkdir -p /srv/export /run/rpcbind /var/run/ganesha
rpcbind -w
exec ganesha.nfsd -F -f /etc/ganesha/lab.conf -L /dev/stdout -p /var/run/ganesha/ganesha.pid -N NIV_EVENT
