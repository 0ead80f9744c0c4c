"""The diagnosis on a hand-made three-host trace: each reason an overload is not relieved at once happens.

The trace is a row of phases on hosts of 10 CPUs, separated by calm stretches longer than an hour (so
cooldowns and the hourly cap of one phase are over in the next; anti-flap's day is meant to last).
The causes come from the real barriers and planner through the virtbalance plug-in.
"""

from __future__ import annotations

import pytest

from virtbalance.causes import Cause
from virtbalance.policy import Policy
from virtbalance.simulator.cluster import Cluster
from virtbalance.simulator.diagnosis import Diagnosis
from virtbalance.simulator.engine import replay
from virtbalance.simulator.migration import CostModel
from virtbalance.simulator.policies.virtbalance import VirtbalancePolicy
from virtbalance.simulator.report import diagnosis_table, to_document
from virtbalance.simulator.traces import GIB, synthetic

STEP = 300.0
HOSTS = ("h0", "h1", "h2")
GAP = 14  # calm steps (70 min) before each phase
POLICY = Policy().replace(
    overload_for="5m",  # fires at the second overloaded step
    vm_cooldown="1h",
    vm_cooldown_max="1h",  # a fixed cooldown: this trace is about the causes, not the growth
    host_settle="10m",
    max_migrations=1,
    max_migrations_per_hour=2,
    forecast_window=0,  # destinations judged on the sample against cpu_target 65%
)
SMALL = [
    f"s{i:02d}" for i in range(16)
]  # idle or small domains on h0: 16 x < 5% = not worth moving


def small(cores: float) -> dict[str, float]:
    return dict.fromkeys(SMALL, cores)


# Each phase: calm steps before it, then one load mapping per step (domains not named are idle;
# b1/b2 are h1's and h2's base load).
PHASES: list[tuple[str, int, list[dict[str, float]]]] = [
    # h0 at 80%: a (2 cores) would take h1 or h2 (60%) to 80%: no host has room.
    ("no_room", GAP, [{"a": 2.0, **small(0.375), "b1": 6.0, "b2": 6.0}] * 4),
    # The chunk c1+c2 carries 7.8 cores: above cpu_target even on an empty 10-CPU host.
    ("too_large", GAP, [{"c1": 3.9, "c2": 3.9, "s00": 0.2, "b1": 1.0, "b2": 1.0}] * 4),
    # 16 domains of 0.49 cores (4.9% each): none is worth a migration.
    ("partial", GAP, [{**small(0.49), "b1": 1.0, "b2": 1.0}] * 4),
    # f (3 cores) would fit h1, but an operator froze it.
    ("frozen", GAP, [{"f": 3.0, **small(0.3), "b1": 1.0, "b2": 1.0}] * 4),
    # h1 at 80% sends d (3 cores) to the idle h0; then h0 rises to 80%: it received d (settle), then d
    # is cooling down and the rest of h0 is too small to move.
    (
        "relieve-settle-cooldown",
        GAP,
        [{"d": 3.0, "b1": 5.0, "b2": 6.0}] * 2
        + [{"d": 3.0, **small(0.3125), "b1": 5.0, "b2": 6.0}] * 4,
    ),
    # Ten minutes later h2 (85%, the most overloaded) sends g1 to h1, which uses the plan's one
    # migration (max_migrations 1), so h0's a stays; with d's move that is the hour's budget (2).
    ("plan_cap-hourly_cap", 2, [{"a": 2.0, **small(0.375), "g1": 2.0, "b2": 6.5}] * 4),
    # More than an hour later h0 is at 80% again: only h1 has room for d, which left h1 today.
    ("anti_flap", GAP, [{"d": 3.0, **small(0.3125), "b1": 1.0, "b2": 6.0}] * 4),
]
NAMES = ["a", "c1", "c2", "d", "f", "g1", *SMALL, "b1", "b2"]
PLACEMENT = {
    **dict.fromkeys(NAMES, "h0"),
    "d": "h1",
    "b1": "h1",
    "g1": "h2",
    "b2": "h2",
}


def build() -> tuple[list[list[float]], dict[str, int]]:
    """The per-domain series and the first step of each phase."""
    series: dict[str, list[float]] = {n: [] for n in NAMES}
    starts = {}
    for name, gap, steps in PHASES:
        for _ in range(gap):
            for n in NAMES:
                series[n].append(1.0 if n in ("b1", "b2") else 0.0)
        starts[name] = len(series["a"])
        for loads in steps:
            for n in NAMES:
                series[n].append(loads.get(n, 0.0))
    for n in NAMES:
        series[n] += [0.0] * GAP
    return [series[n] for n in NAMES], starts


def simulate():
    series, starts = build()
    # The bases are the dearest to move (8 GiB), so each relief moves the domain the phase names.
    memory = {n: (8 if n in ("b1", "b2") else 1) * GIB for n in NAMES}
    workload = synthetic(
        0.0, STEP, [(n, 4, memory[n], s) for n, s in zip(NAMES, series, strict=True)]
    )
    cluster = Cluster(
        HOSTS,
        dict.fromkeys(HOSTS, 10.0),
        dict.fromkeys(HOSTS, 64 * GIB),
        {"c1": ("lanB",), "c2": ("lanB",)},
        PLACEMENT,
    )
    frozen = starts["frozen"] * STEP
    plugin = VirtbalancePolicy.build(
        {
            "freeze": [
                {"domain": "f", "from": f"{frozen:.0f}s", "until": f"{frozen + 4 * STEP:.0f}s"}
            ]
        },
        POLICY,
    )
    result = replay(workload, cluster, plugin, POLICY, cost=CostModel())
    return result, starts


@pytest.fixture(scope="module")
def run():
    return simulate()


def causes(diagnosis: Diagnosis, host: str, first: int, count: int) -> list[str | None]:
    return [
        None if (c := diagnosis.cause_at(host, s)) is None else str(c)
        for s in range(first, first + count)
    ]


def test_every_cause_in_its_phase(run):
    result, starts = run
    d = result.diagnosis
    assert d is not None
    assert causes(d, "h0", starts["no_room"], 4) == ["for", "no_room", "no_room", "no_room"]
    assert causes(d, "h0", starts["too_large"], 4) == ["for", "too_large", "too_large", "too_large"]
    assert causes(d, "h0", starts["partial"], 4) == ["for"] + ["partial_min_relief"] * 3
    assert causes(d, "h0", starts["frozen"], 4) == ["for", "frozen", "frozen", "frozen"]
    relieve = starts["relieve-settle-cooldown"]
    assert causes(d, "h1", relieve, 3) == ["for", "migrating", None]
    assert causes(d, "h0", relieve + 2, 4) == ["for", "host_settle", "vm_cooldown", "vm_cooldown"]
    assert causes(d, "h0", starts["anti_flap"], 4) == ["for", "anti_flap", "anti_flap", "anti_flap"]
    caps = starts["plan_cap-hourly_cap"]
    assert causes(d, "h2", caps, 3) == ["for", "migrating", None]
    assert causes(d, "h0", caps, 4) == ["for", "plan_cap", "hourly_cap", "hourly_cap"]
    # Nothing else is overloaded anywhere.
    assert sum(n for n, _ in d.totals().values()) == 4 * 7 + 2 + 2
    assert [(r.domain, r.source, r.destination) for r in result.history] == [
        ("d", "h1", "h0"),
        ("g1", "h2", "h1"),
    ]


def test_totals_stretches_and_relief(run):
    result, _ = run
    d = result.diagnosis
    totals = d.totals()
    assert set(totals) == {
        Cause.FOR_WINDOW,
        Cause.MIGRATING,
        Cause.SETTLE,
        Cause.COOLDOWN,
        Cause.ANTI_FLAP,
        Cause.HOURLY_CAP,
        Cause.PLAN_CAP,
        Cause.PARTIAL_RULE,
        Cause.NO_ROOM,
        Cause.TOO_LARGE,
        Cause.FROZEN,
    }
    # Every stretch starts with the `for` window; each other cause held one stretch.
    assert totals[Cause.FOR_WINDOW] == (9, 9)
    assert totals[Cause.MIGRATING] == (2, 2)
    assert totals[Cause.HOURLY_CAP] == (2, 1)
    assert totals[Cause.COOLDOWN] == (2, 1)
    assert totals[Cause.SETTLE] == (1, 1)
    assert totals[Cause.PLAN_CAP] == (1, 1)
    stretches = d.stretches()
    assert [(s.host, s.relieved) for s in stretches if s.relieved] == [("h1", True), ("h2", True)]
    assert len(stretches) == 9
    doc = d.to_dict()
    assert doc["relieved"] == 2 and doc["unrelieved"] == 7
    assert doc["causes"]["no_room"] == {"host_hours": 0.25, "host_steps": 3, "stretches": 1}
    # The JSON and the table carry it too.
    entry = to_document([result], {})["policies"][0]
    assert entry["diagnosis"] == doc
    lines = diagnosis_table([result]).splitlines()
    assert lines[:3] == [
        "why virtbalance did not relieve an overload at once:",
        "CAUSE               HOST-HOURS  SHARE  STRETCHES",
        "for                 0.8         28.1%  9",
    ]
    assert "anti_flap           0.2         9.4%   1" in lines
    assert lines[-1] == (
        "9 overload stretches: 2 relieved by a move, 7 not (longest: h0, 0.3 h, mostly no_room)"
    )
