"""Trace loaders on small fixture files, including malformed lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from virtbalance.errors import ValidationError
from virtbalance.simulator.traces import GIB, load_bitbrains, load_planetlab, synthetic

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "traces"


def test_bitbrains_grid_means_within_a_step_and_holds_gaps():
    workload = load_bitbrains(FIXTURES / "bitbrains")
    assert workload.start == 900.0  # first sample 1000 s, floored to the 300 s grid
    assert workload.step == 300.0
    assert workload.steps == 4
    first, second = workload.vms
    assert first.name == "1"
    assert first.vcpus == 2
    # 50% and 100% of 2 cores fall in step 0 -> mean 1.5; step 2 has no sample and holds 0.5.
    assert list(first.cpu) == [1.5, 0.5, 0.5, 0.0]
    assert first.memory_bytes == 3 * GIB  # the largest "Memory usage [KB]"
    # The second VM starts late (idle before), and its all-zero 0-core row counts as idle.
    assert second.vcpus == 4
    assert list(second.cpu) == [0.0, 2.0, 0.0, 4.0]
    assert second.memory_bytes == GIB  # 0.5 GiB used, raised to the 1 GiB floor
    assert workload.skipped_lines == ()


def test_bitbrains_provisioned_memory_and_limit():
    workload = load_bitbrains(FIXTURES / "bitbrains", memory_basis="provisioned", limit=1)
    assert [vm.name for vm in workload.vms] == ["1"]
    assert workload.vms[0].memory_bytes == 8 * GIB


def test_bitbrains_malformed_line_strict_names_file_and_line():
    with pytest.raises(ValidationError) as caught:
        load_bitbrains(FIXTURES / "bitbrains-malformed", strict=True)
    assert str(caught.value).startswith(
        f"{FIXTURES / 'bitbrains-malformed' / '2.csv'}:3: malformed line"
    )


def test_bitbrains_malformed_lines_skipped_and_listed():
    workload = load_bitbrains(FIXTURES / "bitbrains-malformed")
    where = FIXTURES / "bitbrains-malformed" / "2.csv"
    assert [line.split(": ")[0] for line in workload.skipped_lines] == [f"{where}:3", f"{where}:4"]
    assert "expected 11 columns, got 3" in workload.skipped_lines[1]
    second = workload.vms[1]
    # Samples at 1200 (step 1) and 2100 (step 4) survive; steps 2-3 hold the last value.
    assert list(second.cpu) == [0.0, 1.0, 1.0, 1.0, 1.0]


def test_bitbrains_missing_directory_and_bad_header(tmp_path):
    with pytest.raises(ValidationError, match="no such trace file or directory"):
        load_bitbrains(tmp_path / "absent")
    bad = tmp_path / "1.csv"
    bad.write_text("time,cpu\n1,2\n")
    with pytest.raises(ValidationError, match=r"1\.csv:1: not a Bitbrains trace"):
        load_bitbrains(tmp_path)


def test_planetlab_percent_per_line_padded_to_the_longest():
    workload = load_planetlab(FIXTURES / "planetlab", vcpus=2, memory_bytes=GIB)
    assert [vm.name for vm in workload.vms] == ["vm-a", "vm-b"]
    assert list(workload.vms[0].cpu) == [0.2, 0.4, 0.6, 0.8]
    # vm-b has three lines: the last value holds.
    assert list(workload.vms[1].cpu) == [2.0, 0.0, 1.0, 1.0]
    assert all(vm.memory_bytes == GIB and vm.vcpus == 2 for vm in workload.vms)


def test_planetlab_malformed_strict_and_lenient():
    where = FIXTURES / "planetlab-malformed" / "vm-b"
    with pytest.raises(ValidationError) as caught:
        load_planetlab(FIXTURES / "planetlab-malformed", strict=True)
    assert str(caught.value).startswith(f"{where}:2: malformed line '12.5'")
    workload = load_planetlab(FIXTURES / "planetlab-malformed")
    assert [line.split(": ")[0] for line in workload.skipped_lines] == [f"{where}:2", f"{where}:4"]
    assert list(workload.vms[1].cpu) == [0.05, 0.07]


def test_synthetic_rejects_series_of_different_lengths():
    with pytest.raises(ValidationError, match="different lengths"):
        synthetic(0.0, 300.0, [("a", 1, GIB, [1.0, 2.0]), ("b", 1, GIB, [1.0])])


def test_window_keeps_a_slice_of_steps():
    workload = load_bitbrains(FIXTURES / "bitbrains").window(1, 2)
    assert workload.start == 1200.0
    assert [list(vm.cpu) for vm in workload.vms] == [[0.5, 0.5], [2.0, 0.0]]
