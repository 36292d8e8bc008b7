"""The volume manager: make each pod's volumes exist on the node, and nothing else.

Desired state is the volumes of the pods this kubelet runs; actual state is what is on
disk and in /proc/self/mountinfo under `<root>/pods/<uid>/volumes/kubernetes.io~<plugin>/`,
laid out as Kubernetes lays it out. `setup_pod` converges one pod (every step idempotent,
so it runs on each sync and is how configMap and secret updates reach mounted files);
`teardown_pod` and `cleanup_orphans` remove what no pod wants, unmounting before removing,
and refusing to remove a tree that is still mounted so that a PV's data is never deleted.
A ReadWriteOncePod volume already mounted for another pod of this node is refused, as the
kubelet's operation executor refuses it (the scheduler keeps such pods apart across nodes).
On a node whose attach/detach is controller-managed, a CSI volume whose CSIDriver requires
attach is mounted only once the attach/detach controller lists it in this Node's
status.volumesAttached (the kubelet's WaitForAttach); until then the pod waits quietly in
ContainerCreating and is looked at again at the next sync (each second, and on Node events).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from apimachinery import quantity
from kubelet import atomic_writer, hostpath, mount, nfs_volumes

Object = dict[str, Any]

EMPTY_DIR = "kubernetes.io~empty-dir"
CONFIGMAP = "kubernetes.io~configmap"
SECRET = "kubernetes.io~secret"
LOCAL_VOLUME = "kubernetes.io~local-volume"
HOST_PATH = "kubernetes.io~host-path"
DEFAULT_MODE = 0o644


class ObjectSource(Protocol):
    """Where the volume manager reads the API objects a pod's volumes refer to."""

    def get(self, kind: str, namespace: str, name: str) -> Object | None:
        """The object (`kind` is the plural resource: configmaps, secrets,
        persistentvolumeclaims, persistentvolumes, nodes, csidrivers), or None when it does
        not exist."""
        ...


class VolumeSetupError(Exception):
    """A volume could not be set up; `volume` names it, the message says why."""

    def __init__(self, volume: str, message: str) -> None:
        super().__init__(message)
        self.volume = volume


class VolumeInUse(VolumeSetupError):
    """A ReadWriteOncePod volume is mounted for another pod of this node; `volume` is the
    PersistentVolume's name, as Kubernetes' MountVolume.SetUp error names it."""


RWOP_IN_USE = "volume uses the ReadWriteOncePod access mode and is already in use by another pod"


@dataclass(frozen=True)
class ReadyVolume:
    """A set-up volume: the host path to give the container runtime, and its access."""

    name: str
    host_path: Path
    read_only: bool = False


# A mount still in progress in the background (NFS): the pod waits without an event.
VolumePending = nfs_volumes.MountPending


LOCAL_CSI_DRIVER = "local.storagelab.io"
CSI_PLUGIN = "kubernetes.io~csi"
ANN_CONTROLLER_MANAGED = "volumes.kubernetes.io/controller-managed-attach-detach"


def local_driver(cfg: Any) -> Any:
    """The storagelab.io/local driver for this node, or None without --local-path."""
    if not cfg.local_paths:
        return None
    from csi_like import registry
    return registry.create("storagelab.io/local", {"nodePaths": {cfg.node_name: list(
        cfg.local_paths)}, "nodeName": cfg.node_name})


class VolumeManager:
    """Sets up and tears down pod volumes under one kubelet root directory."""

    def __init__(self, root: Path, objects: ObjectSource,
                 nfs: nfs_volumes.NfsVolumes | None = None,
                 local_driver: Any = None) -> None:
        self.root = root
        self.objects = objects
        self.nfs = nfs if nfs is not None else nfs_volumes.NfsVolumes(root)
        self.local_driver = local_driver  # csi_like local driver, node side
        self._fetch = ThreadPoolExecutor(max_workers=4, thread_name_prefix="volume-objects")

    def pod_dir(self, uid: str) -> Path:
        return self.root / "pods" / uid

    def volumes_dir(self, uid: str, plugin: str, name: str) -> Path:
        return self.pod_dir(uid) / "volumes" / plugin / name

    def setup_pod(self, pod: Object) -> dict[str, ReadyVolume]:
        """Every volume of `pod`, set up; raises VolumeSetupError at the first that fails."""
        uid = pod["metadata"]["uid"]
        self.prefetch(pod)
        self.pod_dir(uid).mkdir(parents=True, exist_ok=True)
        ready = {}
        for volume in pod["spec"].get("volumes") or []:
            try:
                ready[volume["name"]] = self._setup(pod, volume)
            except VolumeInUse:
                raise
            except VolumeSetupError as e:
                raise VolumeSetupError(volume["name"], str(e)) from e
            except (OSError, mount.MountError, hostpath.HostPathTypeError,
                    atomic_writer.InvalidPayloadPath, quantity.QuantityError,
                    nfs_volumes.NfsVolumeError) as e:
                raise VolumeSetupError(volume["name"], str(e)) from e
        return ready

    def prefetch(self, pod: Object) -> None:
        """Read the objects the pod's volumes refer to side by side (the claims' volumes
        next), so a new pod waits for one API round trip or two, not one per volume."""
        wanted = referenced_objects(pod)
        found = list(self._fetch.map(lambda key: self.objects.get(*key), wanted))
        volume_names = {str(obj["spec"]["volumeName"]) for obj, key in zip(found, wanted)
                        if key[0] == "persistentvolumeclaims" and obj
                        and (obj.get("spec") or {}).get("volumeName")}
        list(self._fetch.map(lambda name: self.objects.get("persistentvolumes", "", name),
                             sorted(volume_names)))

    def _setup(self, pod: Object, volume: Object) -> ReadyVolume:
        name, uid = volume["name"], pod["metadata"]["uid"]
        namespace = pod["metadata"]["namespace"]
        if "emptyDir" in volume:
            return self._empty_dir(uid, name, volume["emptyDir"] or {})
        if "configMap" in volume:
            return self._projected(uid, name, CONFIGMAP, configmap_payload(
                self.objects, namespace, volume["configMap"]))
        if "secret" in volume:
            return self._projected(uid, name, SECRET, secret_payload(
                self.objects, namespace, volume["secret"]))
        if "hostPath" in volume:
            source = volume["hostPath"]
            hostpath.check(Path(source["path"]), source.get("type") or "")
            return ReadyVolume(name, Path(source["path"]))
        if "persistentVolumeClaim" in volume:
            return self._claim(pod, namespace, name, volume["persistentVolumeClaim"])
        if "nfs" in volume:  # --- NFS (kubelet/nfs_volumes.py)
            target = self.volumes_dir(uid, nfs_volumes.NFS_PLUGIN, name)
            source = self.nfs.inline(volume)
            return ReadyVolume(name, self.nfs.setup(pod, target, source), source.read_only)
        raise VolumeSetupError(name, f"volume {name!r}: this kubelet has no plugin for it")

    def _empty_dir(self, uid: str, name: str, source: Object) -> ReadyVolume:
        path = self.volumes_dir(uid, EMPTY_DIR, name)
        if source.get("medium") == "Memory":
            limit = source.get("sizeLimit")
            size = int(quantity.parse_quantity(limit)) if limit else None
            mount.mount_tmpfs(path, size_bytes=size, mode=0o777)
        else:
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o777)  # emptyDir is world-writable, as in Kubernetes
        return ReadyVolume(name, path)

    def _projected(self, uid: str, name: str, plugin: str,
                   payload: Mapping[str, atomic_writer.FileProjection]) -> ReadyVolume:
        path = self.volumes_dir(uid, plugin, name)
        if plugin == SECRET:
            mount.mount_tmpfs(path)  # secrets live in memory, never on the node's disk
        atomic_writer.write(path, payload)
        return ReadyVolume(name, path, read_only=True)

    def _claim(self, pod: Object, namespace: str, name: str, source: Object) -> ReadyVolume:
        uid, claim_name = pod["metadata"]["uid"], source["claimName"]
        pv = bound_volume(self.objects, namespace, claim_name)
        spec = pv["spec"]
        if spec.get("accessModes") == ["ReadWriteOncePod"] and self.mounted_elsewhere(
                pv["metadata"]["name"], uid):
            raise VolumeInUse(pv["metadata"]["name"], RWOP_IN_USE)
        self.wait_attached(pod, pv)
        if nfs_volumes.is_nfs_pv(pv):  # --- NFS (kubelet/nfs_volumes.py)
            return self._nfs_claim(pod, name, pv, bool(source.get("readOnly")))
        if (spec.get("csi") or {}).get("driver") == LOCAL_CSI_DRIVER:
            return self._local_csi_claim(pod, name, pv, bool(source.get("readOnly")))
        if "hostPath" in spec:
            origin = Path(spec["hostPath"]["path"])
            hostpath.check(origin, spec["hostPath"].get("type") or "")
            plugin = HOST_PATH
        elif "local" in spec:
            origin, plugin = Path(spec["local"]["path"]), LOCAL_VOLUME
            if not origin.exists():
                raise VolumeSetupError(name, f"path {origin!r} does not exist")
        else:
            raise VolumeSetupError(name, f"persistentvolume {pv['metadata']['name']!r}: only "
                                         f"hostPath and local volumes are supported here")
        read_only = bool(source.get("readOnly"))
        target = self.volumes_dir(uid, plugin, pv["metadata"]["name"])
        mount.bind_mount(origin, target, read_only=read_only)
        return ReadyVolume(name, target, read_only=read_only)

    def wait_attached(self, pod: Object, pv: Object) -> None:
        """Raise VolumePending until the controller has attached `pv` to the pod's node,
        when it is the controller's to attach (see `attach_awaited`). A volume already
        mounted for the pod is not waited for again (WaitForAttach runs before the mount)."""
        csi, node_name = pv["spec"].get("csi") or {}, str(pod["spec"].get("nodeName") or "")
        if not csi or not self.attach_awaited(node_name, str(csi.get("driver") or "")):
            return
        unique = f"kubernetes.io/csi/{csi['driver']}^{csi.get('volumeHandle')}"
        node = self.objects.get("nodes", "", node_name) or {}
        attached = {str(e.get("name")) for e in
                    (node.get("status") or {}).get("volumesAttached") or ()}
        pv_name = pv["metadata"]["name"]
        target = self.volumes_dir(pod["metadata"]["uid"], CSI_PLUGIN, pv_name) / "mount"
        if unique not in attached and not mount.is_mount_point(target):
            raise VolumePending(f"volume {pv_name} is not attached to node {node_name} yet")

    def attach_awaited(self, node_name: str, driver: str) -> bool:
        """Whether this node's volumes of `driver` are attached by the controller: the Node
        says attach/detach is controller-managed and the driver's CSIDriver requires attach
        (attachRequired defaults to true; no CSIDriver object means no attach here)."""
        node = self.objects.get("nodes", "", node_name) if node_name else None
        annotations = ((node or {}).get("metadata") or {}).get("annotations") or {}
        if annotations.get(ANN_CONTROLLER_MANAGED) != "true":
            return False
        csi_driver = self.objects.get("csidrivers", "", driver)
        return csi_driver is not None and \
            (csi_driver.get("spec") or {}).get("attachRequired") is not False

    def _local_csi_claim(self, pod: Object, name: str, pv: Object,
                         read_only: bool) -> ReadyVolume:
        """A volume of the storagelab.io/local driver, published by the driver's node side
        at Kubernetes' CSI path `.../kubernetes.io~csi/<pv>/mount`."""
        from csi_like import errors as driver_errors
        if self.local_driver is None:
            raise VolumeSetupError(name, "this kubelet has no --local-path for the "
                                         "storagelab.io/local driver")
        csi = pv["spec"]["csi"]
        target = self.volumes_dir(pod["metadata"]["uid"], CSI_PLUGIN,
                                  pv["metadata"]["name"]) / "mount"
        target.mkdir(parents=True, exist_ok=True)
        try:
            self.local_driver.publish_volume(csi["volumeHandle"], str(target), read_only,
                                             csi.get("volumeAttributes") or {})
        except driver_errors.DriverError as e:
            raise VolumeSetupError(name, f"publishing {pv['metadata']['name']}: {e}") from e
        return ReadyVolume(name, target, read_only=read_only)

    def _nfs_claim(self, pod: Object, name: str, pv: Object, read_only: bool) -> ReadyVolume:
        uid, pv_name = pod["metadata"]["uid"], pv["metadata"]["name"]
        source = self.nfs.persistent(pv, read_only)
        if "csi" in pv["spec"]:  # Kubernetes' CSI layout: .../kubernetes.io~csi/<pv>/mount
            target = self.volumes_dir(uid, nfs_volumes.CSI_PLUGIN, pv_name) / "mount"
        else:
            target = self.volumes_dir(uid, nfs_volumes.NFS_PLUGIN, pv_name)
        return ReadyVolume(name, self.nfs.setup(pod, target, source), source.read_only)

    def mounted_elsewhere(self, pv_name: str, uid: str) -> bool:
        """Whether the PV is mounted for a pod other than `uid` on this node: the actual
        state, read from the mount table (`<root>/pods/<uid>/volumes/<plugin>/<pv>[/mount]`)."""
        pods = Path(os.path.abspath(self.root / "pods"))
        for m in mount.mounts_under(pods):
            parts = m.target.relative_to(pods).parts
            if (len(parts) in (4, 5) and parts[0] != uid and parts[1] == "volumes"
                    and parts[3] == pv_name and parts[4:] in ((), ("mount",))):
                return True
        return False

    def teardown_pod(self, uid: str) -> None:
        """Unmount everything of the pod and remove its directory."""
        directory = self.pod_dir(uid)
        self.nfs.release_pod(directory)  # lazily: an NFS server may be dead
        mount.unmount_all_under(directory)
        mount.remove_tree(directory)

    def pods_on_disk(self) -> set[str]:
        pods = self.root / "pods"
        return {p.name for p in pods.iterdir()} if pods.is_dir() else set()

    def cleanup_orphans(self, wanted: set[str]) -> list[str]:
        """Tear down the pod directories of pods not in `wanted`; returns their uids."""
        orphans = sorted(self.pods_on_disk() - wanted)
        for uid in orphans:
            self.teardown_pod(uid)
        return orphans


def referenced_objects(pod: Object) -> list[tuple[str, str, str]]:
    """(kind, namespace, name) of the configMaps, secrets and claims the pod's volumes use."""
    namespace = pod["metadata"]["namespace"]
    out = []
    for volume in pod["spec"].get("volumes") or []:
        if "configMap" in volume:
            out.append(("configmaps", namespace, str(volume["configMap"].get("name", ""))))
        elif "secret" in volume:
            out.append(("secrets", namespace, str(volume["secret"].get("secretName", ""))))
        elif "persistentVolumeClaim" in volume:
            out.append(("persistentvolumeclaims", namespace,
                        str(volume["persistentVolumeClaim"]["claimName"])))
    return out


def bound_volume(objects: ObjectSource, namespace: str, claim_name: str) -> Object:
    """The PV a claim is bound to; the claim must exist and be Bound."""
    claim = objects.get("persistentvolumeclaims", namespace, claim_name)
    if claim is None:
        raise VolumeSetupError(claim_name,
                               f'persistentvolumeclaim "{claim_name}" not found')
    phase = (claim.get("status") or {}).get("phase", "")
    volume_name = (claim.get("spec") or {}).get("volumeName", "")
    if phase != "Bound" or not volume_name:
        raise VolumeSetupError(claim_name, f"PVC {namespace}/{claim_name} has non-bound phase "
                                           f'("{phase}") or empty pvc.Spec.VolumeName '
                                           f'("{volume_name}")')
    pv = objects.get("persistentvolumes", "", volume_name)
    if pv is None:
        raise VolumeSetupError(claim_name, f'persistentvolume "{volume_name}" not found')
    return pv


# Kubernetes' own words for a missing item key, per plugin.
_MISSING_KEY = {"configmap": "configmap references non-existent config key: ",
                "secret": "references non-existent secret key: "}


def _items_payload(kind: str, data: Mapping[str, bytes], source: Object
                   ) -> dict[str, atomic_writer.FileProjection]:
    default_mode = source.get("defaultMode", DEFAULT_MODE)
    items = source.get("items")
    if not items:
        return {k: atomic_writer.FileProjection(v, default_mode) for k, v in data.items()}
    payload = {}
    for item in items:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            raise VolumeSetupError("", _MISSING_KEY[kind] + item["key"])
        mode = item.get("mode", default_mode)
        payload[item["path"]] = atomic_writer.FileProjection(data[item["key"]], mode)
    return payload


def configmap_payload(objects: ObjectSource, namespace: str, source: Object
                      ) -> dict[str, atomic_writer.FileProjection]:
    """The files a configMap volume shows (empty for an optional, missing configMap)."""
    name = source.get("name", "")
    cm = objects.get("configmaps", namespace, name)
    if cm is None:
        if source.get("optional"):
            return {}
        raise VolumeSetupError(name, f'configmap "{name}" not found')
    data = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
    data |= {k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()}
    return _items_payload("configmap", data, source)


def secret_payload(objects: ObjectSource, namespace: str, source: Object
                   ) -> dict[str, atomic_writer.FileProjection]:
    """The files a secret volume shows (empty for an optional, missing secret)."""
    name = source.get("secretName", "")
    secret = objects.get("secrets", namespace, name)
    if secret is None:
        if source.get("optional"):
            return {}
        raise VolumeSetupError(name, f'secret "{name}" not found')
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    return _items_payload("secret", data, source)
