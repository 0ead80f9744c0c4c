"""The actioner config's hosts for a lab: URIs, memory, and the CPUs declared or chosen per host."""

from __future__ import annotations

from virtbalance.lab.api import LabHost
from virtbalance.lab.demo.stack import actioner_hosts

HOSTS = [
    LabHost("hv1", "198.18.0.1", "qemu+tcp://198.18.0.1/system", "tcp://198.18.0.1", 2.0, 4 << 30),
    LabHost("hv2", "198.18.0.2", "qemu+tcp://198.18.0.2/system", "tcp://198.18.0.2", 1.5, 2 << 30),
]


def test_each_host_declares_its_scenario_cpus_by_default():
    assert actioner_hosts(HOSTS) == {
        "hv1": {
            "uri": "qemu+tcp://198.18.0.1/system",
            "migration_uri": "tcp://198.18.0.1",
            "cpus": 2.0,
            "memory": 4 << 30,
        },
        "hv2": {
            "uri": "qemu+tcp://198.18.0.2/system",
            "migration_uri": "tcp://198.18.0.2",
            "cpus": 1.5,
            "memory": 2 << 30,
        },
    }


def test_the_cpus_can_be_chosen_per_host():
    hosts = actioner_hosts(HOSTS, lambda h: 0.1 if h.name == "hv1" else 16)
    assert {name: host["cpus"] for name, host in hosts.items()} == {"hv1": 0.1, "hv2": 16}
    assert hosts["hv1"]["memory"] == 4 << 30
