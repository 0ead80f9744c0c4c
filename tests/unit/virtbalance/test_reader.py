"""The declarative section reader: what a dataclass's fields accept, and every problem with its path."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from virtbalance.reader import DURATION, SIZE, UNIT, read_section
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
        "a.b.name: expected str, got 5",
        "a.b.count: expected int, got True",
        "a.b.ratio: expected a number, got 'half'",
        "a.b.enabled: expected true or false, got 1",
        "a.b.limit: expected int, got 2.5",
        "a.b.mode: expected str, got 3",
    ]
    assert problems[6].startswith("a.b.memory: ") and "lots" in problems[6]
    assert problems[7].startswith("a.b.window: ") and "soon" in problems[7]
    assert problems[8].startswith("a.b.colour: unknown key (known: name, count, ratio,")
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
        "top.owner: unknown key (known: name, count, ratio, enabled, limit, mode, memory, window)"
    ]


def test_the_simulators_traces_section_reads_through_it():
    problems: list[str] = []
    data = {"path": "t", "limit": 5, "planetlab_memory_gib": 4, "strict": "yes"}
    spec = read_section(TraceSpec, data, "traces", problems)
    assert spec == TraceSpec(path="t", limit=5, planetlab_memory_gib=4.0)
    assert problems == ["traces.strict: expected true or false, got 'yes'"]
