"""Domain XML -> what the exporter needs from it (NICs, disks, OS, sizes, placement), cached per domain."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from virtbalance.domain_metadata import Placement, find_placement

# OpenStack Nova writes its instance facts into the domain metadata under this namespace (plus a
# version, 1.0 to 1.2 so far); inovex's exporter exports them as libvirt_domain_openstack_info.
NOVA_NAMESPACE_PREFIX = "http://openstack.org/xmlns/libvirt/nova/"
# Units libvirt accepts for <memory>; it writes KiB itself.
_MEMORY_UNITS = {"b": 1, "bytes": 1, "KiB": 1024, "k": 1024, "MiB": 1024**2, "M": 1024**2}
_MEMORY_UNITS |= {"GiB": 1024**3, "G": 1024**3, "KB": 1000, "MB": 1000**2, "GB": 1000**3}


class TopologyError(ValueError):
    """Domain XML that cannot be read into a topology."""


@dataclass(frozen=True)
class Interface:
    """One guest NIC as the live domain XML describes it."""

    target: str  # host-side device (vnetN); "" before the domain runs
    kind: str  # the interface type: bridge, network, direct, user, ...
    bridge: str  # the Linux bridge it is plugged into; "" when none
    network: str  # the libvirt network name; "" for a plain bridge
    mac: str = ""
    model: str = ""
    mtu: str = ""


@dataclass(frozen=True)
class Disk:
    """One guest disk (not CD-ROM or floppy) as the domain XML describes it."""

    target: str  # guest device name (vda), the bulk stats' block.N.name
    bus: str
    kind: str  # the disk type: file, block, network, volume
    driver_name: str
    driver_type: str
    driver_cache: str
    driver_discard: str
    source_file: str
    source_protocol: str
    serial: str


@dataclass(frozen=True)
class GuestOS:
    """The <os><type> element: hvm and the machine type."""

    type: str = ""
    arch: str = ""
    machine: str = ""


@dataclass(frozen=True)
class NovaInstance:
    """OpenStack Nova's instance metadata; all empty for a domain Nova did not create."""

    name: str = ""
    flavor: str = ""
    user_name: str = ""
    user_id: str = ""
    project_name: str = ""
    project_id: str = ""


@dataclass(frozen=True)
class DomainTopology:
    """What the exporter needs from one domain's XML (sizes are for domains that are not running)."""

    interfaces: tuple[Interface, ...]
    placement: Placement
    disks: tuple[Disk, ...] = ()
    os: GuestOS = GuestOS()
    nova: NovaInstance = NovaInstance()
    memory_maximum_bytes: int = 0
    memory_current_bytes: int = 0
    vcpus: int = 0

    def bridge_of(self, target: str) -> str:
        """The bridge behind a host-side device name, "" if unknown (the Go exporter's source_bridge)."""
        for interface in self.interfaces:
            if interface.target == target:
                return interface.bridge
        return ""


def _attr(element: ET.Element, path: str, name: str) -> str:
    found = element.find(path)
    return found.get(name, "") if found is not None else ""


def _interface(element: ET.Element) -> Interface:
    kind = element.get("type", "")
    bridge = _attr(element, "source", "bridge")
    return Interface(
        target=_attr(element, "target", "dev"),
        kind=kind,
        bridge=bridge,
        network=_attr(element, "source", "network") if kind == "network" else "",
        mac=_attr(element, "mac", "address"),
        model=_attr(element, "model", "type"),
        mtu=_attr(element, "mtu", "size"),
    )


def _disk(element: ET.Element) -> Disk:
    return Disk(
        target=_attr(element, "target", "dev"),
        bus=_attr(element, "target", "bus"),
        kind=element.get("type", ""),
        driver_name=_attr(element, "driver", "name"),
        driver_type=_attr(element, "driver", "type"),
        driver_cache=_attr(element, "driver", "cache"),
        driver_discard=_attr(element, "driver", "discard"),
        source_file=_attr(element, "source", "file"),
        source_protocol=_attr(element, "source", "protocol"),
        serial=element.findtext("serial", default=""),
    )


def _nova(root: ET.Element) -> NovaInstance:
    metadata = root.find("metadata")
    if metadata is None:
        return NovaInstance()
    for element in metadata:
        namespace, _, local = element.tag[1:].partition("}")
        if local == "instance" and namespace.startswith(NOVA_NAMESPACE_PREFIX):
            ns = "{" + namespace + "}"
            user = element.find(f"{ns}owner/{ns}user")
            project = element.find(f"{ns}owner/{ns}project")
            return NovaInstance(
                name=element.findtext(f"{ns}name", default=""),
                flavor=_attr(element, f"{ns}flavor", "name"),
                user_name=(user.text or "") if user is not None else "",
                user_id=user.get("uuid", "") if user is not None else "",
                project_name=(project.text or "") if project is not None else "",
                project_id=project.get("uuid", "") if project is not None else "",
            )
    return NovaInstance()


def _memory_bytes(root: ET.Element, tag: str) -> int:
    element = root.find(tag)
    if element is None or not (element.text or "").strip():
        return 0
    unit = element.get("unit", "KiB")
    if unit not in _MEMORY_UNITS:
        raise TopologyError(f"domain XML <{tag}> has unknown unit {unit!r}")
    try:
        return int(element.text or "") * _MEMORY_UNITS[unit]
    except ValueError as exc:
        raise TopologyError(f"domain XML <{tag}> is not a number: {element.text!r}") from exc


def _vcpus(root: ET.Element) -> int:
    element = root.find("vcpu")
    if element is None:
        return 0
    text = element.get("current") or element.text or "0"
    try:
        return int(text)
    except ValueError as exc:
        raise TopologyError(f"domain XML <vcpu> is not a number: {text!r}") from exc


def parse_topology(xml_text: str) -> DomainTopology:
    """Parse a domain XML; raise TopologyError naming what is wrong."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise TopologyError(f"domain XML does not parse: {exc}") from exc
    if root.tag != "domain":
        raise TopologyError(f"domain XML root is <{root.tag}>, not <domain>")
    interfaces = tuple(_interface(e) for e in root.iterfind("./devices/interface"))
    disks = tuple(
        _disk(e)
        for e in root.iterfind("./devices/disk")
        if e.get("device", "disk") not in ("cdrom", "floppy")
    )
    os_type = root.find("./os/type")
    guest_os = (
        GuestOS(
            type=(os_type.text or "").strip(),
            arch=os_type.get("arch", ""),
            machine=os_type.get("machine", ""),
        )
        if os_type is not None
        else GuestOS()
    )
    try:
        placement = find_placement(root)
    except ValueError as exc:
        raise TopologyError(str(exc)) from exc
    return DomainTopology(
        interfaces=interfaces,
        placement=placement,
        disks=disks,
        os=guest_os,
        nova=_nova(root),
        memory_maximum_bytes=_memory_bytes(root, "memory"),
        memory_current_bytes=_memory_bytes(root, "currentMemory"),
        vcpus=_vcpus(root),
    )


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
