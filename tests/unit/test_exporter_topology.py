"""Domain XML parsing and the sysfs bridge classification."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.bridges import SysfsBridgeInspector
from exporter.topology import Interface, TopologyError, parse_topology
from virtbalance.domain_metadata import Placement

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "exporter"


def test_bridge_and_network_interfaces_and_group():
    topology = parse_topology((FIXTURES / "domain-vbexp-f.xml").read_text())
    assert topology.interfaces == (
        Interface(target="vnet13", kind="network", bridge="vbexpiso", network="isonet"),
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


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("<domain>", "does not parse"),
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
