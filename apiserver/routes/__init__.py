"""HTTP routes, one module per resource family, gathered by `apiserver.app`."""
