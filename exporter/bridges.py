"""Classify Linux bridges: private (only guest tap ports) or public (a physical or other uplink)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

SYSFS_NET = Path("/sys/class/net")
# libvirt names guest taps vnetN (older: tapN); tun_flags exists for every tun/tap device.
_GUEST_PORT_PREFIXES = ("vnet", "tap")


class BridgeInspector(Protocol):
    """Answers whether a bridge on this host is private; None when the bridge is not visible."""

    def is_private(self, bridge: str) -> bool | None: ...


class SysfsBridgeInspector:
    """Reads ``/sys/class/net/<bridge>/brif/*``: a bridge whose every port is a guest tap is private.

    Any other port (a NIC, bond, VLAN, veth into another namespace) is an uplink: traffic can leave
    the host, so the bridge never chains its domains into a chunk.
    """

    def __init__(self, root: Path = SYSFS_NET) -> None:
        self._root = root

    def is_private(self, bridge: str) -> bool | None:
        if not bridge or "/" in bridge or bridge in {".", ".."}:
            return None
        ports_dir = self._root / bridge / "brif"
        try:
            ports = [entry.name for entry in ports_dir.iterdir()]
        except OSError:
            return None
        return all(self._is_guest_port(port) for port in ports)

    def _is_guest_port(self, port: str) -> bool:
        if (self._root / port / "tun_flags").exists():
            return True
        return port.startswith(_GUEST_PORT_PREFIXES)
