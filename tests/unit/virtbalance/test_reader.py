"""The declarative section reader: what a dataclass's fields accept, and every problem with its path."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import pytest

from virtbalance.errors import ValidationError
from virtbalance.reader import (
    DURATION,
    POSITIVE,
    RATIO,
    SHARE,
    SIZE,
    UNIT,
    Check,
    at_least,
    option,
    pattern,
    read_section,
    read_valid,
    recheck,
    spec,
    within,
    write_section,
)
from virtbalance.simulator.config import TraceSpec


@dataclass(frozen=True)
class Section:
    name: str = "default"
    count: int = 1
    ratio: float = 0.5
    enabled: bool = False
    limit: int | None = None
    mode: Literal["fast", "slow"] = "fast"
    memory: int = field(default=1024, metadata={UNIT: SIZE})
    window: float = field(default=60.0, metadata={UNIT: DURATION})
    owner: str = "nobody"


def test_values_of_every_kind_are_read_and_converted():
    problems: list[str] = []
    data = {
        "name": "a",
        "count": 3,
        "ratio": 2,
        "enabled": True,
        "limit": None,
        "mode": "slow",
        "memory": "64MiB",
        "window": "1h30m",
    }
    section = read_section(Section, data, "top", problems)
    assert problems == []
    assert section == Section("a", 3, 2.0, True, None, "slow", 64 * 2**20, 5400.0)
    assert isinstance(section.ratio, float)


def test_missing_keys_and_an_empty_section_keep_the_defaults():
    problems: list[str] = []
    assert read_section(Section, None, "top", problems) == Section()
    assert read_section(Section, {"count": 2}, "top", problems) == Section(count=2)
    assert problems == []


def test_every_problem_is_listed_with_its_path_and_bad_keys_keep_their_defaults():
    problems: list[str] = []
    data = {
        "name": 5,
        "count": True,
        "ratio": "half",
        "enabled": 1,
        "limit": 2.5,
        "mode": 3,
        "memory": "lots",
        "window": "soon",
        "colour": "red",
    }
    section = read_section(Section, data, "a.b", problems)
    assert section == Section()
    assert problems[:6] == [
        "a.b.name: expected a string, got 5",
        "a.b.count: expected a whole number, got True",
        "a.b.ratio: expected a number, got 'half'",
        "a.b.enabled: expected true or false, got 1",
        "a.b.limit: expected a whole number, got 2.5",
        "a.b.mode: must be one of fast, slow, got 3",
    ]
    assert problems[6].startswith("a.b.memory: ") and "lots" in problems[6]
    assert problems[7].startswith("a.b.window: ") and "soon" in problems[7]
    assert problems[8].startswith("a.b.colour: unknown key 'colour' (known: name, count, ratio,")
    assert len(problems) == 9


def test_a_section_that_is_not_a_mapping_is_one_problem():
    problems: list[str] = []
    assert read_section(Section, ["x"], "top", problems) == Section()
    assert problems == ["top: expected a mapping, got list"]


def test_given_fields_are_not_keys_of_the_section():
    problems: list[str] = []
    section = read_section(Section, {"owner": "me", "count": 4}, "top", problems, owner="caller")
    assert section == Section(count=4, owner="caller")
    assert problems == [
        "top.owner: unknown key 'owner' (known: name, count, ratio, enabled, limit, mode, memory,"
        " window)"
    ]


def test_the_simulators_traces_section_reads_through_it():
    problems: list[str] = []
    data = {"path": "t", "limit": 5, "planetlab_memory_gib": 4, "strict": "yes"}
    spec = read_section(TraceSpec, data, "traces", problems)
    assert spec == TraceSpec(path="t", limit=5, planetlab_memory_gib=4.0)
    assert problems == ["traces.strict: expected true or false, got 'yes'"]


@dataclass(frozen=True)
class Disk:
    name: str = field(metadata=spec(checks=(pattern(re.compile("[a-z]+"), "lower-case"),)))
    size: int = option(1024, unit=SIZE, checks=(within(512, 4096, SIZE),))
    kind: str = option("raw", choices=("raw", "qcow2"))
    image: Path | None = field(default=None, metadata=spec(relative=True))
    tags: tuple[str, ...] = option((), each=(Check(len, "must not be empty"),))

    def section_problems(self) -> list[tuple[str, str]]:
        return [("kind", "qcow2 needs an image")] if self.kind == "qcow2" and not self.image else []


@dataclass(frozen=True)
class Machine:
    disks: tuple[Disk, ...] = field(metadata=spec(min_items=1, max_items=2, hint="a list of disks"))
    shelves: tuple[Disk, ...] = option((), keyed="name", short="kind")
    cores: int = option(1, key="cpus", checks=(POSITIVE,))
    owner: str = option("nobody", read=False)


def test_a_check_lists_its_requirement_and_the_raw_value_and_keeps_what_was_read():
    problems: list[str] = []
    disk = read_section(Disk, {"name": "Sda", "size": "8KiB", "kind": "vmdk"}, "d", problems)
    assert disk == Disk(name="Sda", size=8192)
    assert problems == [
        "d.name: must be lower-case, got 'Sda'",
        "d.size: must be within 512..4KiB, got '8KiB'",
        "d.kind: must be one of raw, qcow2, got 'vmdk'",
    ]


def test_lists_of_sections_name_each_entry_and_leave_out_one_without_its_required_key(tmp_path):
    problems: list[str] = []
    data = {
        "disks": [{"name": "a", "image": "a.img"}, {"size": 600}, {"name": "c", "kind": "qcow2"}],
        "cpus": 0,
        "owner": "me",
    }
    machine = read_section(Machine, data, "", problems, base=tmp_path)
    assert machine is not None
    assert machine.disks == (Disk("a", image=tmp_path / "a.img"), Disk("c", kind="qcow2"))
    assert machine.cores == 0
    assert problems == [
        "disks: at most 2 entries, got 3",
        "disks[1].name: missing",
        "disks[2].kind: qcow2 needs an image",
        "cpus: must be positive, got 0",
        "owner: unknown key 'owner' (known: disks, shelves, cpus)",
    ]


def test_a_mapping_of_sections_fills_the_key_field_and_takes_the_short_form():
    problems: list[str] = []
    data = {"disks": [{"name": "a"}], "shelves": {"x": "qcow2", "y": {"size": 2048}, "Z": {}}}
    machine = read_section(Machine, data, "m", problems)
    assert machine is not None
    assert machine.shelves == (Disk("x", kind="qcow2"), Disk("y", size=2048))
    assert problems == [
        "m.shelves.x.kind: qcow2 needs an image",
        "m.shelves.Z: must be lower-case, got 'Z'",
    ]


def test_a_missing_required_key_says_what_it_holds_and_the_section_is_not_built():
    problems: list[str] = []
    assert read_section(Machine, {"disks": []}, "m", problems) is None
    assert read_section(Machine, {}, "m", problems) is None
    assert problems == [
        "m.disks: expected a non-empty list (a list of disks)",
        "m.disks: missing (a list of disks)",
    ]


def test_list_items_are_checked_one_by_one_and_a_lone_value_is_a_list_of_one():
    problems: list[str] = []
    assert read_section(Disk, {"name": "a", "tags": "t"}, "d", problems) == Disk("a", tags=("t",))
    kept = read_section(Disk, {"name": "a", "tags": ["t", ""]}, "d", problems)
    assert kept == Disk("a", tags=("t", ""))  # listed, and kept as read like any failed check
    assert problems == ["d.tags[1]: must not be empty, got ''"]


def test_where_decorates_every_path_and_skipped_keys_are_known_but_not_read():
    problems: list[str] = []
    section = read_section(
        Section,
        {"count": "x", "later": 1, "odd": 2},
        "",
        problems,
        where=str.upper,
        skip=("later",),
    )
    assert section == Section()
    assert problems[0] == "COUNT: expected a whole number, got 'x'"
    assert problems[1].startswith("ODD: unknown key 'odd' (known: name,")
    assert problems[1].endswith("owner, later)")
    assert len(problems) == 2


GIB = 2**30


@dataclass(frozen=True)
class Slot:
    size: int = field(metadata=spec(key="size_gib", scale=GIB, checks=(POSITIVE,)))
    weight: float = option(1.0, checks=(SHARE,))


@dataclass(frozen=True)
class Rack:
    slots: int = option(4, checks=(at_least(1),))
    rate: float = option(float(GIB), key="rate_gib", scale=GIB)
    fill: float | None = option(None, checks=(RATIO,), aliases={"auto": None, "full": 1.0})
    wait: float = option(60.0, unit=DURATION)
    kind: str = option("a", choices=("a", "b"))
    parts: tuple[Slot, ...] = option(())

    def section_problems(self) -> list[tuple[str, str]]:
        return (
            [("slots", f"must cover the parts, got {self.slots}")]
            if self.slots < len(self.parts)
            else []
        )


def test_a_scaled_key_holds_the_number_times_its_scale_whole_for_an_int_field():
    problems: list[str] = []
    data = {"rate_gib": 2, "parts": [{"size_gib": 0.5}, {"size_gib": 3, "weight": 1}]}
    rack = read_section(Rack, data, "r", problems)
    assert problems == []
    assert rack == Rack(rate=2.0 * GIB, parts=(Slot(GIB // 2), Slot(3 * GIB)))
    assert isinstance(rack.rate, float) and isinstance(rack.parts[0].size, int)
    assert (
        read_section(Rack, {"rate_gib": True, "parts": [{"size_gib": "1G"}]}, "r", problems)
        == Rack()
    )
    assert problems == [
        "r.rate_gib: expected a number, got True",
        "r.parts[0].size_gib: expected a number, got '1G'",
    ]


def test_an_alias_stands_for_its_value_unchecked_and_is_named_when_a_value_is_wrong():
    problems: list[str] = []
    assert read_section(Rack, {"fill": "auto"}, "r", problems) == Rack(fill=None)
    assert read_section(Rack, {"fill": "full"}, "r", problems) == Rack(fill=1.0)
    assert read_section(Rack, {"fill": 0.5}, "r", problems) == Rack(fill=0.5)
    assert problems == []
    read_section(Rack, {"fill": "most"}, "r", problems)
    read_section(Rack, {"fill": 0}, "r", problems)
    assert problems == [
        "r.fill: expected a number or auto or full, got 'most'",
        "r.fill: must be a ratio in (0, 1], got 0",
    ]


def test_a_built_section_is_rechecked_as_the_file_would_give_it():
    rack = Rack(slots=0, rate=-GIB, fill=1.5, kind="c", parts=(Slot(0, weight=2.0),))
    assert recheck(rack, "rack") == [
        "rack.slots: must be at least 1, got 0",
        "rack.fill: must be a ratio in (0, 1], got 1.5",
        "rack.kind: must be one of a, b, got 'c'",
        "rack.parts[0].size_gib: must be positive, got 0.0",
        "rack.parts[0].weight: must be a share in [0, 1], got 2.0",
        "rack.slots: must cover the parts, got 0",
    ]
    assert recheck(Rack()) == []
    assert recheck(replace(Rack(), fill=None)) == []  # an absent optional value has no checks


def test_a_written_section_reads_back_equal():
    rack = Rack(rate=1.5 * GIB, fill=0.8, wait=5400.0, parts=(Slot(GIB // 4, weight=0.5),))
    written = write_section(rack)
    assert written == {
        "slots": 4,
        "rate_gib": 1.5,
        "fill": 0.8,
        "wait": "1h30m",
        "kind": "a",
        "parts": [{"size_gib": 0.25, "weight": 0.5}],
    }
    assert read_valid(Rack, written, "rack.yaml") == rack
    shelf = Machine(disks=(Disk("a"),), shelves=(Disk("x", kind="qcow2", image=Path("x.img")),))
    assert write_section(shelf)["shelves"] == {
        "x": {"size": "1KiB", "kind": "qcow2", "image": "x.img", "tags": []}
    }


def test_read_valid_raises_every_problem_and_a_whole_section_that_is_no_mapping_has_no_path():
    assert read_valid(Rack, None, "rack.yaml") == Rack()
    with pytest.raises(ValidationError) as caught:
        read_valid(Rack, {"slots": 0, "kind": "z"}, "rack.yaml")
    assert caught.value.source == "rack.yaml"
    assert caught.value.problems == (
        "slots: must be at least 1, got 0",
        "kind: must be one of a, b, got 'z'",
    )
    with pytest.raises(ValidationError) as caught:
        read_valid(Rack, [1], "rack.yaml")
    assert caught.value.problems == ("expected a mapping, got list",)
    with pytest.raises(ValidationError) as caught:
        read_valid(Slot, {}, "slot.yaml")
    assert caught.value.problems == ("size_gib: missing",)
