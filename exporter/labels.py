"""Label sets of each domain's series, escaped once and kept across scrapes."""

from __future__ import annotations

from virtbalance.contract import LABEL_CHUNK, LABEL_DOMAIN, LABEL_UUID
from virtbalance.exporter.exposition import LabelSet
from virtbalance.exporter.topology import DomainTopology, Interface

# Every domain series has the label sets of both Go exporters (Debian's: domain and uuid;
# inovex's: domain) plus, for devices, the union of their device labels.
DOMAIN_LABELS = (LABEL_DOMAIN, LABEL_UUID)
VCPU_LABELS = (*DOMAIN_LABELS, "vcpu")
BLOCK_LABELS = (*DOMAIN_LABELS, "source_file", "target_device")
NET_LABELS = (*DOMAIN_LABELS, "source_bridge", "target_device")
INTERFACE_LABELS = (*DOMAIN_LABELS, "interface", "bridge", "network", "private")
CHUNK_LABELS = (*DOMAIN_LABELS, LABEL_CHUNK)
STATE_LABELS = (*DOMAIN_LABELS, "state_desc")
OS_LABELS = (*DOMAIN_LABELS, "os_type", "os_type_arch", "os_type_machine")
OPENSTACK_LABELS = (
    *DOMAIN_LABELS,
    *("instance_name", "instance_id", "flavor_name"),
    *("user_name", "user_id", "project_name", "project_id"),
)
BLOCK_INFO_LABELS = (
    *DOMAIN_LABELS,
    *("disk_type", "target_bus", "driver_name", "driver_type", "driver_cache", "driver_discard"),
    *("source_file", "source_protocol", "target_device", "serial"),
)
NET_INFO_LABELS = (
    *DOMAIN_LABELS,
    *("interface_type", "source_bridge", "target_device", "mac_address", "model_type", "mtu_size"),
)
POOL_LABELS = ("storage_pool",)

# libvirt's descriptions of virDomainState, inovex's state_desc label values.
STATE_DESCRIPTIONS = (
    "no state",
    "the domain is running",
    "the domain is blocked on resource",
    "the domain is paused by user",
    "the domain is being shut down",
    "the domain is shut off",
    "the domain is crashed",
    "the domain is suspended by guest power management",
)


class DomainLabels:
    """Every label set one domain's series use; device and chunk sets are made on first use.

    Valid for one (name, topology): the cache replaces it when either changes, which also drops
    sets of devices that were unplugged.
    """

    __slots__ = (
        "_block_infos",
        "_block_list",
        "_blocks",
        "_chunks",
        "_interfaces",
        "_net_infos",
        "_net_list",
        "_nets",
        "_os",
        "_states",
        "_vcpus",
        "ident",
        "name",
        "topology",
        "uuid",
    )

    def __init__(self, name: str, uuid: str, topology: DomainTopology | None) -> None:
        self.name = name  # plain attributes, not properties: read for every domain every scrape
        self.uuid = uuid
        self.topology = topology
        self.ident = LabelSet(DOMAIN_LABELS, (name, uuid))
        self._vcpus: list[LabelSet] = []
        self._blocks: dict[tuple[str, str], LabelSet] = {}
        self._nets: dict[str, LabelSet] = {}
        self._interfaces: dict[tuple[int, bool], LabelSet] = {}
        self._chunks: dict[str, LabelSet] = {}
        self._states: dict[int, LabelSet] = {}
        self._os: tuple[LabelSet, LabelSet] | None = None
        self._block_infos: list[LabelSet] | None = None
        self._net_infos: list[LabelSet] | None = None
        # The device label sets of the last scrape and what they were made from.
        self._block_list: tuple[tuple[object, ...], list[LabelSet]] = ((), [])
        self._net_list: tuple[tuple[object, ...], list[LabelSet]] = ((), [])

    def _own(self, names: tuple[str, ...], *values: str) -> LabelSet:
        """A label set of this domain: its domain labels first, then ``values`` for the rest of ``names``."""
        return LabelSet(names, (*self.ident.values, *values))

    def state(self, code: int) -> LabelSet:
        label_set = self._states.get(code)
        if label_set is None:
            text = STATE_DESCRIPTIONS[code] if 0 <= code < len(STATE_DESCRIPTIONS) else ""
            label_set = self._states[code] = self._own(STATE_LABELS, text)
        return label_set

    def guest(self) -> tuple[LabelSet, LabelSet]:
        """The libvirt_domain_info and libvirt_domain_openstack_info label sets (a topology is known)."""
        if self._os is None:
            assert self.topology is not None
            os, nova = self.topology.os, self.topology.nova
            self._os = (
                self._own(OS_LABELS, os.type, os.arch, os.machine),
                self._own(
                    OPENSTACK_LABELS,
                    *(nova.name, self.uuid, nova.flavor, nova.user_name, nova.user_id),
                    *(nova.project_name, nova.project_id),
                ),
            )
        return self._os

    def block_infos(self) -> list[LabelSet]:
        """One label set per disk of the topology (libvirt_domain_block_stats_info)."""
        if self._block_infos is None:
            assert self.topology is not None
            self._block_infos = [
                self._own(
                    BLOCK_INFO_LABELS,
                    *(d.kind, d.bus, d.driver_name, d.driver_type, d.driver_cache),
                    *(d.driver_discard, d.source_file, d.source_protocol, d.target, d.serial),
                )
                for d in self.topology.disks
            ]
        return self._block_infos

    def net_infos(self) -> list[LabelSet]:
        """One label set per plugged NIC of the topology (libvirt_domain_interface_stats_info)."""
        if self._net_infos is None:
            assert self.topology is not None
            self._net_infos = [
                self._own(NET_INFO_LABELS, i.kind, i.bridge, i.target, i.mac, i.model, i.mtu)
                for i in self.topology.interfaces
                if i.target
            ]
        return self._net_infos

    def vcpu(self, index: int) -> LabelSet:
        while len(self._vcpus) <= index:
            self._vcpus.append(self._own(VCPU_LABELS, str(len(self._vcpus))))
        return self._vcpus[index]

    def vcpus(self, count: int) -> list[LabelSet]:
        """Label sets of vCPUs 0 to ``count`` - 1."""
        if len(self._vcpus) < count:
            self.vcpu(count - 1)
        return self._vcpus[:count]

    def blocks(self, devices: tuple[object, ...]) -> list[LabelSet]:
        """Label sets of the disks whose bulk-stats (path, name) pairs ``devices`` lists in a row."""
        known, label_sets = self._block_list
        if devices != known:
            label_sets = [
                self.block(str(path or ""), str(target or ""))
                for path, target in zip(devices[::2], devices[1::2], strict=True)
            ]
            self._block_list = (devices, label_sets)
        return label_sets

    def nets(self, targets: tuple[object, ...]) -> list[LabelSet]:
        """Label sets of the interfaces whose bulk-stats names ``targets`` lists."""
        known, label_sets = self._net_list
        if targets != known:
            label_sets = [self.net(str(target or "")) for target in targets]
            self._net_list = (targets, label_sets)
        return label_sets

    def block(self, path: str, target: str) -> LabelSet:
        key = (path, target)
        label_set = self._blocks.get(key)
        if label_set is None:
            label_set = self._blocks[key] = self._own(BLOCK_LABELS, *key)
        return label_set

    def net(self, target: str) -> LabelSet:
        """The Go exporter's interface labels: source_bridge comes from the topology ("" unknown)."""
        label_set = self._nets.get(target)
        if label_set is None:
            bridge = self.topology.bridge_of(target) if self.topology else ""
            label_set = self._own(NET_LABELS, bridge, target)
            self._nets[target] = label_set
        return label_set

    def interface(self, index: int, interface: Interface, private: bool) -> LabelSet:
        """Labels of the topology's ``index``-th interface (the topology fixes the interfaces)."""
        key = (index, private)
        label_set = self._interfaces.get(key)
        if label_set is None:
            values = (
                interface.target,
                interface.bridge,
                interface.network,
                "true" if private else "false",
            )
            label_set = self._own(INTERFACE_LABELS, *values)
            self._interfaces[key] = label_set
        return label_set

    def chunk(self, chunk: str) -> LabelSet:
        label_set = self._chunks.get(chunk)
        if label_set is None:
            label_set = self._chunks[chunk] = self._own(CHUNK_LABELS, chunk)
        return label_set


class LabelCache:
    """DomainLabels per domain UUID, for the domains of the last scrape only."""

    def __init__(self) -> None:
        self._entries: dict[str, DomainLabels] = {}

    def get(self, name: str, uuid: str, topology: DomainTopology | None) -> DomainLabels:
        entry = self._entries.get(uuid)
        if entry is None or entry.topology is not topology or entry.name != name:
            entry = self._entries[uuid] = DomainLabels(name, uuid, topology)
        return entry

    def retain(self, uuids: set[str]) -> None:
        """Forget domains that left the host."""
        for uuid in [u for u in self._entries if u not in uuids]:
            del self._entries[uuid]

    def __len__(self) -> int:
        return len(self._entries)
