"""The CSI-like driver contract and the drivers that implement it (local directories, NFS)."""
