"""Storage capacity tracking: the CSIStorageCapacity objects the scheduler places pods by.

This is the capacity half of the CSI external-provisioner (`--enable-capacity`, central
mode). For every StorageClass with `volumeBindingMode: WaitForFirstConsumer` whose
provisioner is one of our drivers that reports capacity per node (GET_CAPACITY and
VOLUME_ACCESSIBILITY_CONSTRAINTS: the `local` driver), and every node that driver serves, it
publishes one CSIStorageCapacity: `storageClassName` the class, `nodeTopology` matchLabels
`kubernetes.io/hostname: <node>`, `capacity` what the driver's `get_capacity` answers for
that node (for `local`, statvfs of the node's base path). Like external-provisioner it labels
them `csi.storage.k8s.io/drivername` and `csi.storage.k8s.io/managed-by: external-provisioner`,
touches only objects with those labels in its namespace, refreshes every object every
`poll_interval` (its `--capacity-poll-interval` default, 1 minute) and sooner after a volume
of the driver was created or deleted on a node (a PV of ours appeared or went away there),
and deletes objects whose class or node is gone. Classes with Immediate binding get none
(its `--capacity-for-immediate-binding` is off by default: the scheduler never reads them).

Namespace: external-provisioner writes into the namespace of its own pod (the NAMESPACE
environment variable of its Deployment). Our provisioner runs inside the controller-manager
and has no pod, so the objects go to `kube-system`, where a cluster's storage drivers usually
run. Names are deterministic (`csisc-` and a hash of driver, class and node; external-
provisioner lets the server generate `csisc-xxxxx`), so a restart or a second process finds
the same object instead of adding one.

At start it makes sure a CSIDriver object exists for each of our drivers, as a driver's
deployment installs one: `storageCapacity: true` for drivers that report capacity, which
makes the scheduler consult these objects; `attachRequired: true` for the nfs driver only,
whose volumes any node can mount, so that the attach/detach controller keeps a ReadWriteOnce
one on one node at a time (local volumes are pinned to their node by node affinity). An
existing CSIDriver is left as the administrator has it, except one that we made (labelled
`app.kubernetes.io/managed-by`) and that differs from ours: attachRequired and
volumeLifecycleModes are immutable, so it is deleted and made again, as an administrator would.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from apimachinery import quantity
from csi_like import contract, errors, local_params
from storage import matching, provisioner
from storage.runtime import controller, informer, shared, workqueue
from storage.runtime import kube as kube_api
from storage.scheduling_api import CSI_DRIVER, CSI_STORAGE_CAPACITY, NODE, SchedulingKube

Obj = dict[str, Any]
log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "kube-system"
DEFAULT_POLL_INTERVAL = 60.0
LABEL_DRIVER_NAME = "csi.storage.k8s.io/drivername"
LABEL_MANAGED_BY = "csi.storage.k8s.io/managed-by"
MANAGED_BY = "external-provisioner"
HOSTNAME = contract.TOPOLOGY_HOSTNAME_KEY
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
STORAGE_API_VERSION = "storage.k8s.io/v1"

NodeFilter = Callable[[str], bool]
# Drivers whose volumes the attach/detach controller attaches (storage/attachdetach.py).
ATTACH_REQUIRED = frozenset({provisioner.NFS})
LABEL_APP_MANAGED_BY = "app.kubernetes.io/managed-by"
CSI_DRIVER_MANAGER = "storagelab-controller-manager"


def outdated_csi_driver(existing: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether `existing` is one we made whose spec differs from `wanted` in a field we set
    (a CSIDriver made by someone else is theirs, whatever it says)."""
    labels = (existing.get("metadata") or {}).get("labels") or {}
    if labels.get(LABEL_APP_MANAGED_BY) != CSI_DRIVER_MANAGER:
        return False
    spec = existing.get("spec") or {}
    return any(spec.get(k) != v for k, v in (wanted.get("spec") or {}).items())


def reports_capacity(driver: contract.Driver) -> bool:
    """Capacity per node: the driver answers GetCapacity and its volumes have topology."""
    wanted = {contract.Capability.GET_CAPACITY,
              contract.Capability.VOLUME_ACCESSIBILITY_CONSTRAINTS}
    return wanted <= driver.get_plugin_capabilities()


def csi_driver_object(provisioner_name: str, driver: contract.Driver) -> Obj:
    """The CSIDriver a deployment of this driver would install."""
    return {"apiVersion": STORAGE_API_VERSION, "kind": "CSIDriver",
            "metadata": {"name": provisioner.csi_driver_name(provisioner_name),
                         "labels": {LABEL_APP_MANAGED_BY: CSI_DRIVER_MANAGER}},
            "spec": {"attachRequired": provisioner_name in ATTACH_REQUIRED,
                     "podInfoOnMount": False,
                     "storageCapacity": reports_capacity(driver),
                     "volumeLifecycleModes": ["Persistent"]}}


def local_nodes(local_paths: Mapping[str, tuple[str, ...]]) -> NodeFilter:
    """The nodes the local driver serves: those with a base path (or all, with "*")."""
    config = local_params.LocalConfig(dict(local_paths))
    return lambda node: bool(config.paths_for(node))


# ----------------------------------------------------------------------------- pure parts

@dataclass(frozen=True, order=True)
class Item:
    """One (class, node) pair: one CSIStorageCapacity object."""

    storage_class: str
    node: str

    @property
    def key(self) -> str:
        return f"{self.storage_class}/{self.node}"

    @classmethod
    def from_key(cls, key: str) -> Item:
        storage_class, _, node = key.partition("/")
        return cls(storage_class, node)


def object_name(driver_name: str, item: Item) -> str:
    digest = hashlib.sha256(f"{driver_name}\n{item.storage_class}\n{item.node}".encode())
    return f"csisc-{digest.hexdigest()[:12]}"


def item_of(capacity: Mapping[str, Any]) -> Item:
    """The pair an object stands for; a topology other than one hostname maps to node ""."""
    topology = capacity.get("nodeTopology") or {}
    match_labels = topology.get("matchLabels") or {}
    node = ""
    if set(match_labels) == {HOSTNAME} and not topology.get("matchExpressions"):
        node = str(match_labels[HOSTNAME])
    return Item(str(capacity.get("storageClassName") or ""), node)


def wanted_class(sc: Mapping[str, Any] | None, provisioners: Iterable[str]) -> bool:
    return sc is not None and sc.get("provisioner") in set(provisioners) and \
        sc.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER


def desired_items(classes: Iterable[Mapping[str, Any]], nodes: Iterable[str],
                  served: Mapping[str, NodeFilter]) -> set[Item]:
    """Every (class, node) that should have an object; `served` maps each capacity-reporting
    provisioner to the nodes it serves."""
    node_names = list(nodes)
    return {Item(matching.name_of(sc), node)
            for sc in classes if wanted_class(sc, served)
            for node in node_names if served[str(sc["provisioner"])](node)}


def capacity_object(item: Item, driver_name: str, namespace: str, available: int) -> Obj:
    return {"apiVersion": STORAGE_API_VERSION, "kind": "CSIStorageCapacity",
            "metadata": {"name": object_name(driver_name, item), "namespace": namespace,
                         "labels": {LABEL_DRIVER_NAME: driver_name,
                                    LABEL_MANAGED_BY: MANAGED_BY}},
            "storageClassName": item.storage_class,
            "nodeTopology": {"matchLabels": {HOSTNAME: item.node}},
            "capacity": quantity.format_quantity(available, True)}


def same_capacity(a: Any, b: Any) -> bool:
    try:
        return quantity.parse_quantity(str(a)) == quantity.parse_quantity(str(b))
    except quantity.QuantityError:
        return False


def volume_nodes(volume: Mapping[str, Any]) -> set[str]:
    """The hostnames a PV's required node affinity names (where a local volume lives)."""
    required = (((volume.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {})
    found: set[str] = set()
    for term in required.get("nodeSelectorTerms") or ():
        for expression in term.get("matchExpressions") or ():
            if expression.get("key") == HOSTNAME and expression.get("operator") == "In":
                found.update(str(v) for v in expression.get("values") or ())
    return found


# ----------------------------------------------------------------------------- controller

class CapacityController:
    """Build it with the shared informers (before they run), then `run()`.

    `drivers` maps provisioner names to drivers, as the provisioner has them; `nodes_served`
    says, per provisioner, which nodes a driver serves (all when not given).
    """

    def __init__(self, kube: kube_api.Kube, informers: shared.Informers,
                 drivers: Mapping[str, contract.Driver], *,
                 namespace: str = DEFAULT_NAMESPACE,
                 poll_interval: float = DEFAULT_POLL_INTERVAL,
                 nodes_served: Mapping[str, NodeFilter] | None = None) -> None:
        self.api = SchedulingKube(kube.client)
        self.namespace = namespace
        self.poll_interval = poll_interval
        self.all_drivers = dict(drivers)
        self.drivers = {name: d for name, d in drivers.items() if reports_capacity(d)}
        self.served = {name: (nodes_served or {}).get(name, lambda node: True)
                       for name in self.drivers}
        self.driver_names = {provisioner.csi_driver_name(name) for name in self.drivers}
        self.classes = informers.for_kind("StorageClass")
        self.volumes = informers.for_kind("PersistentVolume")
        self.nodes = informers.for_kind(NODE)
        self.capacities = informers.for_kind(CSI_STORAGE_CAPACITY)
        self.queue = workqueue.WorkQueue("capacity", workqueue.Backoff(1.0, 60.0))
        self._installed: set[str] = set()  # CSIDrivers known to exist
        self._wire()

    def _wire(self) -> None:
        self.classes.add_handlers(informer.Handlers(
            self._class_changed, self._class_updated, self._class_changed))
        self.nodes.add_handlers(informer.Handlers(
            self._node_changed, None, self._node_changed))
        self.volumes.add_handlers(informer.Handlers(
            self._volume_changed, None, self._volume_changed))
        self.capacities.add_handlers(informer.Handlers(
            self._capacity_changed, lambda old, new: self._capacity_changed(new),
            self._capacity_deleted))

    # -- what to look at ------------------------------------------------------------------

    def _class_changed(self, sc: Obj) -> None:
        for node in self.nodes:
            self.queue.add(Item(matching.name_of(sc), matching.name_of(node)).key)
        for obj in self._managed():
            if item_of(obj).storage_class == matching.name_of(sc):
                self.queue.add(item_of(obj).key)

    def _class_updated(self, old: Obj, new: Obj) -> None:
        # A resync replays every class; refreshing then would poll faster than poll_interval.
        if informer.resource_version(old) != informer.resource_version(new):
            self._class_changed(new)

    def _node_changed(self, node: Obj) -> None:
        self._queue_node(matching.name_of(node))

    def _queue_node(self, node: str) -> None:
        for sc in self.classes:
            self.queue.add(Item(matching.name_of(sc), node).key)
        for obj in self._managed():
            if item_of(obj).node == node:
                self.queue.add(item_of(obj).key)

    def _volume_changed(self, volume: Obj) -> None:
        """A volume of ours was made or removed: the space left on its node changed."""
        made_by = matching.annotations_of(volume).get(matching.ANN_DYNAMICALLY_PROVISIONED, "")
        if made_by in self.drivers:
            for node in volume_nodes(volume):
                self._queue_node(node)

    def _capacity_changed(self, capacity: Obj) -> None:
        """Our own writes come back here: only an object that should not exist is work."""
        if self._is_managed(capacity) and not self._is_wanted_object(capacity):
            self.queue.add(item_of(capacity).key)

    def _capacity_deleted(self, capacity: Obj) -> None:
        if self._is_managed(capacity):
            self.queue.add(item_of(capacity).key)  # published again if still wanted

    def _is_wanted_object(self, capacity: Obj) -> bool:
        item = item_of(capacity)
        name = self._wanted(item)
        return name is not None and \
            matching.name_of(capacity) == object_name(provisioner.csi_driver_name(name), item)

    def _is_managed(self, capacity: Mapping[str, Any]) -> bool:
        meta = capacity.get("metadata") or {}
        labels = meta.get("labels") or {}
        return meta.get("namespace") == self.namespace and \
            labels.get(LABEL_MANAGED_BY) == MANAGED_BY and \
            labels.get(LABEL_DRIVER_NAME) in self.driver_names

    def _managed(self) -> list[Obj]:
        return [c for c in self.capacities if self._is_managed(c)]

    def queue_all(self) -> None:
        """The periodic refresh: every object that should exist and every one that does."""
        nodes = [matching.name_of(n) for n in self.nodes]
        for item in desired_items(self.classes, nodes, self.served):
            self.queue.add(item.key)
        for obj in self._managed():
            self.queue.add(item_of(obj).key)

    # -- running --------------------------------------------------------------------------

    async def run(self, workers: int = 2) -> None:
        """The poll loop (CSIDrivers, then every item) and the workers, until cancelled.
        Expects the shared informers to be running (the controller-manager starts them)."""
        background: list[asyncio.Task[None]] = []
        try:
            await asyncio.gather(self.nodes.wait_synced(), self.capacities.wait_synced())
            background.append(asyncio.create_task(self._poll(), name="capacity-poll"))
            await controller.run_workers(self.queue, self.sync_item, workers)
        finally:
            await controller.cancel_and_wait(background)

    async def _poll(self) -> None:
        while True:
            await self.ensure_csi_drivers()
            self.queue_all()
            await asyncio.sleep(self.poll_interval)

    async def ensure_csi_drivers(self) -> None:
        """Create the CSIDriver of each of our drivers unless one exists already; one that
        could not be made is tried again at the next poll."""
        for name, driver in self.all_drivers.items():
            if name in self._installed:
                continue
            try:
                await self._ensure_csi_driver(csi_driver_object(name, driver))
            except kube_api.KubeError as e:
                # Without it the scheduler only skips the capacity check; keep publishing.
                log.warning("could not create the CSIDriver of %s: %s", name, e)
                continue
            self._installed.add(name)

    async def _ensure_csi_driver(self, wanted: Obj) -> None:
        name = wanted["metadata"]["name"]
        try:
            await self.api.create(CSI_DRIVER, wanted)
            return
        except kube_api.AlreadyExists:
            existing = await self.api.get(CSI_DRIVER, name)
        if outdated_csi_driver(existing, wanted):
            log.info("CSIDriver %s differs from ours; deleting and creating it again", name)
            await self.api.delete(CSI_DRIVER, name)
            await self.api.create(CSI_DRIVER, wanted)

    # -- one (class, node) ----------------------------------------------------------------

    def _wanted(self, item: Item) -> str | None:
        """The provisioner that should report `item`, or None when no object should exist."""
        sc = self.classes.get(item.storage_class)
        if not wanted_class(sc, self.drivers) or self.nodes.get(item.node) is None:
            return None
        name = str((sc or {})["provisioner"])
        return name if self.served[name](item.node) else None

    async def sync_item(self, key: str) -> None:
        item = Item.from_key(key)
        name = self._wanted(item)
        keep = object_name(provisioner.csi_driver_name(name), item) if name else ""
        current: Obj | None = None
        for obj in self._managed():
            if item_of(obj) != item:
                continue
            if matching.name_of(obj) == keep:
                current = obj
            else:  # the class or node is gone, or a duplicate
                await self._delete(obj)
        if name is not None:
            await self._publish(item, name, current)

    async def _delete(self, obj: Obj) -> None:
        try:
            await self.api.delete(CSI_STORAGE_CAPACITY, matching.name_of(obj), self.namespace)
        except kube_api.NotFound:
            pass
        self.capacities.forget(obj)

    async def _publish(self, item: Item, name: str, current: Obj | None) -> None:
        sc = self.classes.get(item.storage_class) or {}
        driver = self.drivers[name]
        try:
            available = await asyncio.to_thread(
                driver.get_capacity, dict(sc.get("parameters") or {}),
                contract.Topology.node(item.node))
        except errors.DriverError as e:
            # The last published value stays; GetCapacity is asked again with backoff.
            raise controller.RetryLater(f"GetCapacity for {item.key}: {e}") from e
        wanted = capacity_object(item, provisioner.csi_driver_name(name), self.namespace,
                                 available)
        if current is None:
            try:
                self.capacities.assume(await self.api.create(CSI_STORAGE_CAPACITY, wanted))
            except kube_api.AlreadyExists as e:
                raise controller.RetryLater(f"{item.key}: not in the cache yet") from e
        elif not same_capacity(current.get("capacity"), wanted["capacity"]):
            updated = {**current, "capacity": wanted["capacity"]}
            self.capacities.assume(await self.api.replace(CSI_STORAGE_CAPACITY, updated))


def build(kube: kube_api.Kube, informers: shared.Informers,
          drivers: Mapping[str, contract.Driver],
          local_paths: Mapping[str, tuple[str, ...]] | None = None,
          **options: Any) -> CapacityController:
    """What the controller-manager calls: the local driver serves the nodes it has paths for."""
    served = {provisioner.LOCAL: local_nodes(local_paths)} if local_paths else {}
    return CapacityController(kube, informers, drivers, nodes_served=served, **options)
