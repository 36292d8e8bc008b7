"""The Kubernetes-compatible API server: REST routes, discovery, watch, admission and the store."""
