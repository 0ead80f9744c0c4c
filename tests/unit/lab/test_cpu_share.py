"""The lab's CPU cgroup on fake cgroup trees (v1, v2, none): where it goes, its weight, entering it."""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import pytest

from virtbalance.lab import cpu_share
from virtbalance.lab.naming import LabNames

pytestmark = pytest.mark.unit

NAMES = LabNames(4)


def v1_tree(root: Path) -> Path:
    (root / "cpu").mkdir()
    (root / "cpu" / "cpu.shares").write_text("1024\n")
    return root / "cpu"


def v2_tree(root: Path, subtree: str = "") -> Path:
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text(subtree)
    return root


def test_v1_group_sits_in_the_cpu_hierarchy_with_the_top_shares(tmp_path: Path) -> None:
    hierarchy = v1_tree(tmp_path)
    group = cpu_share.create(NAMES, tmp_path)
    assert group == hierarchy / "vblab4"
    assert (group / "cpu.shares").read_text() == "262144"
    assert cpu_share.exists(NAMES, tmp_path)
    assert not (tmp_path / "vblab4").exists()


def test_v2_group_gets_the_cpu_controller_and_the_top_weight(tmp_path: Path) -> None:
    v2_tree(tmp_path)
    group = cpu_share.create(NAMES, tmp_path)
    assert group == tmp_path / "vblab4"
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu"
    assert (group / "cpu.weight").read_text() == "10000"


def test_v2_controller_already_handed_down_is_left_as_it_is(tmp_path: Path) -> None:
    v2_tree(tmp_path, subtree="cpu memory\n")
    assert cpu_share.create(NAMES, tmp_path) == tmp_path / "vblab4"
    assert (tmp_path / "cgroup.subtree_control").read_text() == "cpu memory\n"


def test_no_cpu_controller_means_no_group_and_commands_unchanged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "cgroup.controllers").write_text("memory pids\n")
    assert cpu_share.controller_root(tmp_path) is None
    assert cpu_share.create(NAMES, tmp_path) is None
    assert "compete with all the machine's load" in caplog.text
    assert cpu_share.run_in(None, ["libvirtd", "--listen"]) == ["libvirtd", "--listen"]
    assert not cpu_share.exists(NAMES, tmp_path)
    assert cpu_share.members(NAMES, tmp_path) == []
    assert cpu_share.remove(NAMES, tmp_path)


def test_a_refused_write_leaves_the_lab_unshielded_rather_broken(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hierarchy = v1_tree(tmp_path)
    (hierarchy / "vblab4").mkdir()
    (hierarchy / "vblab4" / "cpu.shares").mkdir()  # writing it fails (IsADirectoryError)
    assert cpu_share.create(NAMES, tmp_path) is None
    assert "no CPU cgroup for the lab" in caplog.text


def test_labs_have_groups_of_their_own(tmp_path: Path) -> None:
    v1_tree(tmp_path)
    assert cpu_share.group_dir(LabNames(3), tmp_path) != cpu_share.group_dir(NAMES, tmp_path)


def test_run_in_writes_the_commands_own_pid_then_execs_it(tmp_path: Path) -> None:
    group = tmp_path / "vblab4"
    group.mkdir()
    (group / "cgroup.procs").write_text("")
    # the command prints its own pid: the one the wrapper wrote must be the same process
    argv = cpu_share.run_in(group, ["sh", "-c", 'echo "$$"'])
    printed = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
    assert (group / "cgroup.procs").read_text().strip() == printed


def test_run_in_does_not_run_the_command_when_the_group_is_gone(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    argv = cpu_share.run_in(tmp_path / "missing", ["touch", str(marker)])
    assert subprocess.run(argv, capture_output=True, check=False).returncode != 0
    assert not marker.exists()


def test_members_are_the_pids_in_the_group(tmp_path: Path) -> None:
    group = v1_tree(tmp_path) / "vblab4"
    group.mkdir()
    (group / "cgroup.procs").write_text("812\n77\n")
    assert cpu_share.members(NAMES, tmp_path) == [77, 812]


def test_move_writes_the_pid_to_the_groups_procs(tmp_path: Path) -> None:
    group = v1_tree(tmp_path) / "vblab4"
    group.mkdir()
    cpu_share.move(4242, group)
    assert cpu_share.members(NAMES, tmp_path) == [4242]


def test_remove_deletes_the_group_and_is_safe_to_repeat(tmp_path: Path) -> None:
    group = v1_tree(tmp_path) / "vblab4"
    group.mkdir()  # cgroupfs lets rmdir remove a group with its control files; an empty dir here
    assert cpu_share.remove(NAMES, tmp_path)
    assert not group.exists()
    assert cpu_share.remove(NAMES, tmp_path)


def test_remove_waits_for_members_to_leave_then_gives_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = v1_tree(tmp_path) / "vblab4"
    group.mkdir()
    attempts: list[Path] = []

    def busy(self: Path) -> None:
        attempts.append(self)
        raise OSError(errno.EBUSY, "Device or resource busy")

    monkeypatch.setattr(Path, "rmdir", busy)
    assert not cpu_share.remove(NAMES, tmp_path, timeout=0.2)
    assert len(attempts) > 1 and set(attempts) == {group}
