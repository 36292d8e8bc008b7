"""The storagelab command line and the supervision of the embedded control plane."""
