"""The csi_like contract: value types, path patterns, volume ids, errors and the registry."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from typing import Any

import pytest

from csi_like import contract, errors, naming, registry


class RecordingDriver:
    """A fake driver recording every call, as a provisioning controller's tests would use."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def get_plugin_info(self) -> contract.PluginInfo:
        return contract.PluginInfo("example.com/recording", "1")

    def probe(self) -> bool:
        return True

    def get_plugin_capabilities(self) -> frozenset[contract.Capability]:
        return frozenset({contract.Capability.CREATE_DELETE_VOLUME})

    def create_volume(self, request: contract.CreateVolumeRequest) -> contract.Volume:
        self.calls.append(("create", request.name))
        return contract.Volume(f"rec:{request.name}", request.capacity_bytes)

    def delete_volume(self, volume_id: str, secrets: Mapping[str, str] | None = None) -> None:
        self.calls.append(("delete", volume_id))

    def expand_volume(self, volume_id: str, capacity_bytes: int,
                      secrets: Mapping[str, str] | None = None) -> contract.ExpansionResult:
        self.calls.append(("expand", capacity_bytes))
        return contract.ExpansionResult(capacity_bytes, False)

    def get_capacity(self, parameters: Mapping[str, str],
                     topology: contract.Topology | None = None,
                     secrets: Mapping[str, str] | None = None) -> int:
        return 0

    def get_volume(self, volume_id: str,
                   secrets: Mapping[str, str] | None = None) -> contract.VolumeStatus:
        return contract.VolumeStatus(volume_id, 0, 0)

    def publish_volume(self, volume_id: str, target_path: str, read_only: bool,
                       context: Mapping[str, str] | None = None,
                       mount_options: tuple[str, ...] = ()) -> None:
        self.calls.append(("publish", (target_path, read_only)))

    def unpublish_volume(self, volume_id: str, target_path: str) -> None:
        self.calls.append(("unpublish", target_path))

    def get_volume_stats(self, volume_id: str, volume_path: str) -> contract.VolumeStats:
        return contract.VolumeStats(0, 0, 0)

    def node_expand_volume(self, volume_id: str, volume_path: str,
                           capacity_bytes: int) -> int:
        return capacity_bytes


# Checked by mypy against the Protocols, and at run time below.
_identity: contract.IdentityDriver = RecordingDriver()
_controller: contract.ControllerDriver = RecordingDriver()
_node: contract.NodeDriver = RecordingDriver()
_driver: contract.Driver = RecordingDriver()


def test_fake_and_builtin_drivers_satisfy_the_protocols() -> None:
    for driver in (RecordingDriver(), registry.create("storagelab.io/local",
                                                      {"nodePaths": {"n1": ["/srv/x"]}}),
                   registry.create("storagelab.io/nfs")):
        assert isinstance(driver, contract.Driver)
    assert not isinstance(object(), contract.ControllerDriver)


def test_access_modes_use_kubernetes_spelling() -> None:
    assert [m.value for m in contract.AccessMode] == [
        "ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]
    assert contract.AccessMode("ReadWriteOncePod") is contract.AccessMode.RWOP


def test_values_are_frozen_and_mappings_are_copied() -> None:
    parameters = {"a": "1"}
    request = contract.CreateVolumeRequest("pvc-1", 10, parameters)
    parameters["a"] = "2"
    assert request.parameters["a"] == "1"
    with pytest.raises(TypeError):
        request.parameters["b"] = "x"  # type: ignore[index]
    with pytest.raises(AttributeError):
        request.name = "other"  # type: ignore[misc]
    assert contract.Topology.node("n1") == contract.Topology({"kubernetes.io/hostname": "n1"})
    assert len({contract.Topology.node("n1"), contract.Topology.node("n1")}) == 1


@pytest.mark.parametrize("error, base", [
    (errors.InvalidArgument("x", 1, "bad"), errors.PermanentError),
    (errors.VolumeConflict("c"), errors.PermanentError),
    (errors.VolumeNotFound("n"), errors.PermanentError),
    (errors.OutOfCapacity("o", 2, 1), errors.PermanentError),
    (errors.NodeUnsuitable("n", "node"), errors.PermanentError),
    (errors.TemporaryError("t"), errors.DriverError),
    (errors.NotMine("m"), errors.DriverError),
])
def test_error_tree(error: Exception, base: type[Exception]) -> None:
    assert isinstance(error, base)
    assert not isinstance(error, errors.TemporaryError) or base is errors.DriverError


def test_invalid_argument_names_the_parameter() -> None:
    error = errors.InvalidArgument("pathPattern", "../x", "must not contain '..'")
    assert error.parameter == "pathPattern"
    assert "pathPattern" in str(error) and "'../x'" in str(error)
    assert errors.TemporaryError("down", delay=3).delay == 3


VALUES = {"namespace": "team-a", "pvc_name": "data", "pvc_uid": "u1", "pv_name": "pvc-u1",
          "node": "n1"}


@pytest.mark.parametrize("pattern, expected", [
    ("{pv_name}", "pvc-u1"),
    ("{namespace}/{pvc_name}", "team-a/data"),
    ("{namespace}-{pvc_name}_{pvc_uid}", "team-a-data_u1"),
    ("volumes//{namespace}/", "volumes/team-a"),
    ("static", "static"),
    ("{node}/{pv_name}", "n1/pvc-u1"),
])
def test_patterns_render(pattern: str, expected: str) -> None:
    parsed = naming.parse_pattern(pattern, "pathPattern")
    assert naming.render(parsed, VALUES, "pathPattern") == expected


@pytest.mark.parametrize("pattern, reason", [
    ("", "empty"),
    ("/abs/{pv_name}", "relative"),
    ("../{pv_name}", "'..'"),
    ("{namespace}/../x", "'..'"),
    ("./{pv_name}", "'..'"),
    ("{pv_name.__class__}", "unknown field"),
    ("{0}", "unknown field"),
    ("{pv_name!r}", "unknown field"),
    ("{pv_name", "unbalanced"),
    ("x}", "unbalanced"),
    ("{secret}", "unknown field"),
    ("a b/{pv_name}", "literal text"),
    (".hidden/{pv_name}", "not starting with '.'"),
    ("/", "relative"),
    ("//", "relative"),
    ("x" * 300, "1-255"),
])
def test_bad_patterns_are_refused_naming_the_parameter(pattern: str, reason: str) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        naming.parse_pattern(pattern, "subDir")
    assert caught.value.parameter == "subDir"
    assert reason in str(caught.value)


@pytest.mark.parametrize("values, reason", [
    ({**VALUES, "namespace": ""}, "no value"),
    ({**VALUES, "namespace": ".."}, "'..'"),
    ({**VALUES, "namespace": "a/b"}, "contains '/'"),
    ({**VALUES, "namespace": ".git"}, "not starting with '.'"),
])
def test_rendering_refuses_values_that_change_the_shape(values: dict[str, str],
                                                        reason: str) -> None:
    parsed = naming.parse_pattern("{namespace}/{pvc_name}", "pathPattern")
    with pytest.raises(errors.InvalidArgument, match=reason):
        naming.render(parsed, values, "pathPattern")


def test_volume_ids_round_trip_and_reject_others() -> None:
    fields = {"node": "n1", "path": "a/b c&d=e", "name": "pvc-1"}
    encoded = naming.encode_volume_id("local", fields)
    assert encoded.startswith("local:v1:")
    assert naming.decode_volume_id("local", encoded, ("node", "path")) == fields
    with pytest.raises(errors.NotMine):
        naming.decode_volume_id("nfs", encoded, ())
    with pytest.raises(errors.PermanentError, match="lacks"):
        naming.decode_volume_id("local", encoded, ("base",))
    with pytest.raises(errors.PermanentError, match="version"):
        naming.decode_volume_id("local", "local:v9:x=1", ())


@pytest.mark.parametrize("value, expected", [("0775", 0o775), ("755", 0o755),
                                             ("2770", 0o2770)])
def test_modes(value: str, expected: int) -> None:
    assert naming.parse_mode(value, "mode") == expected


@pytest.mark.parametrize("value", ["rwx", "0999", "77", "17777", "-1", ""])
def test_bad_modes(value: str) -> None:
    with pytest.raises(errors.InvalidArgument, match="mode"):
        naming.parse_mode(value, "mode")


def test_registry_knows_the_builtins_and_refuses_unknown_names() -> None:
    assert {"storagelab.io/local", "storagelab.io/nfs"} <= set(registry.available())
    assert registry.create("storagelab.io/nfs").get_plugin_info().name == "storagelab.io/nfs"
    with pytest.raises(errors.NotMine):
        registry.load_factory("example.com/unknown")


def _recording_factory(options: Mapping[str, Any]) -> RecordingDriver:
    return RecordingDriver()


def test_registry_loads_third_party_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = metadata.EntryPoint(name="example.com/recording", group=registry.ENTRY_POINT_GROUP,
                                value=f"{__name__}:_recording_factory")
    broken = metadata.EntryPoint(name="example.com/broken", group=registry.ENTRY_POINT_GROUP,
                                 value="no_such_module_xyz:factory")
    real = metadata.entry_points

    def fake(**kwargs: Any) -> Any:
        if kwargs.get("group") == registry.ENTRY_POINT_GROUP:
            return metadata.EntryPoints([entry, broken])
        return real(**kwargs)

    monkeypatch.setattr(metadata, "entry_points", fake)
    driver = registry.create("example.com/recording")
    assert isinstance(driver, RecordingDriver)
    with pytest.raises(errors.PermanentError, match="cannot be loaded"):
        registry.load_factory("example.com/broken")
    entry_lying = metadata.EntryPoint(name="example.com/liar", group=registry.ENTRY_POINT_GROUP,
                                      value=f"{__name__}:_recording_factory")
    monkeypatch.setattr(metadata, "entry_points",
                        lambda **kw: metadata.EntryPoints([entry_lying]))
    with pytest.raises(errors.PermanentError, match="calls itself"):
        registry.create("example.com/liar")
