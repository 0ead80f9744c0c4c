"""virtbalance's per-domain facts kept in libvirt domain ``<metadata>``, which travels with live migration.

The element, set with ``virDomainSetMetadata(VIR_DOMAIN_METADATA_ELEMENT, xml, PREFIX, NAMESPACE, ...)``::

    <virtbalance:placement xmlns:virtbalance="https://virtbalance.org/xmlns/domain/1"
        group="web" anti-affinity="db-replicas" pinned="true"/>

``group`` chains the domain into a chunk with every domain of the same group on its host; ``pinned``
keeps it (and so its whole chunk) where it is; ``anti-affinity`` keeps domains sharing the key apart.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

NAMESPACE = "https://virtbalance.org/xmlns/domain/1"
PREFIX = "virtbalance"
ELEMENT = "placement"
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0", ""})


@dataclass(frozen=True)
class Placement:
    """The placement facts of one domain; all optional."""

    group: str | None = None
    anti_affinity: str | None = None
    pinned: bool = False

    def to_xml(self) -> str:
        """The element body for ``setMetadata`` (libvirt adds the namespace declaration)."""
        element = ET.Element(ELEMENT)
        if self.group:
            element.set("group", self.group)
        if self.anti_affinity:
            element.set("anti-affinity", self.anti_affinity)
        if self.pinned:
            element.set("pinned", "true")
        return ET.tostring(element, encoding="unicode")


def parse_placement(element: ET.Element | None) -> Placement:
    """Read a ``placement`` element (namespaced or as returned by ``dom.metadata``); None -> defaults.

    Raises ValueError for a ``pinned`` value that is neither true nor false.
    """
    if element is None:
        return Placement()
    pinned_text = element.get("pinned", "").strip().lower()
    if pinned_text not in _TRUE | _FALSE:
        raise ValueError(f"metadata placement pinned={pinned_text!r} is not true/false")
    return Placement(
        group=element.get("group") or None,
        anti_affinity=element.get("anti-affinity") or None,
        pinned=pinned_text in _TRUE,
    )


def find_placement(domain_xml_root: ET.Element) -> Placement:
    """Find the placement element inside a full domain XML tree (``<domain>...<metadata>``)."""
    return parse_placement(domain_xml_root.find(f"./metadata/{{{NAMESPACE}}}{ELEMENT}"))
