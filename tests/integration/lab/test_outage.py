"""The lab's outage hooks: a host's libvirtd dies and comes back, a host drops off the network."""

from __future__ import annotations

import os
import re
import socket

import libvirt
import pytest

from virtbalance.lab import Lab, LabError
from virtbalance.lab.ghosts import status_dir
from virtbalance.lab.naming import LIBVIRT_TCP_PORT
from virtbalance.lab.state import read_state

pytestmark = [pytest.mark.integration, pytest.mark.lab]

HOST = "hv2"


def recorded_libvirtd(lab: Lab, host: str) -> tuple[int, list[int]]:
    """(the host entry's libvirtd pid, the pids of the libvirtd process records) from the state file."""
    state = read_state(lab.state_dir) or {}
    (entry,) = [h for h in state["hosts"] if h["name"] == host]
    records = [p["pid"] for p in state["processes"] if p["role"] == f"libvirtd:{host}"]
    return int(entry["libvirtd_pid"]), records


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
        assert sorted(lab.qemu_guests(HOST)) == guests
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


def holder(lab: Lab, host: str) -> int:
    """The process that keeps a stopped libvirtd's namespaces (lab.stop_libvirtd starts it)."""
    state = read_state(lab.state_dir) or {}
    (pid,) = [p["pid"] for p in state["processes"] if p["role"] == f"holder:{host}"]
    return int(pid)


def test_repair_clears_a_domain_listed_with_no_qemu_behind_it_and_keeps_the_running_copy(
    fresh_lab: Lab,
) -> None:
    """The ghost a libvirtd killed inside a guest's start-up handshake leaves (lab/ghosts.py): made
    here as libvirt made it in the fault campaign, a status file with pid 0 on the destination."""
    lab = fresh_lab
    name, home, ghost_host = "web1", "hv1", "hv3"
    real_id = lab.connection(home).lookupByName(name).ID()
    home_pid, _ = recorded_libvirtd(lab, home)
    status = (status_dir(home_pid) / f"{name}.xml").read_text()
    ghost = re.sub(
        r"<domstatus [^>]*>",
        "<domstatus state='paused' reason='starting up' pid='0'>",
        status,
        count=1,
    )
    lab.stop_libvirtd(ghost_host)
    try:
        (status_dir(holder(lab, ghost_host)) / f"{name}.xml").write_text(ghost)
    finally:
        lab.start_libvirtd(ghost_host)
    listed = lab.connection(ghost_host).lookupByName(name)
    # libvirt keeps it as the campaign saw it: active, yet no QEMU of it runs on that host
    assert listed.isActive() == 1
    assert name not in lab.qemu_guests(ghost_host)

    found = lab.repair()

    assert found == [
        f"{name}: listed active on {ghost_host} with no QEMU (a libvirtd killed while starting it), "
        "its status removed"
    ]
    names = [d.name() for d in lab.connection(ghost_host).listAllDomains()]
    assert name not in names
    # the real copy was neither restarted nor touched, and the host's own guests still run
    assert lab.connection(home).lookupByName(name).ID() == real_id
    assert sorted(lab.qemu_guests(ghost_host)) == sorted(names)


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
