"""Flags of virtbalance-exporter: defaults, validation, exit code 2 with a clear message."""

from __future__ import annotations

import pytest

from virtbalance.errors import ConfigError
from virtbalance.exporter.config import parse_config
from virtbalance.exporter.main import main


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


def test_inovex_flags_socket_path_and_driver():
    config = parse_config(
        [
            "--libvirt.uri=/var/run/libvirt/libvirt-sock-ro",
            "--libvirt.driver=qemu:///system",
            "--exporter.timeout=1m30s",
            "--exporter.max-concurrent-collects=2",
            "--web.telemetry-path=/",
            "--web.health-path=/health",
            "--log.level=debug",
            "--log.format=json",
        ]
    )
    assert config.libvirt_uri == "qemu+unix:///system?socket=/var/run/libvirt/libvirt-sock-ro"
    assert config.scrape_timeout == 90.0
    assert config.stats_concurrency == 2
    assert (config.telemetry_path, config.health_path) == ("/", "/health")
    assert (config.log_level, config.log_format) == ("debug", "json")
    # The socket path alone takes inovex's default driver; the driver alone is a URI.
    assert parse_config(["--libvirt.uri=/run/s"]).libvirt_uri == "qemu+unix:///system?socket=/run/s"
    assert parse_config(["--libvirt.driver=test:///default"]).libvirt_uri == "test:///default"


@pytest.mark.parametrize(
    ("text", "seconds"), [("3s", 3.0), ("250ms", 0.25), ("1h2m", 3720.0), ("1.5", 1.5)]
)
def test_exporter_timeout_takes_go_durations(text, seconds):
    assert parse_config([f"--exporter.timeout={text}"]).scrape_timeout == seconds


def test_inovex_flag_problems_are_named():
    with pytest.raises(ConfigError) as caught:
        parse_config(
            [
                "--scrape.timeout=2",
                "--exporter.timeout=3s",
                "--libvirt.stats-concurrency=2",
                "--exporter.max-concurrent-collects=3",
                "--libvirt.uri=qemu+tcp://h/system",
                "--libvirt.driver=qemu:///session",
                "--web.health-path=/metrics",
                "--log.level=chatty",
            ]
        )
    text = "\n".join(caught.value.problems)
    assert "--scrape.timeout and --exporter.timeout are the same setting" in text
    assert "--libvirt.stats-concurrency and --exporter.max-concurrent-collects" in text
    assert "--libvirt.driver: only applies when --libvirt.uri is a socket path" in text
    assert "--web.health-path: '/metrics' must start with / and differ" in text
    assert "--log.level: 'chatty'" in text
    with pytest.raises(ConfigError, match="--exporter.timeout: '3 seconds'"):
        parse_config(["--exporter.timeout=3 seconds"])
    with pytest.raises(ConfigError, match="--exporter.max-concurrent-collects: must be positive"):
        parse_config(["--exporter.max-concurrent-collects=0"])
    with pytest.raises(ConfigError, match="not a local driver URI"):
        parse_config(["--libvirt.uri=/run/s", "--libvirt.driver=qemu+tcp://h/system"])


def test_job_sweep_interval():
    assert parse_config([]).job_sweep_seconds == 0
    assert parse_config(["--libvirt.job-sweep-interval=60"]).job_sweep_seconds == 60
    with pytest.raises(ConfigError, match="--libvirt.job-sweep-interval: must be 0 or more"):
        parse_config(["--libvirt.job-sweep-interval=-1"])
    with pytest.raises(ConfigError, match="--libvirt.job-sweep-interval: 'often'"):
        parse_config(["--libvirt.job-sweep-interval=often"])


def test_version_flag_prints_and_exits_0(capsys):
    with pytest.raises(SystemExit) as caught:
        parse_config(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.startswith("virtbalance-exporter 0.")
