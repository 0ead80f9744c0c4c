"""Clear messages before anything starts: not root, a missing system package, a bad scenario, no lab."""

from __future__ import annotations

from pathlib import Path

import pytest

import virtbalance.lab.api
import virtbalance.lab.naming
import virtbalance.lab.preconditions
import virtbalance.lab.system
from virtbalance.cli import main
from virtbalance.errors import ValidationError
from virtbalance.lab import Lab, LabError, LabNotUp
from virtbalance.lab.hosts import MOUNT_POINTS, PRIVATE_DIRS, RUN_DIR


def test_not_root_says_so_and_how(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(LabError, match=r"needs root.*sudo"):
        Lab.up("default", lab_id=9)


def test_missing_package_names_it_and_the_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    real = virtbalance.lab.system.find_tool
    monkeypatch.setattr(
        virtbalance.lab.system,
        "find_tool",
        lambda name: None if name in {"nasm", "libvirtd"} else real(name),
    )
    with pytest.raises(LabError) as caught:
        Lab.up("default", lab_id=9)
    message = str(caught.value)
    assert "libvirtd is missing (package libvirt-daemon)" in message
    assert "nasm is missing (package nasm)" in message
    assert "2 problems" in message
    assert "scripts/bootstrap" in message


def test_a_bad_scenario_fails_before_the_root_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def must_not_run(*_: object) -> None:
        raise AssertionError("nothing may be checked or started for a bad scenario")

    monkeypatch.setattr(virtbalance.lab.api, "prepare_machine", must_not_run)
    bad = tmp_path / "bad.yaml"
    bad.write_text("hosts: [{name: hv1, cpus: 1, memory: 1GiB, disks: 2}]\n")
    with pytest.raises(ValidationError, match=r"hosts\[0\]\.disks \(line 1\): unknown key 'disks'"):
        Lab.up(bad, lab_id=9)


def test_attach_without_a_lab_says_how_to_start_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(virtbalance.lab.naming, "STATE_ROOT", tmp_path)
    with pytest.raises(LabNotUp, match="virtbalance lab up --lab-id 7"):
        Lab.attach(7)


def test_cli_reports_lab_errors_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert main(["lab", "down", "--lab-id", "9"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("virtbalance lab down: the lab needs root")
    assert err.count("\n") == 1


def test_cli_rejects_a_bad_lab_id(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["lab", "status", "--lab-id", "12"])
    assert "lab id must be 0..9" in capsys.readouterr().err


def _no_account(name: str) -> object:
    raise KeyError(name)


def test_every_unmet_precondition_is_listed_at_once_with_its_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr(
        virtbalance.lab.system, "find_tool", lambda name: None if name == "nasm" else name
    )
    monkeypatch.setattr(virtbalance.lab.preconditions.grp, "getgrnam", _no_account)
    monkeypatch.setattr(virtbalance.lab.preconditions.pwd, "getpwnam", _no_account)
    monkeypatch.setattr(virtbalance.lab.preconditions, "TUN_DEVICE", tmp_path / "net" / "tun")
    with pytest.raises(LabError) as caught:
        virtbalance.lab.preconditions.prepare_machine({"nasm": "nasm", "ip": "iproute2"})
    message = str(caught.value)
    assert "4 problems" in message
    assert "(1) nasm is missing (package nasm) (fix: run scripts/bootstrap" in message
    assert "group libvirt-qemu does not exist" in message
    assert "groupadd --system libvirt-qemu" in message
    assert "useradd --system --no-create-home -g libvirt-qemu" in message
    assert f"mknod {tmp_path}/net/tun c 10 200" in message


def test_mount_points_are_made_where_no_package_made_them(tmp_path: Path) -> None:
    points = (str(tmp_path / "var/lib/libvirt"), str(tmp_path / "run/libvirt"))
    assert virtbalance.lab.preconditions.make_mount_points(points) == []
    assert all(Path(p).is_dir() for p in points)
    # made again: nothing to do, nothing wrong
    assert virtbalance.lab.preconditions.make_mount_points(points) == []


def test_a_mount_point_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    (tmp_path / "var").write_text("a file where a directory must be")
    (tmp_path / "log").write_text("")
    problems = virtbalance.lab.preconditions.make_mount_points(
        (str(tmp_path / "var/lib/libvirt"), str(tmp_path / "log"))
    )
    assert [p.what.split(":")[0] for p in problems] == [
        f"cannot create the mount point {tmp_path}/var/lib/libvirt",
        f"{tmp_path}/log exists but is not a directory",
    ]
    assert problems[1].fix == f"move it aside, e.g. mv {tmp_path}/log {tmp_path}/log.old"


def test_the_lab_makes_every_directory_its_hosts_mount_over() -> None:
    assert set(MOUNT_POINTS) == {*PRIVATE_DIRS.values(), RUN_DIR}
    assert RUN_DIR == "/run/libvirt"
