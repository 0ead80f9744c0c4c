"""Flags of virtbalance-exporter: defaults, validation, exit code 2 with a clear message."""

from __future__ import annotations

import pytest

from exporter.config import parse_config
from exporter.main import main
from virtbalance.errors import ConfigError


def test_defaults_match_the_go_exporters_except_the_port():
    config = parse_config([])
    assert config.libvirt_uri == "qemu:///system"
    assert config.telemetry_path == "/metrics"
    assert (config.listen_host, config.listen_port) == ("", 9178)
    assert config.host_cpus is None and config.host_memory_bytes is None
    assert config.private_bridges == frozenset() and config.public_bridges == frozenset()


def test_all_flags_parse():
    config = parse_config(
        [
            "--libvirt.uri=qemu+tcp://10.0.0.1/system",
            "--web.listen-address=127.0.0.1:9300",
            "--web.telemetry-path=/m",
            "--host.cpus=8",
            "--host.memory-bytes=17179869184",
            "--bridge.private=lan1",
            "--bridge.private=lan2",
            "--bridge.public=br0",
            "--scrape.timeout=2.5",
        ]
    )
    assert config.libvirt_uri == "qemu+tcp://10.0.0.1/system"
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 9300)
    assert config.telemetry_path == "/m"
    assert (config.host_cpus, config.host_memory_bytes) == (8, 17179869184)
    assert config.private_bridges == {"lan1", "lan2"}
    assert config.public_bridges == {"br0"}
    assert config.scrape_timeout == 2.5


def test_every_problem_is_listed_at_once():
    with pytest.raises(ConfigError) as caught:
        parse_config(
            [
                "--host.cpus=zero",
                "--host.memory-bytes=-5",
                "--scrape.timeout=0",
                "--web.listen-address=localhost",
                "--bridge.private=lan1",
                "--bridge.public=lan1",
            ]
        )
    problems = caught.value.problems
    assert len(problems) == 5
    text = "\n".join(problems)
    for flag in (
        "--host.cpus",
        "--host.memory-bytes",
        "--scrape.timeout",
        "--web.listen-address",
        "lan1",
    ):
        assert flag in text


def test_unknown_flag_is_a_config_error():
    with pytest.raises(ConfigError, match="unrecognized arguments: --nope"):
        parse_config(["--nope"])


def test_main_exits_2_with_a_clear_message(capsys):
    assert main(["--host.cpus=-1"]) == 2
    err = capsys.readouterr().err
    assert "virtbalance-exporter" in err and "--host.cpus: must be positive, got -1" in err
