"""The scenario loader: the shipped scenarios load, and each kind of bad input names its field and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from virtbalance.chunks import ChunkMember, find_chunks
from virtbalance.errors import ValidationError
from virtbalance.lab.scenario import load_scenario, parse_scenario, shipped_scenarios

GOOD = """\
name: tiny
hosts:
  - {name: a, cpus: 1, memory: 256MiB}
  - {name: b, cpus: 1.5, memory: 268435456}
domains:
  - {name: x, host: a, memory: 64MiB, private_networks: [lan1], load: 20}
  - {name: y, host: a, private_networks: [lan1], pinned: true, group: g, anti_affinity: k}
"""


def problems(text: str) -> tuple[str, ...]:
    with pytest.raises(ValidationError) as caught:
        parse_scenario(text, "s.yaml")
    assert str(caught.value).startswith("s.yaml")
    return caught.value.problems


def test_a_good_scenario_parses_with_defaults() -> None:
    scenario = parse_scenario(GOOD)
    assert [h.name for h in scenario.hosts] == ["a", "b"]
    assert scenario.host("b").cpus == 1.5
    assert scenario.host("b").memory_bytes == 256 * 1024**2
    y = scenario.domain("y")
    assert (y.vcpus, y.memory_bytes, y.load) == (1, 64 * 1024**2, 0)
    assert y.placement.pinned and y.placement.group == "g" and y.placement.anti_affinity == "k"
    assert scenario.private_networks == ("lan1",)


def test_default_scenario_has_3_hosts_a_dozen_guests_two_chunks_and_independents() -> None:
    scenario = load_scenario("default")
    assert len(scenario.hosts) == 3
    assert len(scenario.domains) == 12
    chunks = []
    for host in scenario.hosts:
        members = [
            ChunkMember(d.name, d.private_networks, d.group) for d in scenario.domains_on(host.name)
        ]
        chunks.extend(find_chunks(members))
    multi = sorted(c.id for c in chunks if len(c.members) > 1)
    assert multi == ["group:cache", "lan11+lan12"]
    assert sum(len(c.members) == 1 for c in chunks) >= 4
    # raising hv1's chunk to 40% each overloads hv1 (1 declared CPU) but not the cluster
    hv1 = scenario.host("hv1")
    raised = (
        3 * 0.40
        + sum(d.load for d in scenario.domains_on("hv1") if d.name not in {"web1", "app1", "db1"})
        / 100
    )
    assert raised / hv1.cpus > 0.75
    cluster = (sum(d.load for d in scenario.domains) / 100 + 1.2) / sum(
        h.cpus for h in scenario.hosts
    )
    assert cluster < 0.65


def test_thesis_scenario_has_the_two_chunks_of_project_ft() -> None:
    scenario = load_scenario("thesis-ft")
    assert len(scenario.hosts) == 3
    members = {
        h.name: find_chunks(
            ChunkMember(d.name, d.private_networks, d.group) for d in scenario.domains_on(h.name)
        )
        for h in scenario.hosts
    }
    by_id = {c.id: set(c.members) for chunks in members.values() for c in chunks}
    assert by_id["lan21"] == {"h1", "h2", "h3"}
    assert by_id["lan11+lan12"] == {"home", "fly", "away", "north", "east", "south", "west"}
    assert {
        d.memory_bytes for d in scenario.domains if d.name.startswith("h") and d.name[1:].isdigit()
    } == {64 * 1024**2}
    assert scenario.domain("north").memory_bytes == 32 * 1024**2


def test_every_shipped_scenario_loads() -> None:
    assert {"default", "thesis-ft"} <= set(shipped_scenarios())
    for name in shipped_scenarios():
        assert load_scenario(name).name == name


def test_unknown_top_level_key_names_key_and_line() -> None:
    (problem,) = problems(GOOD + "extra: 1\n")
    assert problem.startswith("extra (line 8): unknown key 'extra'")


def test_unknown_domain_key_names_its_path_and_line() -> None:
    text = GOOD.replace("pinned: true", "pinnned: true")
    (problem,) = problems(text)
    assert problem.startswith("domains[1].pinnned (line 7): unknown key")


def test_domain_on_undeclared_host() -> None:
    (problem,) = problems(GOOD.replace("{name: x, host: a", "{name: x, host: c"))
    assert "domains[0].host (line 6)" in problem
    assert "'c' is not a declared host (declared: a, b)" in problem


def test_more_memory_than_the_host_declares() -> None:
    (problem,) = problems(GOOD.replace("memory: 256MiB", "memory: 100MiB"))
    assert problem.startswith(
        "hosts[0].memory (line 3): host a declares 100MiB but its domains need 128MiB"
    )


def test_duplicate_domain_name() -> None:
    (problem,) = problems(GOOD.replace("{name: y,", "{name: x,"))
    assert problem.startswith("domains[1].name (line 7): duplicate domain name 'x'")


def test_duplicate_host_name() -> None:
    (problem,) = problems(GOOD.replace("{name: b,", "{name: a,"))
    assert problem.startswith("hosts[1].name (line 4): duplicate host name 'a'")


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("load: 20", "load: 120", "domains[0].load"),
        ("load: 20", "load: high", "domains[0].load"),
        ("memory: 64MiB", "memory: lots", "domains[0].memory"),
        ("memory: 64MiB", "memory: 8MiB", "domains[0].memory"),
        ("cpus: 1,", "cpus: 0,", "hosts[0].cpus"),
        ("cpus: 1,", "cpus: true,", "hosts[0].cpus"),
        ("pinned: true", "pinned: maybe", "domains[1].pinned"),
        ("[lan1], load", "[this-name-is-too-long], load", "domains[0].private_networks[0]"),
        ("{name: x,", "{name: 'x y',", "domains[0].name"),
        ("{name: a,", "{name: A_1,", "hosts[0].name"),
    ],
)
def test_bad_values_name_their_field(old: str, new: str, field: str) -> None:
    text = GOOD.replace(old, new, 1)
    assert text != GOOD
    found = problems(text)
    assert any(p.startswith(field + " (line") for p in found), found


def test_every_problem_is_listed_at_once() -> None:
    text = GOOD.replace("load: 20", "load: -1").replace("host: a, private", "host: z, private")
    found = problems(text)
    assert len(found) == 2


def test_total_initial_load_over_the_machine_budget() -> None:
    text = GOOD.replace("load: 20", "load: 100").replace("pinned: true", "pinned: true, load: 60")
    (problem,) = problems(text)
    assert problem.startswith("domains (line 5): initial loads add up to 160%")


def test_not_yaml_names_the_line() -> None:
    (problem,) = problems("hosts: [\n  {name: a\n")
    assert problem.startswith("line ")
    assert "not valid YAML" in problem


def test_not_a_mapping_and_missing_hosts() -> None:
    assert problems("- 1\n") == ("scenario (line 1): expected a mapping, got list",)
    assert any(p.startswith("hosts") for p in problems("name: empty\n"))


def test_missing_file_lists_the_shipped_scenarios(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="shipped scenarios: .*default"):
        load_scenario("no-such-scenario")
    with pytest.raises(ValidationError, match="no such scenario file"):
        load_scenario(tmp_path / "missing.yaml")


def test_local_storage_scenario_has_a_chunk_of_writers_on_raw_host_local_disks() -> None:
    scenario = load_scenario("local-storage")
    assert scenario.local_storage
    on_ls1 = scenario.domains_on("ls1")
    assert [(d.name, d.disk, d.disk_size, d.group, d.pinned) for d in on_ls1] == [
        ("store1", "raw", 64 * 1024**2, "store", False),
        ("store2", "raw", 64 * 1024**2, "store", False),
        ("busy1", "readonly", 64 * 1024**2, None, True),
    ]
    assert scenario.domains_on("ls2") == ()
    assert not load_scenario("default").local_storage


def test_bad_disk_settings_name_their_fields() -> None:
    found = problems(
        "hosts: [{name: a, cpus: 1, memory: 1GiB}]\n"
        "domains:\n"
        "  - {name: x, host: a, disk: qcow3}\n"
        "  - {name: y, host: a, disk: raw, disk_size: 1MiB}\n"
        "  - {name: z, host: a, disk_size: 64MiB}\n"
    )
    assert found == (
        "domains[0].disk (line 3): must be one of readonly, raw, qcow2, got 'qcow3'",
        "domains[1].disk_size (line 4): must be within 32MiB..1GiB, got '1MiB'",
        "domains[2].disk_size (line 5): only a writable disk (disk: raw or qcow2) has a size",
    )


def test_a_missing_key_names_the_line_of_its_entry() -> None:
    found = problems("hosts:\n  - {name: a, cpus: 1, memory: 1GiB}\n  - {cpus: 1}\n")
    assert found == (
        "hosts[1].name (line 3): missing",
        "hosts[1].memory (line 3): missing (e.g. 64MiB, 1GiB)",
    )
