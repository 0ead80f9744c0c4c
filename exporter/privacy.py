"""Whether a guest interface is on a private, host-local network: the operator's lists, then libvirt's, then the bridge."""

from __future__ import annotations

import logging

from virtbalance.exporter.bridges import BridgeInspector
from virtbalance.exporter.topology import Interface

log = logging.getLogger(__name__)


class PrivacyJudge:
    """Decides each interface's privacy; ``private``/``public`` name bridges or networks the operator
    declared, which win over what libvirt and the bridge's ports say."""

    def __init__(
        self,
        inspector: BridgeInspector,
        private: frozenset[str] = frozenset(),
        public: frozenset[str] = frozenset(),
    ) -> None:
        self._inspector = inspector
        self._declared = {**dict.fromkeys(public, False), **dict.fromkeys(private, True)}
        self._unknown_bridges_logged: set[str] = set()

    def is_private(
        self, interface: Interface, networks_private: dict[str, bool], bridges: dict[str, bool]
    ) -> bool:
        """``networks_private``: libvirt's networks this scrape; ``bridges``: the scrape's answers so
        far, filled in here (a bridge's ports are read once a scrape)."""
        for name in (interface.network, interface.bridge):
            if name in self._declared:
                return self._declared[name]
        if interface.network and interface.network in networks_private:
            return networks_private[interface.network]
        if not interface.bridge:
            return False  # direct (macvtap) and user interfaces reach the outside, never a chunk
        if interface.bridge not in bridges:
            private = self._inspector.is_private(interface.bridge)
            if private is None:
                # Not visible from here: chaining too much is safe, splitting a chunk is not.
                if interface.bridge not in self._unknown_bridges_logged:
                    self._unknown_bridges_logged.add(interface.bridge)
                    log.warning("bridge %s is not visible; counted as private", interface.bridge)
                private = True
            bridges[interface.bridge] = private
        return bridges[interface.bridge]
