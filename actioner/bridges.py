"""Private bridges on a destination host: find them, and create missing ones through libvirt networks."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from typing import Any

import libvirt

log = logging.getLogger(__name__)

# Networks the actioner creates are named after their bridge with this prefix, so an operator sees whose.
NETWORK_PREFIX = "vb-"


def bridge_exists(conn: Any, name: str) -> bool:
    """Whether a bridge called ``name`` exists on the host (a host interface or an active libvirt network)."""
    try:
        iface = conn.interfaceLookupByName(name)
        if iface is not None:
            return True
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in (
            libvirt.VIR_ERR_NO_INTERFACE,
            libvirt.VIR_ERR_NO_SUPPORT,
            libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
        ):
            raise
    for network in conn.listAllNetworks(libvirt.VIR_CONNECT_LIST_NETWORKS_ACTIVE):
        try:
            if network.bridgeName() == name:
                return True
        except libvirt.libvirtError:
            continue
    return False


def network_xml(bridge: str) -> str:
    """An isolated libvirt network owning the bridge: no IP, no forwarding, STP off, forward delay 0.

    STP's listening and learning states would hold the moved guests' ports for the forward delay
    (30 s by default) after they arrive; on a host-local bridge there is no loop to protect against.
    """
    root = ET.Element("network")
    ET.SubElement(root, "name").text = NETWORK_PREFIX + bridge
    ET.SubElement(root, "bridge", name=bridge, stp="off", delay="0")
    return ET.tostring(root, encoding="unicode")


def ensure_bridge(conn: Any, name: str) -> None:
    """Create the bridge as a persistent, autostarted libvirt network; libvirtError if libvirt refuses."""
    if bridge_exists(conn, name):
        return
    try:
        network = conn.networkLookupByName(NETWORK_PREFIX + name)
    except libvirt.libvirtError:
        network = conn.networkDefineXML(network_xml(name))
    if not network.isActive():
        network.create()
    network.setAutostart(1)
    log.info("created bridge %s (network %s%s)", name, NETWORK_PREFIX, name)


def network_active(conn: Any, name: str) -> bool:
    """Whether the libvirt network ``name`` is defined and active on the host."""
    try:
        return bool(conn.networkLookupByName(name).isActive())
    except libvirt.libvirtError:
        return False
