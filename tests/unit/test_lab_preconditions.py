"""Clear messages before anything starts: not root, a missing system package, a bad scenario, no lab."""

from __future__ import annotations

from pathlib import Path

import pytest

import lab.api
import lab.naming
import lab.system
from lab import Lab, LabError, LabNotUp
from virtbalance.cli import main
from virtbalance.errors import ValidationError


def test_not_root_says_so_and_how(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(LabError, match=r"needs root.*sudo"):
        Lab.up("default", lab_id=9)


def test_missing_package_names_it_and_the_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    real = lab.system.find_tool
    monkeypatch.setattr(
        lab.system, "find_tool", lambda name: None if name in {"nasm", "libvirtd"} else real(name)
    )
    with pytest.raises(LabError) as caught:
        Lab.up("default", lab_id=9)
    message = str(caught.value)
    assert "libvirtd (package libvirt-daemon)" in message
    assert "nasm (package nasm)" in message
    assert "scripts/bootstrap" in message


def test_a_bad_scenario_fails_before_the_root_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def must_not_run() -> None:
        raise AssertionError("nothing may be checked or started for a bad scenario")

    monkeypatch.setattr(lab.api, "require_root", must_not_run)
    bad = tmp_path / "bad.yaml"
    bad.write_text("hosts: [{name: hv1, cpus: 1, memory: 1GiB, disks: 2}]\n")
    with pytest.raises(ValidationError, match=r"hosts\[0\]\.disks \(line 1\): unknown key 'disks'"):
        Lab.up(bad, lab_id=9)


def test_attach_without_a_lab_says_how_to_start_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(lab.naming, "STATE_ROOT", tmp_path)
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
