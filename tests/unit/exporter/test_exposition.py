"""The fast renderer writes byte for byte what prometheus_client's generate_latest writes."""

from __future__ import annotations

import math
import random
import string

import pytest

from tests.exporter_fixtures import reference_text
from virtbalance.exporter.exposition import (
    Family,
    LabelSet,
    counter,
    format_value,
    gauge,
    render,
    value_texts,
)
from virtbalance.exporter.rendering import Renderer

# Label values: quotes, backslashes, newlines, spaces, non-ASCII (no lone surrogates: those are
# not UTF-8, and generate_latest fails on them where the renderer writes U+FFFD).
VALUE_CHARS = string.ascii_letters + string.digits + ' "\\\n{}=,.-/:é€漢😀'


def random_value(rng: random.Random, kind: str) -> float:
    """A float, an int (bulk-stats fields are ints) or either, over every notation's boundaries."""
    if kind == "int" or (kind == "mixed" and rng.random() < 0.3):
        return rng.choice(
            [
                rng.randrange(10**6),  # small counters
                rng.randrange(10**6, 10**16),  # byte counters: Go's exponent
                rng.randrange(-(2**60), 2**60),  # past 2**53 the float rounds
                rng.choice([0, 10**6 - 1, 10**6, 2**53 - 1, 2**53 + 1, -(2**53) - 1]),
            ]
        )
    choice = rng.randrange(8)
    if choice == 0:
        return rng.choice([math.inf, -math.inf, math.nan, 0.0, -0.0, 1.0, 1e6, 1e16, 1e21])
    if choice == 1:
        return float(rng.randrange(10**6, 10**16))  # integral, Go's exponent
    if choice == 2:
        return -(10 ** rng.uniform(-12, 30))
    if choice == 3:
        return rng.random() * 10**6  # below Go's exponent: repr
    return 10 ** rng.uniform(-12, 30) * rng.choice([1, 1, 1, 1.5, 1.25])


def random_families(seed: int, count: int) -> list[Family]:
    rng = random.Random(seed)
    families = []
    for index in range(count):
        names = rng.sample(
            ["domain", "uuid", "target_device", "a", "zz", "b_2", "vcpu"], rng.randrange(4)
        )
        make = counter if rng.random() < 0.4 else gauge
        family = make(
            f"m{index}_" + "".join(rng.choices("abcxyz_", k=6)),
            rng.choice(["plain help", "help with \\ and\nnewline", "", 'é quoted "help"']),
            names,
        )
        label_sets = [
            LabelSet(
                names, tuple("".join(rng.choices(VALUE_CHARS, k=rng.randrange(12))) for _ in names)
            )
            for _ in range(rng.randrange(1, 6))
        ]
        kind = rng.choice(["int", "float", "mixed"])
        for _ in range(rng.choice([0, 1, 3, 50, 400])):
            family.add_sample(rng.choice(label_sets), random_value(rng, kind))
        families.append(family)
    return families


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_render_is_byte_identical_to_generate_latest(seed: int):
    families = random_families(seed, 150)
    assert sum(len(f.values) for f in families) > 10_000
    assert render(families) == reference_text(families)


def test_values_in_go_notation():
    # The boundaries where Go's notation leaves Python's repr.
    assert [format_value(v) for v in (999999.0, 1e6, 1234567.5, 2.5e10, 1e16, -2.5e10)] == [
        "999999.0",
        "1e+06",
        "1.2345675e+06",
        "2.5e+10",
        "1e+16",
        "-25000000000.0",
    ]
    family = gauge("x", "x")
    for value in (1, 2.5e10, math.inf, -math.inf, math.nan):
        family.add((), value)
    assert render([family]).decode().splitlines()[2:] == [
        "x 1.0",
        "x 2.5e+10",
        "x +Inf",
        "x -Inf",
        "x NaN",
    ]


def test_remembered_texts_keep_negative_zero_and_ints_apart():
    # A column past 1e6 takes the remembering path; 0.0 and -0.0 are equal dict keys.
    floats, ints = gauge("f", "f"), gauge("i", "i")
    for value in (0.0, -0.0, 2.5e10, -0.0):
        floats.add((), value)
    for value in (0, 2**53 + 1, 10**7):
        ints.add((), value)
    lines = render([floats, ints]).decode().splitlines()
    assert [line.split()[1] for line in lines if not line.startswith("#")] == [
        *("0.0", "-0.0", "2.5e+10", "-0.0"),
        *("0.0", "9.007199254740992e+15", "1e+07"),
    ]


def test_family_without_samples_has_its_header_only():
    assert render([gauge("x", "nothing yet")]) == b"# HELP x nothing yet\n# TYPE x gauge\n"


def _mutated(rng: random.Random, families: list[Family]) -> list[Family]:
    """The next scrape of ``families``: values move, label sets change, families come and go."""
    out = []
    for family in families:
        roll = rng.random()
        if roll < 0.05:
            continue  # the family is gone this scrape
        copy = Family(family.name, family.help, family.kind, family.labels)
        copy.label_sets = list(family.label_sets)
        copy.values = list(family.values)
        if roll < 0.2 and copy.values:
            # Some values move; others keep their number but change notation or sign.
            for i in rng.sample(range(len(copy.values)), rng.randrange(1, len(copy.values) + 1)):
                value = copy.values[i]
                copy.values[i] = rng.choice(
                    [
                        random_value(rng, "mixed"),
                        -value if value == 0 else value,  # 0.0 <-> -0.0, or unchanged
                        float(value) if isinstance(value, int) else value,
                        value + 1 if isinstance(value, int) else value,
                    ]
                )
        elif roll < 0.3 and copy.label_sets:
            # A label value changes (a renamed domain, a replugged disk): a new LabelSet.
            i = rng.randrange(len(copy.label_sets))
            old = copy.label_sets[i]
            copy.label_sets[i] = LabelSet(
                copy.labels,
                tuple(v + rng.choice(['"', "\\", "\n", "%", "%d", "é"]) for v in old.values),
            )
        elif roll < 0.4 and copy.label_sets:
            # A device appears or goes away: one sample more or less.
            if rng.random() < 0.5:
                copy.label_sets.append(copy.label_sets[0])
                copy.values.append(random_value(rng, "int"))
            else:
                del copy.label_sets[-1], copy.values[-1]
        elif roll < 0.45:
            copy.values = [rng.randrange(10**6) for _ in copy.values]  # the %d template's case
        out.append(copy)
    if rng.random() < 0.3:
        out.insert(rng.randrange(len(out) + 1), random_families(rng.randrange(10**6), 1)[0])
    return out


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_renderer_with_memory_writes_what_generate_latest_writes(seed: int):
    rng = random.Random(seed)
    renderer = Renderer()
    families = random_families(seed, 60)
    # A help text and label values with %, which the %d template must not read as a format.
    families[0] = gauge("pct_family", "100% of 50%d", ("a",))
    for value in range(5):
        families[0].add(("%s%d%%" + str(value),), value)
    for _ in range(12):
        assert renderer.render(families) == render(families) == reference_text(families)
        families = _mutated(rng, families)


def test_renderer_tells_negative_zero_and_nan_apart_from_the_last_scrape():
    renderer = Renderer()
    family = gauge("z", "z", ("a",))
    label_set = LabelSet(("a",), ("x",))
    for values in ([0.0], [-0.0], [0], [math.nan], [math.nan], [math.inf], [1], [1.0], [True]):
        family.label_sets = [label_set]
        family.values = list(values)
        assert renderer.render([family]) == render([family]) == reference_text([family])


def test_big_int_columns_in_go_notation_fresh_and_remembered():
    # Counters past 1e6 take the column-at-a-time digits path; a second pass finds them.
    rng = random.Random(7)
    values = [10**6, 10**15, 2**53 - 1, 1_200_000, 1_000_001, 123_456_789_000]
    values += [rng.randrange(10**6, 2**53) for _ in range(500)]
    for _ in range(2):
        assert value_texts(values) == [format_value(v) for v in values]
    mixed = [*values, 0, 5, 2**53 + 1, -(2**60)]  # small ones and ones past 2**53 among them
    assert value_texts(mixed) == [format_value(v) for v in mixed]


def test_renderer_sees_values_changed_in_place_after_rendering():
    # The renderer remembers a copy: a caller that edits and re-renders the same list is served
    # the new text, with or without zeros (which take the bits comparison).
    renderer = Renderer()
    family = gauge("g", "g", ("a",))
    family.label_sets = [LabelSet(("a",), ("x",)), LabelSet(("a",), ("y",))]
    for first, second in ([1.0, 2.0], [0.0, 2.0]):
        family.values = [first, 2.0]
        assert renderer.render([family]) == reference_text([family])
        family.values[1] = -second if first else 7
        assert renderer.render([family]) == render([family]) == reference_text([family])
