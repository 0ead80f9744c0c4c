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

    @property
    def prometheus_port(self) -> int:
        return 19090 + self.lab_id * 10

    @property
    def alertmanager_port(self) -> int:
        return 19093 + self.lab_id * 10

    @property
    def alertmanager_peer_port(self) -> int:
        """The second Alertmanager of a cluster pair (its web port)."""
        return 19094 + self.lab_id * 10

    def alertmanager_cluster_port(self, instance: int) -> int:
        """Gossip port of Alertmanager ``instance`` (0 or 1) of a cluster pair."""
        return 19095 + instance + self.lab_id * 10

    @property
    def victoriametrics_port(self) -> int:
        return 19091 + self.lab_id * 10

    @property
    def vmalert_port(self) -> int:
        return 19092 + self.lab_id * 10
