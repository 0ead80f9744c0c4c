"""Domain XML parsing and the sysfs bridge classification."""

from __future__ import annotations

from pathlib import Path

import pytest

from virtbalance.domain_metadata import Placement
from virtbalance.exporter.bridges import SysfsBridgeInspector
from virtbalance.exporter.topology import (
    Disk,
    GuestOS,
    Interface,
    NovaInstance,
    TopologyError,
    parse_topology,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "exporter"


def test_bridge_and_network_interfaces_and_group():
    topology = parse_topology((FIXTURES / "domain-vbexp-f.xml").read_text())
    assert topology.interfaces == (
        Interface(
            target="vnet13",
            kind="network",
            bridge="vbexpiso",
            network="isonet",
            mac="52:54:00:66:c3:36",
            model="virtio",
        ),
    )
    assert topology.placement == Placement(group="web")
    assert topology.bridge_of("vnet13") == "vbexpiso"
    assert topology.bridge_of("vnet99") == ""


def test_domain_without_metadata_or_target():
    topology = parse_topology(
        "<domain><devices><interface type='bridge'><source bridge='br0'/></interface>"
        "<interface type='user'/></devices></domain>"
    )
    assert topology.interfaces == (
        Interface(target="", kind="bridge", bridge="br0", network=""),
        Interface(target="", kind="user", bridge="", network=""),
    )
    assert topology.placement == Placement()


def test_disks_os_and_sizes_of_a_recorded_domain():
    topology = parse_topology((FIXTURES / "domain-vbexp-a.xml").read_text())
    assert topology.disks == (
        Disk(
            target="vda",
            bus="virtio",
            kind="file",
            driver_name="qemu",
            driver_type="raw",
            driver_cache="",
            driver_discard="",
            source_file="/tmp/vbexp/guest.img",
            source_protocol="",
            serial="",
        ),
    )
    assert topology.os == GuestOS(type="hvm", arch="x86_64", machine="pc-i440fx-7.2")
    assert topology.nova == NovaInstance()
    assert topology.memory_maximum_bytes == topology.memory_current_bytes == 64 * 1024 * 1024
    assert topology.vcpus == 1


NOVA_DOMAIN = """<domain type='kvm'>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:name>web-7</nova:name>
      <nova:flavor name="m1.small"><nova:memory>2048</nova:memory></nova:flavor>
      <nova:owner>
        <nova:user uuid="u-42">alice</nova:user>
        <nova:project uuid="p-9">shop</nova:project>
      </nova:owner>
    </nova:instance>
  </metadata>
  <memory unit='MiB'>2048</memory>
  <vcpu placement='static' current='2'>4</vcpu>
  <devices>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw' cache='none' discard='unmap'/>
      <source protocol='rbd' name='vms/disk'/>
      <target dev='sda' bus='scsi'/>
      <serial>6ef2</serial>
    </disk>
    <disk type='file' device='cdrom'><target dev='hdc' bus='ide'/></disk>
    <interface type='bridge'>
      <mac address='fa:16:3e:00:00:01'/><source bridge='brq1'/><target dev='tap1'/>
      <model type='virtio'/><mtu size='1450'/>
    </interface>
  </devices>
</domain>"""


def test_openstack_metadata_network_disk_and_cdrom_left_out():
    topology = parse_topology(NOVA_DOMAIN)
    assert topology.nova == NovaInstance(
        name="web-7",
        flavor="m1.small",
        user_name="alice",
        user_id="u-42",
        project_name="shop",
        project_id="p-9",
    )
    [disk] = topology.disks  # the CD-ROM has no stats worth exporting
    assert (disk.kind, disk.source_protocol, disk.driver_discard, disk.serial) == (
        "network",
        "rbd",
        "unmap",
        "6ef2",
    )
    assert topology.interfaces[0].mtu == "1450"
    assert topology.memory_maximum_bytes == 2048 * 1024 * 1024
    assert topology.memory_current_bytes == 0  # no <currentMemory>
    assert topology.vcpus == 2  # the current count, not the maximum


def test_metadata_of_another_namespace_is_not_openstack():
    xml = NOVA_DOMAIN.replace("openstack.org/xmlns/libvirt/nova/1.1", "example.org/instance")
    assert parse_topology(xml).nova == NovaInstance()


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("<domain>", "does not parse"),
        ("<domain><memory unit='parsecs'>1</memory></domain>", "unknown unit 'parsecs'"),
        ("<domain><vcpu>two</vcpu></domain>", "<vcpu> is not a number"),
        ("<network/>", "root is <network>"),
        (
            "<domain><metadata><v:placement xmlns:v='https://virtbalance.org/xmlns/domain/1'"
            " pinned='perhaps'/></metadata></domain>",
            "pinned",
        ),
    ],
)
def test_malformed_xml_names_the_problem(xml, message):
    with pytest.raises(TopologyError, match=message):
        parse_topology(xml)


def make_port(root: Path, bridge: str, port: str, tap: bool) -> None:
    (root / bridge / "brif").mkdir(parents=True, exist_ok=True)
    (root / bridge / "brif" / port).touch()
    (root / port).mkdir(exist_ok=True)
    if tap:
        (root / port / "tun_flags").write_text("0x1002\n")


def test_sysfs_bridge_private_only_with_guest_taps(tmp_path):
    make_port(tmp_path, "lan1", "vnet0", tap=True)
    make_port(tmp_path, "lan1", "guest7", tap=True)  # a tap with a custom name
    make_port(tmp_path, "pub", "vnet1", tap=True)
    make_port(tmp_path, "pub", "eth0", tap=False)
    make_port(tmp_path, "lab", "veth3", tap=False)  # a veth leads to another namespace
    (tmp_path / "empty" / "brif").mkdir(parents=True)
    inspector = SysfsBridgeInspector(tmp_path)
    assert inspector.is_private("lan1") is True
    assert inspector.is_private("pub") is False
    assert inspector.is_private("lab") is False
    assert inspector.is_private("empty") is True
    assert inspector.is_private("missing") is None
    assert inspector.is_private("../etc") is None


def test_sysfs_inspector_on_this_machine_sees_loopback_is_no_bridge():
    assert SysfsBridgeInspector().is_private("lo") is None
