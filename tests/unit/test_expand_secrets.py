"""Which Secret a volume's expansion gets: the PV's controllerExpandSecretRef, else its class's
`csi.storage.k8s.io/controller-expand-secret-*` (or the shared pair), never the provisioner's."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from csi_like import contract
from storage import provisioning_secrets as ps

CLAIM = contract.ClaimMetadata(pvc_name="data", pvc_namespace="team-a", pvc_uid="u1")
EXPAND = ps.CONTROLLER_EXPAND_SECRET


@pytest.mark.parametrize("parameters, expected", [
    ({}, None),
    # The provisioner's Secret is for provisioning only.
    ({ps.PROVISIONER_NAME: "ssh", ps.PROVISIONER_NAMESPACE: "ops"}, None),
    ({ps.CONTROLLER_EXPAND_NAME: "${pvc.name}-grow",
      ps.CONTROLLER_EXPAND_NAMESPACE: "${pvc.namespace}"}, ps.SecretRef("data-grow", "team-a")),
    ({ps.DEFAULT_NAME: "shared", ps.DEFAULT_NAMESPACE: "ops"}, ps.SecretRef("shared", "ops")),
    ({ps.CONTROLLER_EXPAND_NAME: "own", ps.CONTROLLER_EXPAND_NAMESPACE: "ops",
      ps.DEFAULT_NAME: "shared", ps.DEFAULT_NAMESPACE: "ops"}, ps.SecretRef("own", "ops")),
])
def test_controller_expand_reference_from_the_class(parameters: dict[str, str],
                                                    expected: ps.SecretRef | None) -> None:
    assert ps.reference(parameters, CLAIM, "pvc-u1", EXPAND) == expected


def test_controller_expand_errors_name_the_kind() -> None:
    with pytest.raises(ps.SecretError) as caught:
        ps.reference({ps.CONTROLLER_EXPAND_NAME: "x"}, CLAIM, "pvc-u1", EXPAND)
    assert str(caught.value) == ("failed to get name and namespace template from params: "
                                 "either name and namespace for ControllerExpand secrets "
                                 "specified, Both must be specified")


def test_secret_reference_field_and_back() -> None:
    field = ps.secret_reference_field(ps.SecretRef("grow", "ops"))
    assert field == {"name": "grow", "namespace": "ops"}
    assert ps.secret_reference_field(None) is None
    volume = {"spec": {"csi": {"driver": "nfs.storagelab.io", "volumeHandle": "h",
                               "controllerExpandSecretRef": field}}}
    assert ps.controller_expand_reference(volume) == ps.SecretRef("grow", "ops")
    assert ps.controller_expand_reference({"spec": {"csi": {}}}) is None


class RecordingSecrets(ps.Secrets):
    """Secrets whose fetch notes the reference instead of calling the API."""

    def __init__(self) -> None:
        super().__init__(None)  # type: ignore[arg-type]
        self.fetched: list[ps.SecretRef] = []

    async def fetch(self, ref: ps.SecretRef) -> dict[str, str]:
        self.fetched.append(ref)
        return {"username": ref.name}


def _volume(ref: dict[str, str] | None = None) -> dict[str, Any]:
    csi: dict[str, Any] = {"driver": "nfs.storagelab.io", "volumeHandle": "h"}
    if ref is not None:
        csi["controllerExpandSecretRef"] = ref
    return {"metadata": {"name": "pvc-u1"}, "spec": {"csi": csi, "storageClassName": "c"}}


SC = {"metadata": {"name": "c"}, "parameters": {ps.CONTROLLER_EXPAND_NAME: "from-class",
                                                ps.CONTROLLER_EXPAND_NAMESPACE: "ops"}}


@pytest.mark.parametrize("volume, sc, fetched, secrets", [
    # The PV's own reference wins (external-resizer reads only that).
    (_volume({"name": "on-pv", "namespace": "ops"}), SC, [ps.SecretRef("on-pv", "ops")],
     {"username": "on-pv"}),
    # A PV made without it: the class says which.
    (_volume(), SC, [ps.SecretRef("from-class", "ops")], {"username": "from-class"}),
    # Neither: no credentials at all.
    (_volume(), {"metadata": {"name": "c"}}, [], {}),
    (_volume(), None, [], {}),
])
def test_for_expansion(volume: dict[str, Any], sc: dict[str, Any] | None,
                       fetched: list[ps.SecretRef], secrets: dict[str, str]) -> None:
    recorder = RecordingSecrets()
    assert asyncio.run(recorder.for_expansion(volume, CLAIM, sc)) == secrets
    assert recorder.fetched == fetched
