"""The node agent: registers a Node, runs pods on Docker, mounts their volumes."""
