"""Snapshot parsing: defaults, round trip, and a clear error naming the field for every malformed case."""

from __future__ import annotations

import copy
import json

import pytest

from virtbalance.errors import ValidationError
from virtbalance.snapshot import DomainState, HostState, load_snapshot, parse_snapshot

MiB = 2**20

GOOD = {
    "version": 1,
    "time": 1700000000.0,
    "hosts": [
        {"name": "hv1", "cpus": 8, "memory_bytes": 8192 * MiB, "cpu_used": 7.0},
        {"name": "hv2", "cpus": 8.0, "memory_bytes": 8192 * MiB, "maintenance": True},
    ],
    "domains": [
        {
            "name": "web1",
            "host": "hv1",
            "vcpus": 2,
            "cpu_used": 1.5,
            "memory_bytes": 1024 * MiB,
            "private_networks": ["lan2", "lan1"],
            "group": "web",
            "anti_affinity": "front",
            "pinned": False,
            "last_migrated": 1699990000.0,
            "last_host": "hv2",
        },
        {"name": "db1", "host": "hv1", "vcpus": 4, "cpu_used": 2.0, "memory_bytes": 2048 * MiB},
        {"name": "idle", "host": "hv2", "vcpus": 1, "cpu_used": 0.25, "memory_bytes": 512 * MiB},
    ],
}


def test_parses_types_and_defaults():
    snap = parse_snapshot(GOOD)
    hv1, hv2 = snap.hosts
    assert hv1 == HostState("hv1", 8.0, 8192 * MiB, 7.0, 3072 * MiB, False)
    # cpu_used and memory_used_bytes default to the sum of the host's domains
    assert hv2 == HostState("hv2", 8.0, 8192 * MiB, 0.25, 512 * MiB, True)
    web1 = snap.domains[0]
    assert web1 == DomainState(
        "web1",
        "hv1",
        2,
        1.5,
        1024 * MiB,
        ("lan1", "lan2"),
        "web",
        "front",
        False,
        1699990000.0,
        "hv2",
    )
    assert snap.domains[1].private_networks == ()
    assert snap.domains[1].last_migrated is None
    assert snap.time == 1700000000.0


def test_round_trip_through_dict_and_file(tmp_path):
    snap = parse_snapshot(GOOD)
    assert parse_snapshot(snap.to_dict()) == snap
    path = tmp_path / "snap.json"
    path.write_text(snap.to_json())
    assert load_snapshot(path) == snap


def _broken(mutate):
    data = copy.deepcopy(GOOD)
    mutate(data)
    with pytest.raises(ValidationError) as info:
        parse_snapshot(data)
    return info.value


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.update(extra=1), "extra: unknown key"),
        (lambda d: d["hosts"][0].update(cpu=3), "hosts[0].cpu: unknown key"),
        (lambda d: d["domains"][1].update(colour="red"), "domains[1].colour: unknown key"),
        (lambda d: d["domains"][2].update(host="hv9"), "domains[2].host: unknown host 'hv9'"),
        (
            lambda d: d["domains"][1].update(memory_bytes=-1),
            "domains[1].memory_bytes: must not be negative",
        ),
        (
            lambda d: d["domains"][1].update(cpu_used=-0.5),
            "domains[1].cpu_used: must not be negative",
        ),
        (lambda d: d["hosts"][1].update(cpus=-4), "hosts[1].cpus: must not be negative"),
        (
            lambda d: d["hosts"][0].update(memory_used_bytes=-5),
            "hosts[0].memory_used_bytes: must not be negative",
        ),
        (lambda d: d["hosts"][0].update(cpus=0), "hosts[0].cpus: must be positive"),
        (lambda d: d["hosts"][0].pop("memory_bytes"), "hosts[0].memory_bytes: missing"),
        (lambda d: d["domains"][0].pop("vcpus"), "domains[0].vcpus: missing"),
        (lambda d: d["domains"][0].pop("cpu_used"), "domains[0].cpu_used: missing"),
        (lambda d: d["domains"][0].pop("memory_bytes"), "domains[0].memory_bytes: missing"),
        (lambda d: d["domains"][0].pop("host"), "domains[0].host: missing"),
        (
            lambda d: d["domains"][0].update(cpu_used="lots"),
            "domains[0].cpu_used: expected a number",
        ),
        (
            lambda d: d["domains"][0].update(memory_bytes=1.5),
            "domains[0].memory_bytes: expected a whole number",
        ),
        (
            lambda d: d["domains"][0].update(pinned="yes"),
            "domains[0].pinned: expected true or false",
        ),
        (
            lambda d: d["domains"][0].update(private_networks="lan1"),
            "domains[0].private_networks: expected a list",
        ),
        (
            lambda d: d["domains"][0].update(last_migrated=-3),
            "domains[0].last_migrated: must not be negative",
        ),
        (lambda d: d.pop("time"), "time: missing"),
        (lambda d: d.update(time=-1), "time: must not be negative"),
        (lambda d: d.update(version=2), "version: unsupported 2"),
        (lambda d: d.pop("hosts"), "hosts: missing"),
        (lambda d: d.update(domains={}), "domains: expected a list"),
        (
            lambda d: d["domains"].append(dict(d["domains"][0])),
            "domains[3].name: duplicate domain 'web1'",
        ),
        (lambda d: d["hosts"].append(dict(d["hosts"][0])), "hosts[2].name: duplicate host 'hv1'"),
    ],
)
def test_every_malformed_case_names_its_field(mutate, expected):
    error = _broken(mutate)
    assert any(p.startswith(expected) for p in error.problems), error.problems


def test_all_problems_are_reported_at_once():
    def mutate(d):
        d["domains"][0]["memory_bytes"] = -1
        d["hosts"][1]["cpus"] = "x"
        d["surprise"] = True

    error = _broken(mutate)
    assert len(error.problems) == 3
    assert "3 problems" in str(error)


def test_invalid_host_does_not_also_flag_its_domains():
    error = _broken(lambda d: d["hosts"][1].update(cpus=-1))
    assert error.problems == ("hosts[1].cpus: must not be negative, got -1",)


def test_load_rejects_bad_json_and_missing_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ValidationError, match="not valid JSON"):
        load_snapshot(path)
    with pytest.raises(ValidationError, match="cannot read"):
        load_snapshot(tmp_path / "absent.json")
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(ValidationError, match="expected a JSON object"):
        load_snapshot(path)
