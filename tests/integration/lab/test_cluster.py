"""The session lab against real libvirt: separate hosts, private bridges, chunk migration with its load."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import libvirt
import pytest

from virtbalance.domain_metadata import NAMESPACE, Placement, parse_placement
from virtbalance.lab import Lab, LabAlreadyUp, LabError
from virtbalance.lab.scenario import load_scenario

pytestmark = [pytest.mark.integration, pytest.mark.lab]


def cpu_rates(lab: Lab, domains: list[str], seconds: float = 3.0) -> dict[str, float]:
    """Cores each domain's QEMU used over the same ``seconds``, from libvirt's bulk domain stats."""

    def cpu_times() -> dict[str, int]:
        placement = lab.placement()
        times = {}
        for name in domains:
            connection = lab.connection(placement[name])
            dom = connection.lookupByName(name)
            stats = connection.domainListGetStats([dom], libvirt.VIR_DOMAIN_STATS_CPU_TOTAL)
            times[name] = int(stats[0][1]["cpu.time"])
        return times

    first, began = cpu_times(), time.monotonic()
    time.sleep(seconds)
    last, elapsed = cpu_times(), time.monotonic() - began
    return {name: (last[name] - first[name]) / 1e9 / elapsed for name in domains}


def test_every_host_is_its_own_libvirtd(lab: Lab) -> None:
    uuids = set()
    for host in lab.hosts:
        connection = lab.connection(host.name)
        assert connection.getHostname() == host.name
        capabilities = ET.fromstring(connection.getCapabilities())
        uuids.add(capabilities.findtext("./host/uuid"))
    assert len(uuids) == len(lab.hosts), (
        "each host needs its own host UUID or libvirt refuses to migrate"
    )


def test_guests_run_where_the_scenario_puts_them_with_their_metadata(fresh_lab: Lab) -> None:
    scenario = load_scenario("default")
    assert fresh_lab.placement() == {d.name: d.host for d in scenario.domains}
    for spec in scenario.domains:
        dom = fresh_lab.connection(spec.host).lookupByName(spec.name)
        element = ET.fromstring(dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, NAMESPACE, 0))
        assert parse_placement(element) == Placement(spec.group, spec.anti_affinity, spec.pinned)
        assert fresh_lab.guest_level(spec.name) == (spec.load * 9 + 50) // 100


def test_private_bridges_exist_on_every_host_without_stp_delay(lab: Lab) -> None:
    for host in lab.hosts:
        for bridge in lab.scenario.private_networks:
            shown = lab.run_in_host(
                host.name, ["ip", "-d", "link", "show", bridge], capture_output=True, text=True
            )
            assert shown.returncode == 0, f"{bridge} missing on {host.name}: {shown.stderr}"
            assert "stp_state 0" in shown.stdout
            assert "forward_delay 0" in shown.stdout


def test_exec_in_host_runs_inside_its_namespaces(lab: Lab) -> None:
    host = lab.hosts[1]
    process = lab.exec_in_host(
        host.name, ["sh", "-c", "hostname; ip -4 -o addr show eth0"], stdout=-1, text=True
    )
    output, _ = process.communicate(timeout=10)
    hostname, address_line = output.splitlines()
    assert hostname == host.name
    assert f"{host.address}/24" in address_line


def test_chunk_member_migrates_live_and_keeps_its_load(fresh_lab: Lab) -> None:
    # app1 is the middle of the lan11+lan12 chunk on hv1
    assert fresh_lab.placement()["app1"] == "hv1"
    assert fresh_lab.set_load("app1", 50) == 56
    # The machine is shared and busy, so compare with an idle guest measured in the same window.
    rates = cpu_rates(fresh_lab, ["app1", "batch1"])
    before, idle_before = rates["app1"], rates["batch1"]

    seconds = fresh_lab.migrate("app1", "hv2")

    assert 0 < seconds < 30
    assert fresh_lab.running_hosts()["app1"] == ["hv2"]
    assert fresh_lab.connection("hv1").listDefinedDomains().count("app1") == 0, (
        "source keeps no definition"
    )
    assert fresh_lab.connection("hv2").lookupByName("app1").isPersistent()
    # its NICs are ports of the destination's lan11 and lan12 bridges
    for bridge in ("lan11", "lan12"):
        ports = fresh_lab.run_in_host(
            "hv2", ["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True
        )
        assert "vnet" in ports.stdout, f"app1 is not plugged into {bridge} on hv2"
    rates = cpu_rates(fresh_lab, ["app1", "batch1"])
    after, idle_after = rates["app1"], rates["batch1"]
    assert fresh_lab.guest_level("app1") == 5
    assert before > 4 * idle_before, (before, idle_before)
    assert after > 4 * idle_after, (
        f"load lost in migration: {after:.2f} vs idle {idle_after:.2f} cores"
    )


def test_reset_brings_moved_guests_and_loads_back(lab: Lab) -> None:
    lab.migrate("cache1", "hv3")
    lab.set_load("cache2", 30)
    lab.reset()
    placement = lab.placement()
    assert placement["cache1"] == "hv2"
    assert lab.guest_level("cache2") == 0
    assert lab.loads()["cache2"] == 0


def test_set_load_refuses_more_than_the_machine_budget(fresh_lab: Lab) -> None:
    fresh_lab.set_load("web1", 100)
    with pytest.raises(LabError, match="150%"):
        fresh_lab.set_load("app1", 100)
    assert fresh_lab.guest_level("app1") == 0


def test_up_again_says_already_up_and_changes_nothing(lab: Lab) -> None:
    placement = lab.placement()
    state = (lab.state_dir / "state.json").read_text()
    with pytest.raises(LabAlreadyUp, match="already up"):
        Lab.up("default", lab_id=lab.lab_id)
    assert lab.placement() == placement
    assert (lab.state_dir / "state.json").read_text() == state


def test_attach_sees_the_same_lab(lab: Lab) -> None:
    attached = Lab.attach(lab.lab_id)
    assert attached.hosts == lab.hosts
    assert attached.scenario == lab.scenario
    assert attached.placement() == lab.placement()
