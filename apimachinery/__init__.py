"""What every component shares: quantities, names, label selectors, patches and API errors.

Nothing here knows about HTTP servers, SQL or Docker; it is pure logic over Kubernetes
JSON objects (plain dicts), so the apiserver, the controllers and the kubelet agree on it.
"""
