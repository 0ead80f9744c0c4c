"""Pure parts of the lab: load dial, sizes, names, domain XML, Prometheus and Alertmanager configs."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from virtbalance.lab import dial
from virtbalance.lab.domain_xml import domain_xml
from virtbalance.lab.monitoring import alertmanager_config, prometheus_config
from virtbalance.lab.naming import LabNames, check_lab_id, lab_id_from_env
from virtbalance.lab.scenario import DomainSpec
from virtbalance.sizes import format_size, parse_size


@pytest.mark.parametrize(
    ("percent", "level"), [(0, 0), (5, 0), (6, 1), (50, 5), (56, 5), (94, 8), (95, 9), (100, 9)]
)
def test_percent_maps_to_the_nearest_dial_level(percent: int, level: int) -> None:
    assert dial.level_for(percent) == level


def test_dial_rejects_out_of_range() -> None:
    for bad in (-1, 101, True):
        with pytest.raises(ValueError, match=r"0\.\.100"):
            dial.level_for(bad)


def test_keycodes_are_linux_digit_keys() -> None:
    assert [dial.keycode_for(n) for n in range(10)] == [11, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert dial.percent_for(9) == 100
    assert dial.percent_for(5) == 56


def test_serial_log_parsing() -> None:
    assert dial.last_level(b"") is None
    assert not dial.is_ready(b"")
    log = b"R\nL3\nL0\nL7\n"
    assert dial.is_ready(log)
    assert dial.last_level(log) == 7


def test_sizes() -> None:
    assert parse_size("64MiB") == 64 * 1024**2
    assert parse_size("1GiB") == 1024**3
    assert parse_size("1G") == 10**9
    assert parse_size(" 512 kib ") == 512 * 1024
    assert parse_size(4096) == 4096
    for bad in ("lots", "1XB", -1, 1.5, True, None):
        with pytest.raises(ValueError, match="size"):
            parse_size(bad)
    assert format_size(64 * 1024**2) == "64MiB"
    assert format_size(1000) == "1000"


def test_names_keep_labs_apart() -> None:
    a, b = LabNames(1), LabNames(2)
    assert a.bridge != b.bridge
    assert a.host_address(0) == "198.18.1.11"
    assert a.gateway == "198.18.1.1"
    assert a.netns("hv1") == "vblab1-hv1" != b.netns("hv1")
    assert len(LabNames(9).veth_peer(8)) <= 15
    assert {a.prometheus_port, a.alertmanager_port}.isdisjoint(
        {b.prometheus_port, b.alertmanager_port}
    )
    assert a.state_dir != b.state_dir
    for bad in (-1, 10, True, "1"):
        with pytest.raises(ValueError, match=r"0\.\.9"):
            check_lab_id(bad)  # type: ignore[arg-type]


def test_every_service_port_of_every_lab_is_its_own() -> None:
    ports = [
        port
        for names in map(LabNames, range(10))
        for port in (
            names.prometheus_port,
            names.victoriametrics_port,
            names.vmalert_port,
            names.alertmanager_port,
            names.alertmanager_peer_port,
            names.alertmanager_cluster_port(0),
            names.alertmanager_cluster_port(1),
        )
    ]
    assert len(set(ports)) == len(ports) == 70
    assert (LabNames(0).prometheus_port, LabNames(9).alertmanager_cluster_port(1)) == (19090, 19186)


def test_lab_id_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIRTBALANCE_LAB_ID", raising=False)
    assert lab_id_from_env() == 0
    monkeypatch.setenv("VIRTBALANCE_LAB_ID", "7")
    assert lab_id_from_env() == 7
    monkeypatch.setenv("VIRTBALANCE_LAB_ID", "12")
    with pytest.raises(ValueError, match="VIRTBALANCE_LAB_ID='12'"):
        lab_id_from_env()


def test_domain_xml_is_tcg_with_readonly_virtio_disk_bridges_and_serial_log() -> None:
    spec = DomainSpec(
        "app1", "hv1", vcpus=2, memory_bytes=64 * 1024**2, private_networks=("lan11", "lan12")
    )
    root = ET.fromstring(
        domain_xml(spec, Path("/s/guest.img"), Path("/s/app1.serial"), "/usr/bin/qemu")
    )
    assert root.get("type") == "qemu"
    assert root.findtext("name") == "app1"
    assert root.findtext("memory") == str(64 * 1024)
    assert root.findtext("vcpu") == "2"
    disk = root.find("./devices/disk")
    assert disk is not None
    assert disk.find("readonly") is not None
    assert disk.find("target").get("bus") == "virtio"  # type: ignore[union-attr]
    bridges = [i.find("source").get("bridge") for i in root.findall("./devices/interface")]  # type: ignore[union-attr]
    assert bridges == ["lan11", "lan12"]
    serial_source = root.find("./devices/serial/source")
    assert serial_source is not None
    assert serial_source.get("path") == "/s/app1.serial"
    assert serial_source.get("append") == "on"


def test_prometheus_config_labels_each_target_with_its_host() -> None:
    config = yaml.safe_load(
        prometheus_config(
            {"hv2": "198.18.1.12:9178", "hv1": "198.18.1.11:9178"},
            [Path("/r/a.yml")],
            "2s",
            "3s",
            "http://127.0.0.1:19103",
        )
    )
    assert config["global"] == {"scrape_interval": "2s", "evaluation_interval": "3s"}
    static = config["scrape_configs"][0]["static_configs"]
    assert static == [
        {"targets": ["198.18.1.11:9178"], "labels": {"host": "hv1"}},
        {"targets": ["198.18.1.12:9178"], "labels": {"host": "hv2"}},
    ]
    assert config["rule_files"] == ["/r/a.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "127.0.0.1:19103"
    ]
    assert "alerting" not in yaml.safe_load(prometheus_config({}, [], "2s", "2s", None))
    with pytest.raises(ValueError, match="scrape_interval"):
        prometheus_config({}, [], "0s", "2s", None)


def test_alertmanager_config_routes_overload_to_the_webhook_with_bearer_file() -> None:
    config = yaml.safe_load(
        alertmanager_config("http://127.0.0.1:9099/alerts", Path("/t/token"), "1s", "5s", "30s")
    )
    route = config["route"]
    assert route["group_by"] == ["alertname", "host"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "1s",
        "5s",
        "30s",
    )
    assert route["receiver"] == "discard"
    assert route["routes"] == [
        {"receiver": "virtbalance", "matchers": ['alertname="HostSustainedOverload"']}
    ]
    receivers = {r["name"]: r for r in config["receivers"]}
    (webhook,) = receivers["virtbalance"]["webhook_configs"]
    assert webhook["url"] == "http://127.0.0.1:9099/alerts"
    assert webhook["send_resolved"] is True
    assert webhook["http_config"]["authorization"] == {
        "type": "Bearer",
        "credentials_file": "/t/token",
    }
    assert "webhook_configs" not in receivers["discard"]
    with pytest.raises(ValueError, match="duration"):
        alertmanager_config("http://x", None, "soon", "5s", "30s")


def test_a_writable_disk_guest_gets_no_readonly_flag() -> None:
    spec = DomainSpec("store1", "ls1", disk="raw")
    root = ET.fromstring(
        domain_xml(spec, Path("/var/lib/libvirt/images/store1.img"), Path("/s/x"), "/usr/bin/qemu")
    )
    disk = root.find("./devices/disk")
    assert disk is not None
    assert disk.find("readonly") is None
    assert disk.find("source").get("file") == "/var/lib/libvirt/images/store1.img"  # type: ignore[union-attr]


def test_a_qcow2_overlay_guest_names_its_format_and_files() -> None:
    spec = DomainSpec("store1", "ls1", disk="qcow2")
    assert (spec.disk_file, spec.base_file) == ("store1.qcow2", "store1-base.img")
    assert (DomainSpec("x", "h", disk="raw").disk_file, DomainSpec("x", "h").base_file) == (
        "x.img",
        None,
    )
    root = ET.fromstring(domain_xml(spec, Path("/i/store1.qcow2"), Path("/s/x"), "/usr/bin/qemu"))
    driver = root.find("./devices/disk/driver")
    assert driver is not None and driver.get("type") == "qcow2"
