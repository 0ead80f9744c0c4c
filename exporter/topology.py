"""Domain XML -> the topology facts the exporter needs (interfaces, placement), cached per domain."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from virtbalance.domain_metadata import Placement, find_placement


class TopologyError(ValueError):
    """Domain XML that cannot be read into a topology."""


@dataclass(frozen=True)
class Interface:
    """One guest NIC as the live domain XML describes it."""

    target: str  # host-side device (vnetN); "" before the domain runs
    kind: str  # the interface type: bridge, network, direct, user, ...
    bridge: str  # the Linux bridge it is plugged into; "" when none
    network: str  # the libvirt network name; "" for a plain bridge


@dataclass(frozen=True)
class DomainTopology:
    """What chunk detection and the topology series need from one domain's XML."""

    interfaces: tuple[Interface, ...]
    placement: Placement

    def bridge_of(self, target: str) -> str:
        """The bridge behind a host-side device name, "" if unknown (the Go exporter's source_bridge)."""
        for interface in self.interfaces:
            if interface.target == target:
                return interface.bridge
        return ""


def parse_topology(xml_text: str) -> DomainTopology:
    """Parse a live domain XML; raise TopologyError naming what is wrong."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise TopologyError(f"domain XML does not parse: {exc}") from exc
    if root.tag != "domain":
        raise TopologyError(f"domain XML root is <{root.tag}>, not <domain>")
    interfaces = []
    for element in root.iterfind("./devices/interface"):
        source = element.find("source")
        target = element.find("target")
        kind = element.get("type", "")
        network = source.get("network", "") if source is not None and kind == "network" else ""
        bridge = source.get("bridge", "") if source is not None else ""
        interfaces.append(
            Interface(
                target=target.get("dev", "") if target is not None else "",
                kind=kind,
                bridge=bridge,
                network=network,
            )
        )
    try:
        placement = find_placement(root)
    except ValueError as exc:
        raise TopologyError(str(exc)) from exc
    return DomainTopology(interfaces=tuple(interfaces), placement=placement)


@dataclass
class _Entry:
    domain_id: int
    read_at: float
    topology: DomainTopology


class TopologyCache:
    """Parsed topology per domain UUID, trusted while the domain's run id is unchanged and fresh.

    A domain gets a new id whenever it (re)starts or arrives by migration, which is when its XML
    changes most; hotplug and metadata edits keep the id, so entries also expire after ``max_age``.
    """

    def __init__(self, max_age: float) -> None:
        self._max_age = max_age
        self._entries: dict[str, _Entry] = {}

    def get(self, uuid: str, domain_id: int, now: float) -> DomainTopology | None:
        entry = self._entries.get(uuid)
        if entry is None or entry.domain_id != domain_id or now - entry.read_at >= self._max_age:
            return None
        return entry.topology

    def put(self, uuid: str, domain_id: int, now: float, topology: DomainTopology) -> None:
        self._entries[uuid] = _Entry(domain_id, now, topology)

    def retain(self, uuids: set[str]) -> None:
        """Forget domains that are no longer on this host."""
        for uuid in [u for u in self._entries if u not in uuids]:
            self._entries.pop(uuid, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
