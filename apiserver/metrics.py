"""Prometheus metrics of the apiserver, named as kube-apiserver names them.

`apiserver_request_total` and `apiserver_request_duration_seconds` by verb, resource and
code; `apiserver_registered_watchers`; `apiserver_storage_objects` and the store's size.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """One registry per app, so tests can run several servers in one process."""

    def __init__(self, store_size: Callable[[], int], revision: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("apiserver_request_total", "Requests by verb, resource, code.",
                                ["verb", "resource", "subresource", "code"],
                                registry=self.registry)
        self.latency = Histogram("apiserver_request_duration_seconds",
                                 "Response latency by verb and resource.",
                                 ["verb", "resource", "subresource"], registry=self.registry,
                                 buckets=(.005, .01, .025, .05, .1, .2, .4, .6, .8, 1, 2, 5,
                                          10, 30, 60))
        self.watchers = Gauge("apiserver_registered_watchers", "Open watch streams.",
                              registry=self.registry)
        rows = Gauge("storagelab_store_rows", "Rows in the revision log.",
                     registry=self.registry)
        rows.set_function(store_size)
        current = Gauge("etcd_current_revision", "The store's current revision.",
                        registry=self.registry)
        current.set_function(revision)

    def render(self) -> bytes:
        return generate_latest(self.registry)
