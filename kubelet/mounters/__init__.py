"""Mounters: how the kubelet attaches volume sources to directories that containers bind.

`nfs` holds the NFS mounter interface and its two implementations (the kernel client through
mount(8), and a userspace client), `nfs_fuse` the userspace client's FUSE process, and `libnfs`
its ctypes binding to the libnfs library.
"""
