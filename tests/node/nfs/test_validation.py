"""Pure checks of the NFS mounter's input validation, option mapping and mount-table parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelet.mounters import nfs, nfs_fuse


@pytest.mark.parametrize("server, expected", [
    ("127.0.0.1", "127.0.0.1"),
    ("nfs.example.com", "nfs.example.com"),
    ("nfs-server", "nfs-server"),
    ("::1", "::1"),
    ("[fd00::5]", "fd00::5"),
    ("NFS01.lab.", "NFS01.lab"),
])
def test_valid_servers(server: str, expected: str) -> None:
    assert nfs.validate_server(server) == expected


@pytest.mark.parametrize("server", [
    "", "host;rm -rf /", "$(reboot)", "a b", "host`id`", "-oProxyCommand", "host:2049",
    "256.1.1.1", "under_score.example", "x" * 254, "a..b", "host|cat", "1.2.3",
])
def test_bad_servers_are_rejected_naming_the_server(server: str) -> None:
    with pytest.raises(nfs.InvalidServer) as caught:
        nfs.validate_server(server)
    assert caught.value.part == "server"
    assert repr(server) in str(caught.value)


@pytest.mark.parametrize("path, expected", [
    ("/srv/export", "/srv/export"),
    ("/", "/"),
    ("/srv//data/./x/", "/srv/data/x"),
    ("/exports/pvc-1234_a.b+c@d=e~f", "/exports/pvc-1234_a.b+c@d=e~f"),
])
def test_valid_export_paths(path: str, expected: str) -> None:
    assert nfs.validate_export_path(path) == expected


@pytest.mark.parametrize("path, reason", [
    ("srv/export", "absolute"),
    ("", "absolute"),
    ("/srv/$(id)", "only letters"),
    ("/srv/a;b", "only letters"),
    ("/srv/a b", "only letters"),
    ("/srv/a?version=4", "only letters"),
    ("/srv/a,b", "only letters"),
    ("/srv/../etc", "'..'"),
    ("/" + "a" * 1100, "longer"),
])
def test_bad_export_paths_are_rejected(path: str, reason: str) -> None:
    with pytest.raises(nfs.InvalidExportPath) as caught:
        nfs.validate_export_path(path)
    assert caught.value.part == "export path"
    assert reason in caught.value.reason


@pytest.mark.parametrize("target", ["relative/dir", "/mnt/a\nb", "/mnt/\0"])
def test_bad_targets_are_rejected(target: str) -> None:
    with pytest.raises(nfs.InvalidTarget):
        nfs.validate_target(target)


def test_options_are_parsed_into_canonical_values() -> None:
    parsed = nfs.parse_options(["vers=3,port=2049", "ro", " hard ", "timeo=600", "port=3049"])
    assert parsed.raw == ("vers=3", "port=2049", "ro", "hard", "timeo=600", "port=3049")
    assert parsed.version == "3"
    assert parsed.get("port") == "3049"  # the last one wins, as mount(8) does
    assert parsed.read_only
    assert not nfs.parse_options(["ro", "rw"]).read_only


@pytest.mark.parametrize("option, reason", [
    ("unknownopt", "not an allowed option"),
    ("exec=1", "takes no value"),
    ("port", "needs a value"),
    ("port=0", "out of range"),
    ("port=70000", "out of range"),
    ("vers=5", "out of range"),
    ("rsize=abc", "out of range"),
    ("nconnect=64", "out of range"),
    ("sec=krb5", "out of range"),
    ("port=1;reboot", "plain letters"),
    ("addr=$(id)", "plain letters"),
    ("x-systemd.automount", "plain letters"),
])
def test_bad_options_are_rejected_naming_the_option(option: str, reason: str) -> None:
    with pytest.raises(nfs.InvalidMountOption) as caught:
        nfs.parse_options(["rw", option])
    assert caught.value.value == option
    assert reason in caught.value.reason


def test_validate_request_checks_every_part() -> None:
    request = nfs.validate_request("::1", "/srv/x/", "/mnt/v/", ["vers=3"])
    assert request == nfs.MountRequest("::1", "/srv/x", "/mnt/v", nfs.parse_options(["vers=3"]))
    assert request.source == "[::1]:/srv/x"
    with pytest.raises(nfs.InvalidMountOption):
        nfs.validate_request("h", "/x", "/mnt", ["bogus"])


@pytest.mark.parametrize("options, fstype", [
    ([], "nfs4"), (["vers=4.1"], "nfs4"), (["nfsvers=3"], "nfs"), (["vers=3", "hard"], "nfs"),
])
def test_kernel_mounter_builds_an_argument_list(options: list[str], fstype: str) -> None:
    request = nfs.validate_request("10.0.0.5", "/exports/a", "/var/lib/kubelet/x", options)
    argv = nfs.KernelNfsMounter().mount_argv(request)
    expected_options = ["-o", ",".join(options)] if options else []
    assert argv == ["mount", "-t", fstype, *expected_options, "10.0.0.5:/exports/a",
                    "/var/lib/kubelet/x"]


def test_mounters_reject_bad_input_before_running_anything(tmp_path: Path) -> None:
    for mounter in (nfs.KernelNfsMounter(), nfs.UserspaceNfsMounter()):
        with pytest.raises(nfs.InvalidServer):
            mounter.mount("srv;touch /tmp/pwned", "/x", str(tmp_path), [])
        with pytest.raises(nfs.InvalidExportPath):
            mounter.mount("srv", "relative", str(tmp_path), [])
        with pytest.raises(nfs.InvalidMountOption):
            mounter.mount("srv", "/x", str(tmp_path), ["evil=1"])
    with pytest.raises(nfs.InvalidMountOption, match="NFSv3 only"):
        nfs.UserspaceNfsMounter().mount("srv", "/x", str(tmp_path), ["vers=4.2"])
    assert not Path("/tmp/pwned").exists()


def test_userspace_config_maps_nfs_options() -> None:
    request = nfs.validate_request("127.0.0.1", "/e", "/mnt/x", [
        "vers=3", "port=2050", "mountport=20050", "timeo=25", "nconnect=2", "wsize=65536",
        "ro", "actimeo=0"])
    config = nfs_fuse.config_from_request(request)
    assert config.connect.nfs_port == 2050 and config.connect.mount_port == 20050
    assert config.connect.timeout_ms == 3000  # 2.5 s, rounded up to whole seconds for libnfs
    assert (config.connections, config.wsize, config.rsize) == (2, 65536, nfs_fuse.MAX_IO)
    assert config.read_only and config.attr_timeout_s == 0.0
    assert config.connect.url() == ("nfs://127.0.0.1/e?version=3&uid=0&gid=0&nfsport=2050"
                                    "&mountport=20050")


def test_userspace_config_defaults_and_refuses_v4() -> None:
    config = nfs_fuse.config_from_request(nfs.validate_request("h", "/e", "/m", []))
    assert config.connect.timeout_ms == nfs_fuse.DEFAULT_TIMEO_DS * 100
    assert config.connections == nfs_fuse.DEFAULT_CONNECTIONS and not config.read_only
    with pytest.raises(nfs.InvalidMountOption, match="NFSv3 only"):
        nfs_fuse.config_from_request(nfs.validate_request("h", "/e", "/m", ["vers=4.1"]))


@pytest.mark.parametrize("source, expected", [
    ("srv:/export", ("srv", "/export")),
    ("[::1]:/e/x", ("::1", "/e/x")),
    ("10.0.0.1:/", ("10.0.0.1", "/")),
])
def test_split_source(source: str, expected: tuple[str, str]) -> None:
    assert nfs_fuse.split_source(source) == expected


def test_mount_table_is_read_without_touching_the_mount(tmp_path: Path) -> None:
    table = tmp_path / "mountinfo"
    table.write_text(
        "22 1 0:21 / / rw - ext4 /dev/vda rw\n"
        "40 22 0:39 / /mnt/with\\040space rw,nosuid - fuse.libnfs h:/e rw,user_id=0\n"
        "41 22 0:40 / /mnt/k rw - nfs4 h:/e rw,vers=4.2\n"
        "42 41 0:41 / /mnt/k rw - tmpfs tmpfs rw\n")
    assert nfs.mount_fstype("/mnt/with space", str(table)) == "fuse.libnfs"
    assert nfs.mount_fstype("/mnt/k/", str(table)) == "tmpfs"  # the top mount is visible
    assert nfs.mount_fstype("/mnt/none", str(table)) is None


def test_kernel_support_is_read_from_proc_filesystems(tmp_path: Path) -> None:
    with_nfs = tmp_path / "with"
    with_nfs.write_text("nodev\tsysfs\nnodev\tnfs4\n\text4\n")
    assert nfs.kernel_supports_nfs(str(with_nfs))


def test_choose_mounter_rejects_unknown_preference() -> None:
    with pytest.raises(ValueError):
        nfs.choose_mounter("fastest")  # type: ignore[arg-type]


def test_choose_mounter_follows_the_kernel() -> None:
    if nfs.kernel_supports_nfs():
        assert isinstance(nfs.choose_mounter("auto"), nfs.KernelNfsMounter)
        return
    with pytest.raises(nfs.MounterUnavailable):
        nfs.choose_mounter("kernel")
    if nfs.userspace_unavailable_reason() is None:
        assert isinstance(nfs.choose_mounter("auto"), nfs.UserspaceNfsMounter)
