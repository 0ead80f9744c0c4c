"""What one domain adds to each per-domain family, kept while the domain's structure holds."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from virtbalance.exporter.exposition import LabelSet
from virtbalance.exporter.labels import DomainLabels
from virtbalance.exporter.source import DomainRecord

# A sample's value comes from one of three places, told apart by the source number: a stats
# value read every scrape (0, 1, ...: its key's place in the stats dict), a value derived each
# scrape (after the stats values) or a value fixed by the structure (CONSTANT - n, the n-th).
CONSTANT = -1
Derive = Callable[[DomainRecord], list[float]]
Getter = Callable[[Any], tuple[Any, ...]]


def getter(indices: list[Any]) -> Getter:
    """operator.itemgetter that always answers a tuple (itemgetter(i) answers the item).

    The indices are list positions (a family's column) or dict keys (a shape's deciding keys).
    """
    if len(indices) > 1:
        return operator.itemgetter(*indices)
    if indices:
        index = indices[0]
        return lambda values: (values[index],)
    return lambda values: ()


class Shape:
    """The samples of one domain: per family its label sets and where each value comes from.

    A scrape reuses it while the domain's labels are the same object (LabelCache keeps them for
    a name and topology), its record's flags are equal, its stats dict has the same keys in the
    same order (libvirt writes a domain's fields in a fixed order) and the keys that decide the
    series (state, counts, device names) hold the same values; otherwise the domain gets a new
    shape. With the keys in place, the values are read positionally (``stats.values()``, one
    C-level copy) instead of looked up one by one.
    """

    __slots__ = (
        "constants",
        "derive",
        "flags",
        "labels",
        "order",
        "probe",
        "probe_of",
        "samples",
        "width",
    )

    def __init__(self, labels: DomainLabels, flags: tuple[Any, ...]) -> None:
        self.labels = labels
        self.flags = flags
        self.order: list[str] = []  # the stats keys, in the dict's order
        self.probe_of: Getter = getter([])  # the deciding values, from the stats dict
        self.probe: tuple[Any, ...] = ()  # what they were when the shape was made
        self.derive: Derive | None = None
        self.constants: list[float] = []
        # family index -> (label sets, sources), in the family's sample order
        self.samples: dict[int, tuple[list[LabelSet], list[int]]] = {}
        self.width = 0  # values per scrape in the row: stats values plus derived


class ShapeBuilder:
    """Collects one domain's samples while its shape is made (the slow path, once per change)."""

    def __init__(self, labels: DomainLabels, flags: tuple[Any, ...], stats: dict[str, Any]):
        self.shape = Shape(labels, flags)
        self.stats = stats
        self._probe_keys: list[str] = []
        self._derived: list[tuple[int, LabelSet]] = []
        self._derivers: list[Derive] = []
        # (family, label set, kind, what): "k" a stats key, "d" derived, "c" a constant's index
        self._pending: list[tuple[int, LabelSet, str, Any]] = []

    def probe(self, key: str) -> Any:
        """The value of a key that decides which series the domain has (a count, a device name)."""
        self._probe_keys.append(key)
        return self.stats.get(key)

    def gathered(self, family: int, label_set: LabelSet, key: str) -> None:
        """A sample whose value is ``stats[key]`` each scrape; none while the key is missing."""
        if self.stats.get(key) is not None:
            self._pending.append((family, label_set, "k", key))

    def constant(self, family: int, label_set: LabelSet, value: float) -> None:
        """A sample whose value the structure fixes (info series, timed-out flags)."""
        self._pending.append((family, label_set, "c", len(self.shape.constants)))
        self.shape.constants.append(value)

    def derived(self, derive: Derive, samples: list[tuple[int, LabelSet]]) -> None:
        """Samples whose values ``derive`` computes from the record each scrape, one each."""
        for family, label_set in samples:
            self._pending.append((family, label_set, "d", len(self._derived)))
            self._derived.append((family, label_set))
        self._derivers.append(derive)

    def finish(self) -> Shape:
        shape = self.shape
        stats = self.stats
        # Copies of the keys, not libvirt's own objects: each scrape's dict has new key
        # strings, and comparing equal strings (not the same ones) is what a scrape costs.
        shape.order = [key.encode().decode() for key in stats]
        position = {key: index for index, key in enumerate(stats)}
        # A deciding key that is missing reads as None: its appearing changes the key order.
        # Looked up by the copies too: a scrape's lookups compare strings, as they would with
        # libvirt's new key strings (the same objects would compare by identity).
        deciding = [
            shape.order[position[key]] for key in dict.fromkeys(self._probe_keys) if key in position
        ]
        shape.probe_of = getter(deciding)
        shape.probe = shape.probe_of(stats)
        gathered = len(stats)
        shape.width = gathered + len(self._derived)
        derivers = tuple(self._derivers)
        if len(derivers) == 1:
            shape.derive = derivers[0]
        elif derivers:
            shape.derive = lambda record: [v for derive in derivers for v in derive(record)]
        for family, label_set, kind, what in self._pending:
            label_sets, sources = shape.samples.setdefault(family, ([], []))
            label_sets.append(label_set)
            if kind == "k":
                sources.append(position[what])
            elif kind == "d":
                sources.append(gathered + what)
            else:
                sources.append(CONSTANT - what)
        return shape
