"""What one domain adds to each per-domain family, kept while the domain's structure holds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from exporter.exposition import LabelSet
from exporter.labels import DomainLabels
from exporter.source import DomainRecord

# A sample's value comes from one of three places, told apart by the source number: a stats
# key gathered every scrape (0, 1, ...: its place in the domain's row), a value derived each
# scrape (after the gathered ones) or a value fixed by the structure (CONSTANT - n, the n-th).
CONSTANT = -1
Derive = Callable[[DomainRecord], list[float]]


class Shape:
    """The samples of one domain: per family its label sets and where each value comes from.

    A scrape reuses it while the domain's labels are the same object (LabelCache keeps them for
    a name and topology), its record's flags are equal, no absent key appeared, every key it
    reads is still there and the keys that decide the series (state, counts, device names)
    hold the same values; otherwise the domain gets a new shape. ``read`` lists the gathered
    keys, then the present deciding ones: one C-level pass reads both.
    """

    __slots__ = (
        "absent",
        "constants",
        "derive",
        "flags",
        "keys",
        "labels",
        "probe",
        "read",
        "samples",
        "width",
    )

    def __init__(self, labels: DomainLabels, flags: tuple[Any, ...]) -> None:
        self.labels = labels
        self.flags = flags
        self.read: tuple[str, ...] = ()  # gathered keys, then the present deciding keys
        self.keys = 0  # how many of ``read`` are gathered
        self.probe: list[Any] = []  # the deciding keys' values when the shape was made
        self.absent: frozenset[str] = frozenset()  # keys that had no value: no sample
        self.derive: Derive | None = None
        self.constants: list[float] = []
        # family index -> (label sets, sources), in the family's sample order
        self.samples: dict[int, tuple[list[LabelSet], list[int]]] = {}
        self.width = 0  # values per scrape in the row: read plus derived

    def fits(self, labels: DomainLabels, flags: tuple[Any, ...], stats: dict[str, Any]) -> bool:
        """The checks before reading the row (which checks the rest, see DomainFamilies.build)."""
        return (
            self.labels is labels and self.flags == flags and stats.keys().isdisjoint(self.absent)
        )


class ShapeBuilder:
    """Collects one domain's samples while its shape is made (the slow path, once per change)."""

    def __init__(self, labels: DomainLabels, flags: tuple[Any, ...], stats: dict[str, Any]):
        self.shape = Shape(labels, flags)
        self.stats = stats
        self._probe_keys: list[str] = []
        self._keys: list[str] = []
        self._absent: set[str] = set()
        self._derived: list[tuple[int, LabelSet]] = []
        self._derivers: list[Derive] = []
        # (family, label set, kind, index): kind "k" gathered key, "d" derived, "c" constant
        self._pending: list[tuple[int, LabelSet, str, int]] = []

    def probe(self, key: str) -> Any:
        """The value of a key that decides which series the domain has (a count, a device name)."""
        self._probe_keys.append(key)
        return self.stats.get(key)

    def gathered(self, family: int, label_set: LabelSet, key: str) -> None:
        """A sample whose value is ``stats[key]`` each scrape; none while the key is missing."""
        if self.stats.get(key) is None:
            self._absent.add(key)
            return
        self._pending.append((family, label_set, "k", len(self._keys)))
        self._keys.append(key)

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
        deciding = [key for key in dict.fromkeys(self._probe_keys) if key in stats]
        self._absent.update(key for key in self._probe_keys if key not in stats)
        shape.read = (*self._keys, *deciding)
        shape.keys = len(self._keys)
        shape.probe = [stats[key] for key in deciding]
        shape.absent = frozenset(self._absent)
        gathered = len(shape.read)
        shape.width = gathered + len(self._derived)
        derivers = tuple(self._derivers)
        if len(derivers) == 1:
            shape.derive = derivers[0]
        elif derivers:
            shape.derive = lambda record: [v for derive in derivers for v in derive(record)]
        for family, label_set, kind, index in self._pending:
            label_sets, sources = shape.samples.setdefault(family, ([], []))
            label_sets.append(label_set)
            if kind == "k":
                sources.append(index)
            elif kind == "d":
                sources.append(gathered + index)
            else:
                sources.append(CONSTANT - index)
        return shape
