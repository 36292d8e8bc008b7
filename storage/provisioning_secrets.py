"""Provisioner secrets, resolved the way the CSI external-provisioner resolves them.

A StorageClass names the Secret a driver needs to create and delete volumes (the SSH
credentials of a remote NFS export) with `csi.storage.k8s.io/provisioner-secret-name` and
`-namespace` (or the shared `csi.storage.k8s.io/secret-name` / `-namespace`). Both are
templates: the namespace may use `${pv.name}` and `${pvc.namespace}`, the name also
`${pvc.name}` and `${pvc.annotations['KEY']}`. The Secret is read at provisioning time and its
data handed to the driver as `CreateVolumeRequest.secrets`; the PV records where it came from
in `volume.kubernetes.io/provisioner-deletion-secret-name` / `-namespace`, so deletion finds
it again even after the class changed or was deleted. Errors say what external-provisioner
says, so a user searching the message finds the same answers.

Expansion has its own Secret (`csi.storage.k8s.io/controller-expand-secret-name` and
`-namespace`, same templates, same fallback to the shared pair). external-provisioner resolves
it when it provisions and records it on the PV as `spec.csi.controllerExpandSecretRef`, which
external-resizer reads; `for_expansion` does that, and for a PV without the field (made before
the provisioner recorded it) resolves the class's parameters with the claim instead.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import httpx2
from lightkube.core.exceptions import ApiError
from lightkube.resources import core_v1

from apimachinery import names
from csi_like import contract
from storage import matching
from storage.runtime import kube as kube_api

Obj = dict[str, Any]
log = logging.getLogger(__name__)

PREFIX = contract.RESERVED_PARAMETER_PREFIX
PROVISIONER_NAME = PREFIX + "provisioner-secret-name"
PROVISIONER_NAMESPACE = PREFIX + "provisioner-secret-namespace"
DEFAULT_NAME = PREFIX + "secret-name"
DEFAULT_NAMESPACE = PREFIX + "secret-namespace"
CONTROLLER_EXPAND_NAME = PREFIX + "controller-expand-secret-name"
CONTROLLER_EXPAND_NAMESPACE = PREFIX + "controller-expand-secret-namespace"
ANN_DELETION_NAME = "volume.kubernetes.io/provisioner-deletion-secret-name"
ANN_DELETION_NAMESPACE = "volume.kubernetes.io/provisioner-deletion-secret-namespace"
_TOKEN = re.compile(r"\$\{([^}]*)\}|\$([A-Za-z0-9_]+)")


class SecretError(Exception):
    """The class's secret parameters are wrong, or the Secret cannot be read."""


@dataclasses.dataclass(frozen=True)
class SecretRef:
    name: str
    namespace: str


@dataclasses.dataclass(frozen=True)
class SecretParams:
    """One of external-provisioner's secretParamsMap: which parameters name which Secret."""

    kind: str
    name_key: str
    namespace_key: str


PROVISIONER_SECRET = SecretParams("Provisioner", PROVISIONER_NAME, PROVISIONER_NAMESPACE)
CONTROLLER_EXPAND_SECRET = SecretParams("ControllerExpand", CONTROLLER_EXPAND_NAME,
                                        CONTROLLER_EXPAND_NAMESPACE)
DEFAULT_SECRET = SecretParams("Default", DEFAULT_NAME, DEFAULT_NAMESPACE)


def _templates(parameters: Mapping[str, str], which: SecretParams) -> tuple[str, str]:
    """verifyAndGetSecretNameAndNamespaceTemplate: both or neither, neither empty."""
    if (which.name_key in parameters) != (which.namespace_key in parameters):
        raise SecretError(f"either name and namespace for {which.kind} secrets specified, "
                          "Both must be specified")
    if which.name_key not in parameters:
        return "", ""
    name, namespace = parameters[which.name_key], parameters[which.namespace_key]
    if not name or not namespace:
        raise SecretError(f"{which.kind} secrets specified in parameters but value of either "
                          "namespace or name is empty")
    return name, namespace


def _resolve(template: str, values: Mapping[str, str]) -> str:
    """os.Expand over `values`; every token must be known."""
    missing: set[str] = set()

    def expand(match: re.Match[str]) -> str:
        token = match.group(1) if match.group(1) is not None else match.group(2)
        if token not in values:
            missing.add(token)
        return values.get(token, "")

    resolved = _TOKEN.sub(expand, template)
    if missing:
        listed = json.dumps(sorted(missing))  # Go's %q of a []string
        raise SecretError(f"error resolving value {json.dumps(template)}: invalid tokens: "
                          f"{listed}")
    return resolved


def _checked(template: str, resolved: str, invalid: bool, what: str) -> str:
    if not invalid:
        return resolved
    if template != resolved:
        raise SecretError(f"{json.dumps(template)} resolved to {json.dumps(resolved)} which is "
                          f"not a valid {what}")
    raise SecretError(f"{json.dumps(template)} is not a valid {what}")


def reference(parameters: Mapping[str, str], claim: contract.ClaimMetadata,
              pv_name: str, which: SecretParams = PROVISIONER_SECRET) -> SecretRef | None:
    """getSecretReference for one kind of secret (the provisioner's unless told), falling back
    to the shared one."""
    try:
        name_t, namespace_t = _templates(parameters, which)
    except SecretError as e:
        raise SecretError(f"failed to get name and namespace template from params: {e}") from e
    if not name_t:
        try:
            name_t, namespace_t = _templates(parameters, DEFAULT_SECRET)
        except SecretError as e:
            raise SecretError("failed to get default name and namespace template from params: "
                              f"{e}") from e
    if not name_t:
        return None
    # The namespace may not depend on what the claim's user controls (its name, annotations).
    scope = {"pv.name": pv_name, "pvc.namespace": claim.pvc_namespace}
    namespace = _resolve(namespace_t, scope)
    namespace = _checked(namespace_t, namespace, bool(names.is_dns1123_label(namespace)),
                         "namespace name")
    scope |= {"pvc.name": claim.pvc_name}
    scope |= {f"pvc.annotations['{k}']": v for k, v in claim.annotations.items()}
    name = _resolve(name_t, scope)
    name = _checked(name_t, name, bool(names.is_dns1123_subdomain(name)), "secret name")
    return SecretRef(name, namespace)


def secret_reference_field(ref: SecretRef | None) -> dict[str, str] | None:
    """A SecretReference as the PV's spec.csi carries it (controllerExpandSecretRef ...)."""
    return {"name": ref.name, "namespace": ref.namespace} if ref is not None else None


def controller_expand_reference(volume: Mapping[str, Any]) -> SecretRef | None:
    """The PV's spec.csi.controllerExpandSecretRef, as external-resizer reads it."""
    raw = ((volume.get("spec") or {}).get("csi") or {}).get("controllerExpandSecretRef")
    if not isinstance(raw, Mapping) or not raw.get("name"):
        return None
    return SecretRef(str(raw["name"]), str(raw.get("namespace") or ""))


def deletion_annotations(ref: SecretRef | None) -> dict[str, str]:
    """What the PV records for deletion (both empty when the class names no secret)."""
    return {ANN_DELETION_NAME: ref.name if ref else "",
            ANN_DELETION_NAMESPACE: ref.namespace if ref else ""}


def _decode(data: Mapping[str, str] | None) -> dict[str, str]:
    decoded = {}
    for key, value in (data or {}).items():
        try:
            decoded[key] = base64.b64decode(value).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue  # a binary value is no credential a driver could use
    return decoded


class Secrets:
    """Reads the Secrets the classes name, through the controller's API client."""

    def __init__(self, kube: kube_api.Kube) -> None:
        self.kube = kube

    async def fetch(self, ref: SecretRef) -> dict[str, str]:
        """getCredentials: the Secret's data as strings."""
        try:
            secret = await self.kube.client.get(core_v1.Secret, ref.name,
                                                namespace=ref.namespace)
        except (ApiError, httpx2.HTTPError) as e:
            raise SecretError(f"error getting secret {ref.name} in namespace {ref.namespace}: "
                              f"{kube_api._translate(e)}") from e
        return _decode(secret.data)

    async def request(self, request: contract.CreateVolumeRequest
                      ) -> tuple[contract.CreateVolumeRequest, SecretRef | None]:
        """The request with its class's provisioner secret filled in, and where it came from."""
        ref = reference(request.parameters, request.claim, request.name)
        if ref is None:
            return request, None
        return dataclasses.replace(request, secrets=await self.fetch(ref)), ref

    async def for_volume(self, volume: Mapping[str, Any]) -> dict[str, str]:
        """The deletion secret of a PV: from its annotations, else from its class (a PV made
        before the annotations existed). A Secret gone by now means none: the driver decides
        whether it can delete without."""
        try:
            ref = await self._deletion_ref(volume)
            return await self.fetch(ref) if ref is not None else {}
        except SecretError as e:
            log.warning("volume %s: %s", matching.name_of(volume), e)
            return {}

    async def for_expansion(self, volume: Mapping[str, Any], claim: contract.ClaimMetadata,
                            sc: Mapping[str, Any] | None) -> dict[str, str]:
        """The controller-expand secret of a PV: its controllerExpandSecretRef, else what its
        class names for `claim`; {} when neither names one. Raises SecretError (a bad
        template, a Secret that cannot be read): expansion then waits and retries."""
        ref = controller_expand_reference(volume)
        if ref is None and sc is not None:
            ref = reference(sc.get("parameters") or {}, claim, matching.name_of(volume),
                            CONTROLLER_EXPAND_SECRET)
        return await self.fetch(ref) if ref is not None else {}

    async def _deletion_ref(self, volume: Mapping[str, Any]) -> SecretRef | None:
        annotations = matching.annotations_of(volume)
        if ANN_DELETION_NAME in annotations and ANN_DELETION_NAMESPACE in annotations:
            name, namespace = annotations[ANN_DELETION_NAME], annotations[ANN_DELETION_NAMESPACE]
            return SecretRef(name, namespace) if name and namespace else None
        class_name = (volume.get("spec") or {}).get("storageClassName") or ""
        if not class_name:
            return None
        try:
            sc = await self.kube.get("StorageClass", class_name)
        except kube_api.KubeError as e:
            raise SecretError(f"cannot read StorageClass {class_name}: {e}") from e
        ref = (volume.get("spec") or {}).get("claimRef") or {}
        claim = contract.ClaimMetadata(pvc_name=ref.get("name", ""),
                                       pvc_namespace=ref.get("namespace", ""))
        return reference(sc.get("parameters") or {}, claim, matching.name_of(volume))
