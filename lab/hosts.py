"""One lab host: a network namespace on the lab bridge, a private mount table and hostname, its libvirtd."""

from __future__ import annotations

import shlex
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from virtbalance.lab.cpu_share import run_in
from virtbalance.lab.errors import LabError
from virtbalance.lab.naming import LIBVIRT_TCP_PORT, LabNames
from virtbalance.lab.processes import log_tail
from virtbalance.lab.system import run, spawn_detached, start_time

# libvirt's private directories, each replaced inside the host by one of its own
PRIVATE_DIRS = {
    "etc": "/etc/libvirt",
    "lib": "/var/lib/libvirt",
    "cache": "/var/cache/libvirt",
    "log": "/var/log/libvirt",
}
# A host's disk images (guests with writable disks), inside its private /var/lib/libvirt: host-local
# storage, as on a hypervisor's own drives. Each host has a directory storage pool over it.
IMAGE_DIR = PRIVATE_DIRS["lib"] + "/images"
IMAGE_POOL = "default"
# libvirtd's runtime directory: a fresh tmpfs in each host, like /run after a boot
RUN_DIR = "/run/libvirt"
# every directory a host mounts over; the lab creates them (lab.preconditions), no package is relied on
MOUNT_POINTS = (*PRIVATE_DIRS.values(), RUN_DIR)
# libvirt's lock manager: each host runs virtlockd, and all of them keep their disk leases (one file per
# disk path) in one directory every host sees, as production hosts would on a shared NFS directory. A
# second QEMU on a writable disk, anywhere in the lab, is then refused by libvirt itself.
LOCK_MANAGER = "lockd"
LOCKSPACE_DIR = "lockspace"
# STP off, no forward delay: default STP timers made up most of the reconnection gap after a move.
# No netfilter on bridged frames: where br_netfilter is loaded, they would cross the machine's iptables
# FORWARD chain, and a FORWARD policy of DROP (Docker sets one) would cut the hosts off from each other.
BRIDGE_OPTIONS = (
    *("stp_state", "0", "forward_delay", "0"),
    *("nf_call_iptables", "0", "nf_call_ip6tables", "0", "nf_call_arptables", "0"),
)
_UUID_NAMESPACE = uuid.UUID("5b1e3c52-7d7e-4c56-9d1e-7a6c0f1b2a10")


@dataclass(frozen=True)
class HostLayout:
    """Where one host lives: its namespace, links, address and directories."""

    name: str
    index: int
    netns: str
    veth: str
    veth_peer: str
    address: str
    directory: Path

    @classmethod
    def of(cls, names: LabNames, name: str, index: int) -> HostLayout:
        return cls(
            name=name,
            index=index,
            netns=names.netns(name),
            veth=names.veth(index),
            veth_peer=names.veth_peer(index),
            address=names.host_address(index),
            directory=names.state_dir / "hosts" / name,
        )

    @property
    def image_dir(self) -> Path:
        """The host's IMAGE_DIR as the root namespace sees it (the lab writes images there)."""
        return self.directory / "lib" / IMAGE_DIR.removeprefix(PRIVATE_DIRS["lib"] + "/")

    @property
    def libvirtd_log(self) -> Path:
        return self.directory / "libvirtd.log"

    @property
    def host_uuid(self) -> str:
        """Unique per host and lab: libvirt refuses to migrate between daemons with the same UUID."""
        return str(uuid.uuid5(_UUID_NAMESPACE, f"{self.netns}/{self.address}"))


def create_lab_bridge(names: LabNames) -> None:
    """The root namespace's bridge joining every host of the lab; the root gets the .1 address."""
    run(["ip", "link", "add", names.bridge, "type", "bridge", *BRIDGE_OPTIONS])
    run(["ip", "addr", "add", f"{names.gateway}/{names.prefix_length}", "dev", names.bridge])
    run(["ip", "link", "set", names.bridge, "up"])


def create_host_network(
    names: LabNames, host: HostLayout, private_networks: tuple[str, ...]
) -> None:
    """Namespace, veth into the lab bridge (eth0 inside), loopback, and every private bridge."""
    run(["ip", "netns", "add", host.netns])
    run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", host.veth_peer])
    run(["ip", "link", "set", host.veth_peer, "netns", host.netns])
    run(["ip", "link", "set", host.veth, "master", names.bridge, "up"])
    inside = ["ip", "-n", host.netns]
    run([*inside, "link", "set", host.veth_peer, "name", "eth0"])
    run([*inside, "addr", "add", f"{host.address}/{names.prefix_length}", "dev", "eth0"])
    run([*inside, "link", "set", "eth0", "up"])
    run([*inside, "link", "set", "lo", "up"])
    for bridge in private_networks:
        for argv in private_bridge_commands(bridge):
            run([*inside, *argv])


def private_bridge_commands(bridge: str) -> list[list[str]]:
    """The ``ip`` arguments that create a lab private bridge and bring it up.

    See BRIDGE_OPTIONS.
    """
    return [
        ["link", "add", bridge, "type", "bridge", *BRIDGE_OPTIONS],
        ["link", "set", bridge, "up"],
    ]


def write_libvirt_config(host: HostLayout, lockspace: Path) -> None:
    """Private /etc/libvirt with the lab's libvirtd.conf, qemu.conf and lock manager's files.

    ``lockspace`` is the directory of disk leases that every host of the lab shares.
    """
    for key in PRIVATE_DIRS:
        (host.directory / key).mkdir(parents=True, exist_ok=True)
    etc = host.directory / "etc"
    # TCP without auth is acceptable only because it listens on the lab's own test-range address
    (etc / "libvirtd.conf").write_text(
        "\n".join(
            [
                "listen_tls = 0",
                "listen_tcp = 1",
                f'listen_addr = "{host.address}"',
                'auth_tcp = "none"',
                'auth_unix_ro = "none"',
                'auth_unix_rw = "none"',
                f'host_uuid = "{host.host_uuid}"',
                'log_outputs = "3:stderr"',
                "",
            ]
        )
    )
    (etc / "qemu.conf").write_text(
        "\n".join(
            [
                'user = "root"',
                'group = "root"',
                "dynamic_ownership = 0",
                "remember_owner = 0",
                'security_driver = "none"',
                f'migration_address = "{host.address}"',
                f'migration_host = "{host.address}"',
                # without this every guest start needs virtlogd's socket
                'stdio_handler = "file"',
                # the CPU controller is not usable in these namespaces; usage comes from /proc instead
                "cgroup_controllers = [ ]",
                f'lock_manager = "{LOCK_MANAGER}"',
                "",
            ]
        )
    )
    # every disk gets a lease automatically, named after its path, in the shared directory
    (etc / "qemu-lockd.conf").write_text(
        "\n".join(
            [
                "auto_disk_leases = 1",
                "require_lease_for_disks = 1",
                f'file_lockspace_dir = "{lockspace}"',
                "",
            ]
        )
    )
    (etc / "virtlockd.conf").write_text('log_outputs = "3:file:/var/log/libvirt/virtlockd.log"\n')


def rejoin_libvirtd(
    host: HostLayout, libvirtd: str, holder: int, cpu_group: Path | None = None
) -> int:
    """Start libvirtd again inside the namespaces that ``holder`` (a process left in them) keeps alive.

    Rejoining the old mount namespace keeps ``/run/libvirt``, whose status files let the new daemon
    adopt the running guests, as on a real hypervisor whose libvirtd is restarted. (A guest's QEMU would
    not do as the holder: libvirt gives each one a mount namespace of its own with a minimal ``/dev``.)
    nsenter execs, so the pid is libvirtd's. It starts in ``cpu_group`` (lab.cpu_share), if any.
    """
    pid_file = str(host.directory / "libvirtd.pid")
    argv = ["nsenter", "-t", str(holder), "--net", "--mount", "--uts", "--"]
    argv += [libvirtd, "--listen", "--pid-file", pid_file]
    return spawn_detached(run_in(cpu_group, argv), host.libvirtd_log)


def image_pool_xml() -> str:
    """A directory storage pool over IMAGE_DIR: where a migration with local storage creates images."""
    return (
        f"<pool type='dir'><name>{IMAGE_POOL}</name>"
        f"<target><path>{IMAGE_DIR}</path></target></pool>"
    )


def set_link(host: HostLayout, up: bool) -> None:
    """Bring the root-namespace end of the host's link up or down: down, the host drops off the network."""
    run(["ip", "link", "set", host.veth, "up" if up else "down"])


def start_libvirtd(
    host: HostLayout, libvirtd: str, virtlockd: str, cpu_group: Path | None = None
) -> int:
    """Start the host's virtlockd and libvirtd in its namespaces, detached; the pid IS libvirtd's.

    virtlockd is a daemon of its own, as on a real hypervisor: it keeps the guests' disk leases while
    libvirtd is killed and restarted (``rejoin_libvirtd`` finds it in the same ``/run/libvirt``).
    Both start in ``cpu_group`` (lab.cpu_share), if any, and so does every QEMU libvirtd starts.
    """
    mounts = [
        f"mount --bind {shlex.quote(str(host.directory / k))} {v}" for k, v in PRIVATE_DIRS.items()
    ]
    pid_file = shlex.quote(str(host.directory / "libvirtd.pid"))
    # in the host's own /run/libvirt: a daemon left in an older namespace keeps its pid file elsewhere
    lock_pid_file = f"{RUN_DIR}/virtlockd.pid"
    script = " && ".join(
        [
            *mounts,
            f"mount -t tmpfs -o mode=0755,size=16m tmpfs {RUN_DIR}",
            f"hostname {shlex.quote(host.name)}",
            f"{shlex.quote(virtlockd)} --daemon --pid-file {lock_pid_file}",
            f"exec {shlex.quote(libvirtd)} --listen --pid-file {pid_file}",
        ]
    )
    # ip netns exec also remounts /sys, so libvirt sees this namespace's bridges
    argv = ["ip", "netns", "exec", host.netns, "unshare", "--mount", "--uts", "--propagation"]
    argv += ["private", "sh", "-c", script]
    return spawn_detached(run_in(cpu_group, argv), host.libvirtd_log)


def wait_for_libvirtd(host: HostLayout, pid: int, timeout: float = 30.0) -> None:
    """Until libvirtd accepts TCP on the host's address; LabError with its log if it dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if start_time(pid) is None:
            raise LabError(f"libvirtd of {host.name} exited: {log_tail(host.libvirtd_log)}")
        try:
            with socket.create_connection((host.address, LIBVIRT_TCP_PORT), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise LabError(
        f"libvirtd of {host.name} did not listen on {host.address} in {timeout:.0f} s: {log_tail(host.libvirtd_log)}"
    )
