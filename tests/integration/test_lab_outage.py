"""The lab's outage hooks: a host's libvirtd dies and comes back, a host drops off the network."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import libvirt
import pytest

from lab import Lab, LabError
from lab.naming import LIBVIRT_TCP_PORT
from lab.state import read_state
from lab.teardown import namespace_pids

pytestmark = [pytest.mark.integration, pytest.mark.lab]

HOST = "hv2"


def recorded_libvirtd(lab: Lab, host: str) -> tuple[int, list[int]]:
    """(the host entry's libvirtd pid, the pids of the libvirtd process records) from the state file."""
    state = read_state(lab.state_dir) or {}
    (entry,) = [h for h in state["hosts"] if h["name"] == host]
    records = [p["pid"] for p in state["processes"] if p["role"] == f"libvirtd:{host}"]
    return int(entry["libvirtd_pid"]), records


def qemu_guests(lab: Lab, host: str) -> list[str]:
    """Guest names of the QEMU processes inside ``host``'s network namespace, from their command lines."""
    names = []
    for pid in namespace_pids(lab.names.netns(host)):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-name" in argv and "qemu" in argv[0].decode():
            names.append(
                argv[argv.index(b"-name") + 1].decode().split(",")[0].removeprefix("guest=")
            )
    return sorted(names)


def test_a_killed_libvirtd_leaves_its_guests_running_and_comes_back_to_them(fresh_lab: Lab) -> None:
    lab = fresh_lab
    guests = sorted(d for d, h in lab.placement().items() if h == HOST)
    assert guests
    old_pid, _ = recorded_libvirtd(lab, HOST)
    namespace = os.readlink(f"/proc/{old_pid}/ns/mnt")
    lab.stop_libvirtd(HOST)
    try:
        assert not lab.libvirtd_running(HOST)
        with pytest.raises(libvirt.libvirtError):
            libvirt.open(lab.host(HOST).libvirt_uri)
        # the guests' QEMU processes did not die with their daemon
        assert qemu_guests(lab, HOST) == guests
        with pytest.raises(LabError, match="libvirtd is gone"):
            lab.run_in_host(HOST, ["true"])
        with pytest.raises(LabError, match="cannot connect to hv2"):
            lab.running_hosts()  # nobody can tell where the guests run: no silent partial answer
    finally:
        new_pid = lab.start_libvirtd(HOST)
    assert new_pid != old_pid
    assert lab.start_libvirtd(HOST) == new_pid  # a no-op while it runs
    assert recorded_libvirtd(lab, HOST) == (new_pid, [new_pid])
    # the same guests, still running, adopted by the new daemon inside the same namespaces
    assert sorted(d for d, h in lab.placement().items() if h == HOST) == guests
    connection = lab.connection(HOST)
    assert connection.getHostname() == HOST
    for name in guests:
        dom = connection.lookupByName(name)
        assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        assert dom.isPersistent()
    assert lab.run_in_host(HOST, ["true"]).returncode == 0
    # in the namespaces it had: the same mounts (not a guest's private /dev), so guests still arrive,
    # a networked one too (its tap device needs /dev/net/tun), and leave
    assert os.readlink(f"/proc/{new_pid}/ns/mnt") == namespace
    lab.migrate("web1", HOST)
    lab.migrate(guests[0], "hv3")
    assert {lab.placement()[d] for d in ("web1", guests[0])} == {HOST, "hv3"}


def test_a_disconnected_host_is_unreachable_until_reconnected(lab: Lab) -> None:
    address = lab.host(HOST).address
    lab.disconnect(HOST)
    try:
        with pytest.raises(OSError), socket.create_connection((address, LIBVIRT_TCP_PORT), 5):
            pass
    finally:
        lab.reconnect(HOST)
    with socket.create_connection((address, LIBVIRT_TCP_PORT), 10):
        pass
    assert lab.connection(HOST).getHostname() == HOST
