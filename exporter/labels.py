"""Label sets of each domain's series, escaped once and kept across scrapes."""

from __future__ import annotations

from exporter.exposition import LabelSet
from exporter.topology import DomainTopology, Interface

DOMAIN_LABELS = ("domain", "uuid")
VCPU_LABELS = (*DOMAIN_LABELS, "vcpu")
BLOCK_LABELS = (*DOMAIN_LABELS, "source_file", "target_device")
NET_LABELS = (*DOMAIN_LABELS, "source_bridge", "target_device")
INTERFACE_LABELS = (*DOMAIN_LABELS, "interface", "bridge", "network", "private")
CHUNK_LABELS = (*DOMAIN_LABELS, "chunk")


class DomainLabels:
    """Every label set one domain's series use; device and chunk sets are made on first use.

    Valid for one (name, topology): the cache replaces it when either changes, which also drops
    sets of devices that were unplugged.
    """

    __slots__ = (
        "_blocks",
        "_chunks",
        "_interfaces",
        "_nets",
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

    def vcpu(self, index: int) -> LabelSet:
        while len(self._vcpus) <= index:
            self._vcpus.append(LabelSet(VCPU_LABELS, (*self.ident.values, str(len(self._vcpus)))))
        return self._vcpus[index]

    def block(self, path: str, target: str) -> LabelSet:
        key = (path, target)
        label_set = self._blocks.get(key)
        if label_set is None:
            label_set = self._blocks[key] = LabelSet(BLOCK_LABELS, (*self.ident.values, *key))
        return label_set

    def net(self, target: str) -> LabelSet:
        """The Go exporter's interface labels: source_bridge comes from the topology ("" unknown)."""
        label_set = self._nets.get(target)
        if label_set is None:
            bridge = self.topology.bridge_of(target) if self.topology else ""
            label_set = LabelSet(NET_LABELS, (*self.ident.values, bridge, target))
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
            label_set = LabelSet(INTERFACE_LABELS, (*self.ident.values, *values))
            self._interfaces[key] = label_set
        return label_set

    def chunk(self, chunk: str) -> LabelSet:
        label_set = self._chunks.get(chunk)
        if label_set is None:
            label_set = self._chunks[chunk] = LabelSet(CHUNK_LABELS, (*self.ident.values, chunk))
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
