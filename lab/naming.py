"""Every name and address one lab uses, derived from its id so several labs coexist on one machine."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MAX_LAB_ID = 9
MAX_HOSTS = 9
STATE_ROOT = Path("/run/virtbalance-lab")
LAB_ID_ENV = "VIRTBALANCE_LAB_ID"
LIBVIRT_TCP_PORT = 16509
EXPORTER_PORT = 9178  # next to the Go exporter's 9177, so both can run on a lab host side by side
# The root-namespace services of lab N listen on SERVICE_PORT_BASE + 10 N + their offset (0..9).
SERVICE_PORT_BASE = 19090
SERVICE_PORTS_PER_LAB = 10


def lab_id_from_env(default: int = 0) -> int:
    """The lab id from VIRTBALANCE_LAB_ID (0..9), else ``default``."""
    text = os.environ.get(LAB_ID_ENV, "").strip()
    if not text:
        return default
    try:
        return check_lab_id(int(text))
    except ValueError:
        raise ValueError(f"{LAB_ID_ENV}={text!r} is not a lab id 0..{MAX_LAB_ID}") from None


def check_lab_id(lab_id: int) -> int:
    """Return ``lab_id`` if it is in 0..9, else raise ValueError."""
    if isinstance(lab_id, bool) or not isinstance(lab_id, int) or not 0 <= lab_id <= MAX_LAB_ID:
        raise ValueError(f"lab id must be an integer 0..{MAX_LAB_ID}, not {lab_id!r}")
    return lab_id


def service_port(lab_id: int, offset: int) -> int:
    """The port of lab ``lab_id``'s root-namespace service ``offset`` (labs never share one)."""
    if not 0 <= offset < SERVICE_PORTS_PER_LAB:
        raise ValueError(
            f"service port offset {offset} out of range 0..{SERVICE_PORTS_PER_LAB - 1}"
        )
    return SERVICE_PORT_BASE + lab_id * SERVICE_PORTS_PER_LAB + offset


class _ServicePort:
    """A ``LabNames`` attribute: the port of one root-namespace service of that lab."""

    def __init__(self, offset: int) -> None:
        self.offset = offset

    def __get__(self, names: LabNames, owner: type[LabNames] | None = None) -> int:
        return service_port(names.lab_id, self.offset)


@dataclass(frozen=True)
class LabNames:
    """Names of the bridge, namespaces, links, addresses, ports and directories of lab ``lab_id``.

    Addresses come from 198.18.0.0/15 (RFC 2544, reserved for benchmarking), one /24 per lab.
    """

    lab_id: int

    def __post_init__(self) -> None:
        check_lab_id(self.lab_id)

    @property
    def prefix(self) -> str:
        return f"vblab{self.lab_id}"

    @property
    def bridge(self) -> str:
        return self.prefix

    @property
    def gateway(self) -> str:
        return f"198.18.{self.lab_id}.1"

    @property
    def prefix_length(self) -> int:
        return 24

    def host_address(self, index: int) -> str:
        if not 0 <= index < MAX_HOSTS:
            raise ValueError(f"host index {index} out of range 0..{MAX_HOSTS - 1}")
        return f"198.18.{self.lab_id}.{11 + index}"

    def netns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    @property
    def netns_prefix(self) -> str:
        return f"{self.prefix}-"

    def veth(self, index: int) -> str:
        """The root-namespace end of host ``index``'s link (the other end becomes eth0 inside)."""
        return f"{self.prefix}h{index}"

    def veth_peer(self, index: int) -> str:
        """A temporary name for the namespace end until it is moved and renamed."""
        return f"{self.prefix}p{index}"

    @property
    def state_dir(self) -> Path:
        return STATE_ROOT / str(self.lab_id)

    # Its root-namespace services' ports, by their offsets from the lab's first port.
    prometheus_port = _ServicePort(0)
    victoriametrics_port = _ServicePort(1)
    vmalert_port = _ServicePort(2)
    alertmanager_port = _ServicePort(3)
    alertmanager_peer_port = _ServicePort(4)  # the second Alertmanager of a cluster pair (web)

    def alertmanager_cluster_port(self, instance: int) -> int:
        """Gossip port of Alertmanager ``instance`` (0 or 1) of a cluster pair."""
        return service_port(self.lab_id, 5 + instance)
