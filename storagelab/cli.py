"""The `storagelab` command line: run the control plane and manage its credentials.

`storagelab up` runs everything on the embedded default (SQLite under `./.storagelab/`);
`storagelab apiserver` runs the API server alone; `storagelab kubeconfig` prints or issues
credentials; `storagelab secrets` inspects and rotates encryption at rest.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from storagelab import commands

DEFAULT_DATA_DIR = Path(".storagelab")


def _server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help="where state, certificates and keys live (default: ./.storagelab)")
    p.add_argument("--database-url", default="",
                   help="SQLAlchemy URL of the store; default: SQLite in the data dir "
                        "(postgresql+psycopg://user@/db for PostgreSQL)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=6443, help="HTTPS port (default 6443)")
    p.add_argument("--hostname", action="append", default=[],
                   help="extra name or IP for the serving certificate (repeatable)")
    p.add_argument("--encryption-provider-config", type=Path, default=None,
                   help="EncryptionConfiguration file (default: generated in the data dir)")
    p.add_argument("--token-auth-file", type=Path, default=None,
                   help="static bearer tokens, Kubernetes CSV format")
    p.add_argument("--insecure-http", action="store_true",
                   help="serve plain HTTP without authentication (tests and debugging only)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="storagelab", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the control plane (and what else is available)")
    _server_args(up)
    api = sub.add_parser("apiserver", help="run the API server alone")
    _server_args(api)
    kc = sub.add_parser("kubeconfig", help="print a kubeconfig (admin, or a new user)")
    kc.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    kc.add_argument("--server", default="", help="API URL (default: the one in the data dir)")
    kc.add_argument("--user", default="", help="issue a certificate for this user name")
    kc.add_argument("--group", action="append", default=[], help="group of --user (repeatable)")
    from storagelab import secrets as secrets_help
    sec = sub.add_parser("secrets", help="encryption at rest: status, rewrite, rotate",
                         description=secrets_help.HELP,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    sec.add_argument("action", choices=["status", "rewrite", "rotate"])
    sec.add_argument("--database-url", default="",
                     help="the store's URL (default: SQLite in the data dir)")
    sec.add_argument("--encryption-provider-config", type=Path, default=None,
                     help="EncryptionConfiguration file (default: the data dir's)")
    sec.add_argument("--kubeconfig", type=Path, default=DEFAULT_DATA_DIR / "kubeconfig")
    sec.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    kl = sub.add_parser("kubelet", help="run a kubelet: register a node, run its pods on Docker")
    kl.add_argument("--node", required=True, help="the Node name this kubelet registers")
    kl.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    kl.add_argument("--kubeconfig", type=Path, default=None,
                    help="node credentials (default: <data-dir>/kubelet-<node>.kubeconfig, "
                         "issued when missing)")
    kl.add_argument("--local-path", action="append", default=[], metavar="PATH",
                    help="base path of the storagelab.io/local driver on this node "
                         "(repeatable; default: <data-dir>/local-volumes)")
    kl.add_argument("--root-dir", type=Path, default=None,
                    help="pod directories and volumes (default: <data-dir>/kubelet/<node>)")
    kl.add_argument("--restart-backoff", type=float, default=10.0,
                    help="first restart back-off in seconds (Kubernetes: 10)")
    kl.add_argument("--nfs-mounter", choices=["auto", "kernel", "userspace"], default="auto",
                    help="NFS client: the kernel's, userspace (libnfs + FUSE), or auto "
                         "(kernel when available); a volume's mountOptions may say "
                         "mounter=kernel|userspace")
    kl.add_argument("--nfs-mount-defaults", default="",
                    help="comma-separated NFS mount options for every NFS mount of this "
                         "node, before the volume's own (as /etc/nfsmount.conf)")
    kl.add_argument("--kubelet-port", type=int, default=10250,
                    help="HTTPS port for kubectl logs/exec via the apiserver (default 10250)")
    kl.add_argument("--node-ip", default="127.0.0.1",
                    help="the node's address: published as InternalIP, where the kubelet "
                         "listens (default 127.0.0.1)")
    kl.add_argument("--tls-cert-file", type=Path, default=None,
                    help="serving certificate (default: issued from the cluster CA in the "
                         "data dir)")
    kl.add_argument("--tls-private-key-file", type=Path, default=None,
                    help="key of --tls-cert-file")
    kl.add_argument("--client-ca-file", type=Path, default=None,
                    help="CA that signs the clients it serves (default: the cluster CA)")
    cm = sub.add_parser("controllers", help="run the storage controllers (controller-manager)")
    cm.add_argument("--kubeconfig", type=Path,
                    default=DEFAULT_DATA_DIR / "controller-manager.kubeconfig")
    cm.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=True,
                    help="act only while holding the Lease (default: on)")
    cm.add_argument("--lease-name", default="storagelab-controller-manager",
                    help="name of the Lease in kube-system")
    cm.add_argument("--resync", type=float, default=15.0, help="resync period in seconds")
    cm.add_argument("--local-path", action="append", default=[], metavar="NODE=PATH",
                    help="base path of the local driver on NODE (repeatable; *=PATH for every "
                         "node; default: *=<data-dir>/local-volumes)")
    cm.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                    help="for the default local path")
    cm.add_argument("--no-provisioner", action="store_true",
                    help="run without dynamic provisioning")
    cm.add_argument("--no-nfs-provisioner", action="store_true",
                    help="do not serve the storagelab.io/nfs provisioner")
    cm.add_argument("--no-scheduler", action="store_true", help="do not schedule pods")
    img = sub.add_parser("images", help="build the lab's images locally (no registry)")
    img.add_argument("action", choices=["build"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return commands.run(args)
    except commands.UserError as e:
        print(f"storagelab: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
