"""The actioner's config: defaults, every problem listed with its path, nothing inline that should not be."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from virtbalance.actioner import main as actioner_main
from virtbalance.actioner.config import load_config, parse_config
from virtbalance.actioner.main import main
from virtbalance.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]


def minimal(tmp_path: Path) -> dict:
    (tmp_path / "token").write_text("t0ken\n")
    return {
        "hosts": {
            "hv1": "qemu+tls://hv1.example.org/system",
            "hv2": {"uri": "qemu+ssh://hv2/system"},
        },
        "webhook": {"token_file": "token"},
        "journal": {"path": "journal.sqlite"},
    }


def test_minimal_config_gets_the_defaults(tmp_path):
    config = parse_config(minimal(tmp_path), base=tmp_path)
    assert config.host_names == ("hv1", "hv2")
    assert config.host("hv2").uri == "qemu+ssh://hv2/system"
    assert config.journal_path == tmp_path / "journal.sqlite"
    assert config.read_token() == "t0ken"
    assert config.dry_run is False
    assert config.execution.migration_timeout == 600.0
    assert config.execution.copy_storage == "none"
    assert config.prometheus.url is None
    assert config.policy.cpu_high == 0.75
    assert config.webhook.listen_port == 9096


def test_every_problem_is_listed_with_its_path(tmp_path):
    data = minimal(tmp_path)
    data["hosts"]["hv3"] = {"uri": "qemu+tcp://root:pw@hv3/system", "cpus": -1, "colour": "red"}
    data["hosts"]["hv4"] = {"migration_uri": "http://x"}
    data["policy"] = {"cpu_high": 2, "vm_cooldown": "soon"}
    data["prometheus"] = {"url": "ftp://prom"}
    data["alertmanager"] = {"announce": True}
    data["webhook"]["token_file"] = "missing-token"
    data["webhook"]["listen"] = "nowhere"
    data["execution"] = {
        "copy_storage": "sometimes",
        "max_concurrent": 0,
        "migration_timeout": "0s",
    }
    data["extra"] = 1
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="actioner.yml", base=tmp_path)
    problems = info.value.problems
    expected_paths = [
        "extra:",
        "hosts.hv3.colour:",
        "hosts.hv3.uri: must not carry a password inline",
        "hosts.hv3.cpus:",
        "hosts.hv4.uri: missing",
        "policy.cpu_high:",
        "policy.vm_cooldown:",
        "prometheus.url:",
        "alertmanager.announce: needs alertmanager.url",
        "webhook.token_file: cannot read",
        "webhook.listen: expected HOST:PORT",
        "execution.copy_storage:",
        "execution.max_concurrent:",
        "execution.migration_timeout: must be positive",
    ]
    for path in expected_paths:
        assert any(p.startswith(path) for p in problems), (path, problems)
    assert str(info.value).startswith(f"actioner.yml: {len(problems)} problems:")


def test_hosts_are_required_and_uri_schemes_checked(tmp_path):
    data = minimal(tmp_path)
    data["hosts"] = {"hv1": "http://hv1/"}
    with pytest.raises(ConfigError) as info:
        parse_config(data, base=tmp_path)
    assert info.value.problems[0].startswith("hosts.hv1.uri: unsupported libvirt URI scheme 'http'")
    del data["hosts"]
    with pytest.raises(ConfigError) as info:
        parse_config(data, base=tmp_path)
    assert info.value.problems == ("hosts: missing (name -> libvirt URI)",)


def test_policy_file_or_inline_not_both(tmp_path):
    data = minimal(tmp_path)
    (tmp_path / "policy.yaml").write_text("cpu_high: 0.8\nhost_settle: 5m\n")
    data["policy_file"] = "policy.yaml"
    config = parse_config(data, base=tmp_path)
    assert (config.policy.cpu_high, config.policy.host_settle) == (0.8, 300.0)
    data["policy"] = {"cpu_high": 0.9}
    with pytest.raises(ConfigError, match="give either policy or policy_file"):
        parse_config(data, base=tmp_path)


def test_policy_file_problems_name_the_file(tmp_path):
    data = minimal(tmp_path)
    (tmp_path / "policy.yaml").write_text("cpu_high: lots\n")
    data["policy_file"] = "policy.yaml"
    with pytest.raises(ConfigError) as info:
        parse_config(data, base=tmp_path)
    assert info.value.problems[0].startswith("policy_file:cpu_high: expected a number")


def test_load_config_reports_unreadable_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("hosts: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_the_shipped_example_is_valid_apart_from_its_machine_paths(tmp_path):
    data = yaml.safe_load((REPO / "deploy" / "actioner.yml").read_text())
    (tmp_path / "token").write_text("x")
    data["webhook"]["token_file"] = str(tmp_path / "token")
    data["policy_file"] = str(REPO / "alerting-rules" / "policy.yaml")
    config = parse_config(data, base=tmp_path)
    assert config.host("hv1").migration_uri == "tcp://10.10.0.1"
    assert config.execution.shared_bridges == ("br0", "uplink*")
    assert config.webhook.max_body_bytes == 1024 * 1024


def with_host_memory(tmp_path: Path, raw: object) -> dict:
    data = minimal(tmp_path)
    data["hosts"]["hv2"]["memory"] = raw
    return data


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(1024, 1024), ("64GiB", 64 * 1024**3), ("512M", 512 * 1000**2), ("1.5KiB", 1536)],
)
def test_sizes(tmp_path, raw, expected):
    config = parse_config(with_host_memory(tmp_path, raw), base=tmp_path)
    assert config.host("hv2").memory_bytes == expected


@pytest.mark.parametrize("raw", ["", "12 parsecs", -5, True, "0"])
def test_bad_sizes(tmp_path, raw):
    with pytest.raises(ConfigError) as caught:
        parse_config(with_host_memory(tmp_path, raw), base=tmp_path)
    (problem,) = caught.value.problems
    assert problem.startswith("hosts.hv2.memory: ")


def test_actioner_refuses_to_start_on_a_bad_config(tmp_path, capsys):
    bad = tmp_path / "bad.yml"
    bad.write_text("hosts: {}\nexecution: {copy_storage: maybe}\n")
    assert main(["--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "hosts: expected a non-empty mapping" in err
    assert "execution.copy_storage" in err


def storage_copy(tmp_path, disks_uri, **execution):
    """The minimal configuration with hv2's disks reached at ``disks_uri`` and these execution keys."""
    data = minimal(tmp_path)
    data["hosts"]["hv2"]["disks_uri"] = disks_uri
    data["execution"] = execution
    return data


def test_storage_copy_settings_are_read_with_their_defaults(tmp_path):
    data = storage_copy(
        tmp_path,
        "tcp://10.0.0.2:49200",
        copy_storage="all",
        source_disk_after_move="remove",
        nbd_port=49153,
        migration_tls=True,
        max_concurrent_storage_copies=1,
    )
    execution = parse_config(data, base=tmp_path).execution
    assert (execution.copy_storage, execution.source_disk_after_move) == ("all", "remove")
    assert (execution.nbd_port, execution.migration_tls) == (49153, True)
    assert execution.max_concurrent_storage_copies == 1
    assert execution.storage_copy_mib_per_s == 20
    assert parse_config(data, base=tmp_path).host("hv2").disks_uri == "tcp://10.0.0.2:49200"
    defaults = parse_config(minimal(tmp_path), base=tmp_path).execution
    assert defaults.source_disk_after_move == "keep"
    assert (defaults.nbd_port, defaults.migration_tls) == (0, False)


def test_bad_storage_copy_settings_are_all_listed(tmp_path):
    data = storage_copy(
        tmp_path,
        "nbd:10.0.0.2",
        copy_storage="all",
        source_disk_after_move="shred",
        nbd_port=70000,
        max_concurrent_storage_copies=0,
        storage_copy_mib_per_s=-5,
        unsafe=True,
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(data, base=tmp_path)
    problems = caught.value.problems
    for expected in (
        "hosts.hv2.disks_uri: expected tcp://ADDRESS[:PORT]",
        "execution.source_disk_after_move: must be one of keep, remove, got 'shred'",
        "execution.nbd_port: must be a TCP port 1..65535, got 70000",
        "execution.max_concurrent_storage_copies: must be positive",
        "execution.storage_copy_mib_per_s: must be positive",
        "execution.unsafe: must be off when execution.copy_storage copies disks",
    ):
        assert any(p.startswith(expected) for p in problems), (expected, problems)


def test_storage_copy_settings_without_a_storage_copy_are_refused(tmp_path):
    data = storage_copy(
        tmp_path, "tcp://10.0.0.2:49200", source_disk_after_move="remove", nbd_port=49153
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(data, base=tmp_path)
    assert sorted(caught.value.problems) == [
        "execution.nbd_port: only used with execution.copy_storage all or incremental",
        "execution.source_disk_after_move: only used with execution.copy_storage all or incremental",
        "hosts.hv2.disks_uri: only used with execution.copy_storage all or incremental",
    ]


def test_a_host_name_is_checked_and_an_unknown_section_key_names_the_known_ones(tmp_path):
    data = minimal(tmp_path)
    data["hosts"]["hv 3"] = "qemu+ssh://hv3/system"
    data["webhook"]["colour"] = "red"
    with pytest.raises(ConfigError) as caught:
        parse_config(data, base=tmp_path)
    assert sorted(caught.value.problems) == [
        "hosts.hv 3: must be a host name (letters, digits, _.-), got 'hv 3'",
        "webhook.colour: unknown key 'colour' (known: token_file, max_body_bytes, alertnames,"
        " threads, listen)",
    ]


def test_the_process_entry_exits_with_mains_code_without_finalizing(monkeypatch, capsys):
    # os._exit skips the interpreter's finalization (libvirt's event thread could call into it):
    # what main() printed must be out first, and its code must be the process's.
    exits: list[int] = []
    monkeypatch.setattr(actioner_main.os, "_exit", exits.append)

    def main_printing() -> int:
        print("virtbalance-actioner: done")
        return 3

    monkeypatch.setattr(actioner_main, "main", main_printing)
    actioner_main.run()
    assert exits == [3]
    assert capsys.readouterr().out == "virtbalance-actioner: done\n"
