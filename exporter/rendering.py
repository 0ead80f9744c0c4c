"""The exposition text of each scrape, reusing what the last scrape of the same families rendered."""

from __future__ import annotations

import array
import threading
from collections.abc import Iterable, Sequence

from virtbalance.exporter.exposition import Family, LabelSet, escape_help, value_texts

# Ints in this range render as str(n) + ".0" (exposition._int_text): a %d template can do it.
_SMALL_INT_MIN = -(2**53)
_SMALL_INT_MAX = 10**6
_INT = frozenset({int})


def value_signature(values: Sequence[float]) -> bytes | None:
    """The bits of each value as a double, None when some value is not a number.

    A value's text depends only on ``float(value)`` (prometheus_client writes floatToGoString of
    it, and so does the renderer), so equal signatures mean equal texts. Unlike ``==`` it tells
    0.0 from -0.0, which render differently, and the same NaN equals itself.
    """
    try:
        return array.array("d", values).tobytes()
    except (TypeError, OverflowError):
        return None


class _Entry:
    """One family as last rendered: header, one text per label set, and the last text in full."""

    __slots__ = (
        "chunk",
        "head",
        "header",
        "label_sets",
        "prefixes",
        "signature",
        "template",
        "values",
    )

    def __init__(self, family: Family) -> None:
        name = family.sample_name
        self.head = (name, family.help, family.kind)
        self.header = f"# HELP {name} {escape_help(family.help)}\n# TYPE {name} {family.kind}\n"
        self.label_sets: list[LabelSet] = list(family.label_sets)
        # "\nname{labels} ": each line's start, after the previous line's value.
        self.prefixes = [f"\n{name}{label_set.text}" for label_set in self.label_sets]
        if self.prefixes:
            self.prefixes[0] = self.prefixes[0][1:]
        self.template: bytes | None = None
        self.values: list[float] | None = None  # the values last rendered
        self.signature: bytes | None = None  # theirs, once needed (None: not computed yet)
        self.chunk = b""

    def fits(self, family: Family) -> bool:
        # List equality compares LabelSets by identity: the collector keeps them across scrapes.
        return (
            self.head == (family.sample_name, family.help, family.kind)
            and self.label_sets == family.label_sets
        )

    def render(self, values: Sequence[float]) -> bytes:
        if values == self.values:
            # Equal numbers have equal texts (a text depends on float(value) only), but for
            # signed zeros (0.0 == -0.0): without a zero that is the end, with one the bits
            # decide. A family that changed fails the cheaper == (mostly at its first values).
            if 0 not in values:
                return self.chunk
            if self.signature is None:
                self.signature = value_signature(self.values)
            signature = value_signature(values)
            if signature is not None and signature == self.signature:
                return self.chunk
        else:
            signature = None
        self.chunk = self._text(values)
        self.values = list(values)  # a copy: the caller's list may change after rendering
        self.signature = signature
        return self.chunk

    def _text(self, values: Sequence[float]) -> bytes:
        if not values:
            return self.header.encode()
        kinds = set(map(type, values))
        if kinds == _INT and (min(values) > _SMALL_INT_MIN and max(values) < _SMALL_INT_MAX):
            # Counters below 1e6: one C-level %-format of the whole family, no string per value.
            if self.template is None:
                body = "".join(prefix.replace("%", "%%") + "%d.0" for prefix in self.prefixes)
                self.template = (self.header.replace("%", "%%") + body + "\n").encode()
            return self.template % tuple(values)
        parts = [""] * (2 * len(values))
        parts[0::2] = self.prefixes
        parts[1::2] = value_texts(values, kinds)
        return (self.header + "".join(parts) + "\n").encode()


class Renderer:
    """``exposition.render`` with memory: byte for byte the same text, less work per scrape.

    A family whose label sets are the last scrape's (the collector keeps each domain's label
    sets while the domain's name, topology and devices stay) keeps its line starts; one whose
    values are also unchanged keeps its whole text. Only the last scrape is remembered: a
    family that is gone is forgotten.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # HTTP requests may render at the same time
        self._entries: dict[str, _Entry] = {}

    def render(self, families: Iterable[Family]) -> bytes:
        with self._lock:
            entries: dict[str, _Entry] = {}
            chunks = []
            for family in families:
                name = family.sample_name
                entry = entries.get(name) or self._entries.get(name)
                if entry is None or not entry.fits(family):
                    entry = _Entry(family)
                chunks.append(entry.render(family.values))
                entries[name] = entry
            self._entries = entries
            return b"".join(chunks)
