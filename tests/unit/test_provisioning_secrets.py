"""Which Secret a class names for its provisioner, as external-provisioner resolves it."""

from __future__ import annotations

import pytest

from csi_like import contract
from storage import provisioning_secrets as ps

CLAIM = contract.ClaimMetadata(pvc_name="data", pvc_namespace="team-a", pvc_uid="u1",
                               annotations={"example.com/secret": "from-annotation"})
NAME, NAMESPACE = ps.PROVISIONER_NAME, ps.PROVISIONER_NAMESPACE


@pytest.mark.parametrize("parameters,expected", [
    ({}, None),
    ({"server": "s"}, None),
    ({NAME: "ssh", NAMESPACE: "kube-system"}, ps.SecretRef("ssh", "kube-system")),
    ({NAME: "${pvc.name}-ssh", NAMESPACE: "${pvc.namespace}"},
     ps.SecretRef("data-ssh", "team-a")),
    ({NAME: "${pv.name}", NAMESPACE: "ns-${pvc.namespace}"}, ps.SecretRef("pvc-u1", "ns-team-a")),
    ({NAME: "${pvc.annotations['example.com/secret']}", NAMESPACE: "x"},
     ps.SecretRef("from-annotation", "x")),
    # the shared csi.storage.k8s.io/secret-* pair when no provisioner pair is given
    ({ps.DEFAULT_NAME: "shared", ps.DEFAULT_NAMESPACE: "x"}, ps.SecretRef("shared", "x")),
    ({NAME: "own", NAMESPACE: "x", ps.DEFAULT_NAME: "shared", ps.DEFAULT_NAMESPACE: "x"},
     ps.SecretRef("own", "x")),
])
def test_reference(parameters: dict[str, str], expected: ps.SecretRef | None) -> None:
    assert ps.reference(parameters, CLAIM, "pvc-u1") == expected


@pytest.mark.parametrize("parameters,message", [
    ({NAME: "ssh"}, ("failed to get name and namespace template from params: either name and "
                    "namespace for Provisioner secrets specified, Both must be specified")),
    ({NAME: "", NAMESPACE: "x"}, ("failed to get name and namespace template from params: "
                                 "Provisioner secrets specified in parameters but value of "
                                 "either namespace or name is empty")),
    ({ps.DEFAULT_NAMESPACE: "x"}, ("failed to get default name and namespace template from "
                                  "params: either name and namespace for Default secrets "
                                  "specified, Both must be specified")),
    ({NAME: "${pvc.label}", NAMESPACE: "x"},
     'error resolving value "${pvc.label}": invalid tokens: ["pvc.label"]'),
    # os.Expand: "$pv" is the whole token, ".name" is text
    ({NAME: "$pv.name", NAMESPACE: "x"}, 'error resolving value "$pv.name": invalid tokens: ["pv"]'),
    # the user's claim name may pick the secret's name, never its namespace
    ({NAME: "x", NAMESPACE: "${pvc.name}"},
     'error resolving value "${pvc.name}": invalid tokens: ["pvc.name"]'),
    ({NAME: "Bad_Name", NAMESPACE: "x"}, '"Bad_Name" is not a valid secret name'),
    ({NAME: "${pvc.name}_x", NAMESPACE: "x"},
     '"${pvc.name}_x" resolved to "data_x" which is not a valid secret name'),
    ({NAME: "x", NAMESPACE: "a.b"}, '"a.b" is not a valid namespace name'),
])
def test_reference_errors(parameters: dict[str, str], message: str) -> None:
    with pytest.raises(ps.SecretError) as caught:
        ps.reference(parameters, CLAIM, "pvc-u1")
    assert str(caught.value) == message


def test_deletion_annotations() -> None:
    assert ps.deletion_annotations(ps.SecretRef("ssh", "ops")) == {
        "volume.kubernetes.io/provisioner-deletion-secret-name": "ssh",
        "volume.kubernetes.io/provisioner-deletion-secret-namespace": "ops"}
    assert ps.deletion_annotations(None) == {
        "volume.kubernetes.io/provisioner-deletion-secret-name": "",
        "volume.kubernetes.io/provisioner-deletion-secret-namespace": ""}
