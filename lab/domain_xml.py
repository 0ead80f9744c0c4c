"""Libvirt domain XML for a lab guest: TCG, its boot disk (shared read-only or its own writable), bridges, serial."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from virtbalance.lab.scenario import DomainSpec


def domain_xml(domain: DomainSpec, image: Path, serial_log: Path, emulator: str) -> str:
    """The persistent definition of ``domain``; placement metadata is set separately via setMetadata."""
    root = ET.Element(
        "domain", type="qemu"
    )  # TCG: no KVM needed, and a live migration like any other
    ET.SubElement(root, "name").text = domain.name
    ET.SubElement(root, "memory", unit="KiB").text = str(domain.memory_bytes // 1024)
    ET.SubElement(root, "vcpu").text = str(domain.vcpus)
    os_element = ET.SubElement(root, "os")
    ET.SubElement(os_element, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(os_element, "boot", dev="hd")
    ET.SubElement(root, "clock", offset="utc")
    ET.SubElement(root, "on_poweroff").text = "destroy"
    ET.SubElement(root, "on_reboot").text = "restart"
    ET.SubElement(root, "on_crash").text = "destroy"
    devices = ET.SubElement(root, "devices")
    ET.SubElement(devices, "emulator").text = emulator
    disk = ET.SubElement(devices, "disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type="qcow2" if domain.disk == "qcow2" else "raw")
    ET.SubElement(disk, "source", file=str(image))
    ET.SubElement(disk, "target", dev="vda", bus="virtio")
    if not domain.writable_disk:
        # read-only on virtio: libvirt then migrates without shared storage (IDE cannot be read-only)
        ET.SubElement(disk, "readonly")
    for network in domain.private_networks:
        interface = ET.SubElement(devices, "interface", type="bridge")
        ET.SubElement(interface, "source", bridge=network)
        ET.SubElement(interface, "model", type="virtio")
    # append: the destination of a migration keeps writing to the same log
    serial = ET.SubElement(devices, "serial", type="file")
    ET.SubElement(serial, "source", path=str(serial_log), append="on")
    ET.SubElement(serial, "target", port="0")
    ET.SubElement(devices, "input", type="keyboard", bus="ps2")
    video = ET.SubElement(devices, "video")
    ET.SubElement(video, "model", type="none")
    ET.SubElement(devices, "memballoon", model="virtio")
    return ET.tostring(root, encoding="unicode")
