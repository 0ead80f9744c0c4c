"""A lab of its own (a spare id): up, teardown after a crash leaves nothing, failures clean up, twice is fine."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab_fixtures import TINY_SCENARIO
from virtbalance.cli import main
from virtbalance.lab import Lab, LabNotUp, cpu_share
from virtbalance.lab.api import live_owner
from virtbalance.lab.naming import LabNames, lab_id_from_env
from virtbalance.lab.system import start_time
from virtbalance.lab.teardown import leftovers, namespace_pids

pytestmark = [pytest.mark.integration, pytest.mark.lab]


@pytest.fixture
def spare_id() -> Iterator[int]:
    """A lab id nobody uses (nothing of it exists), so this test never touches someone else's lab."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (namespaces, one libvirtd per host); CI runs as root")
    session_id = lab_id_from_env()
    wanted = os.environ.get("VIRTBALANCE_LAB_SPARE_ID")
    candidates = [int(wanted)] if wanted else [(session_id + k) % 10 for k in range(5, 15)]
    free = [i for i in candidates if i != session_id and not leftovers(LabNames(i))]
    if not free:
        pytest.fail(
            f"no free lab id among {candidates} for the lifecycle test; set VIRTBALANCE_LAB_SPARE_ID"
        )
    lab_id = free[0]
    yield lab_id
    if live_owner(lab_id) == os.getpid():  # only what this session brought up
        Lab.teardown(lab_id)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SCENARIO)
    return path


def alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it runs nothing)."""
    return start_time(pid) is not None


def test_teardown_after_a_crash_leaves_nothing_and_can_repeat(spare_id: int, tiny: Path) -> None:
    names = LabNames(spare_id)
    lab = Lab.up(tiny, lab_id=spare_id)
    assert lab.placement() == {"t1": "ta", "t2": "tb"}
    sleeper = lab.exec_in_host("tb", ["sleep", "600"])
    pids = {pid for ns in leftovers(names).namespaces for pid in namespace_pids(ns)}
    assert sleeper.pid in pids
    assert len(pids) >= 5, "two libvirtds, two QEMUs and the sleeper"
    assert leftovers(names).mounts, "ip netns keeps a mount per namespace while the lab is up"

    # the process that brought the lab up is gone: tear down from the names and the state file alone
    del lab
    found = Lab.teardown(spare_id)
    sleeper.wait(timeout=10)

    assert sorted(found.namespaces) == [names.netns("ta"), names.netns("tb")]
    assert not leftovers(names), leftovers(names)
    assert not any(alive(pid) for pid in pids)
    assert not names.state_dir.exists()
    links = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    assert names.bridge + ":" not in links
    mounts = Path("/proc/self/mountinfo").read_text()
    assert f"/run/netns/{names.prefix}-" not in mounts
    with pytest.raises(LabNotUp, match="no lab"):
        Lab.attach(spare_id)

    assert not Lab.teardown(spare_id), "a second teardown finds nothing"
    assert main(["lab", "down", "--lab-id", str(spare_id)]) == 0


def test_every_hypervisor_process_runs_in_the_labs_cpu_group(spare_id: int, tiny: Path) -> None:
    """Daemons, guests, a migrated guest's new QEMU and a restarted daemon's: all in the group."""
    names = LabNames(spare_id)
    if cpu_share.controller_root() is None:
        pytest.skip("this machine has no CPU cgroup controller")
    lab = Lab.up(tiny, lab_id=spare_id)

    def outside() -> set[int]:
        """Processes of the hosts' namespaces that are not in the lab's CPU group."""
        pids = {pid for ns in leftovers(names).namespaces for pid in namespace_pids(ns)}
        return pids - set(cpu_share.members(names))

    group = cpu_share.group_dir(names)
    assert group is not None
    assert (group / "cpu.shares").exists() or (group / "cpu.weight").exists()
    assert len(cpu_share.members(names)) >= 6, "two virtlockds, two libvirtds and two QEMUs"
    assert outside() == set()
    sleeper = lab.exec_in_host("tb", ["sleep", "600"])  # entered from outside: not a daemon's child
    assert outside() == {sleeper.pid}
    sleeper.kill()
    sleeper.wait(timeout=10)

    lab.migrate("t2", "ta")  # the destination's libvirtd starts a new QEMU
    lab.stop_libvirtd("tb")
    lab.start_libvirtd("tb")
    lab.migrate("t2", "tb")  # a QEMU started by the restarted daemon
    assert lab.placement() == {"t1": "ta", "t2": "tb"}
    assert outside() == set()

    lab.down()
    assert not cpu_share.exists(names)
    assert not leftovers(names), leftovers(names)


def test_a_failing_up_removes_what_it_started(
    spare_id: int, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Lab, host: str, image: Path, emulator: str) -> None:
        raise RuntimeError(f"injected failure starting the guests of {host}")

    monkeypatch.setattr(Lab, "_start_guests", broken)
    with pytest.raises(RuntimeError, match="injected failure"):
        Lab.up(tiny, lab_id=spare_id)
    assert not leftovers(LabNames(spare_id))


def test_cli_reports_a_bad_scenario_without_starting_anything(
    spare_id: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY_SCENARIO.replace("host: tb", "host: tc"))
    assert main(["lab", "up", "--lab-id", str(spare_id), "--scenario", str(bad)]) == 2
    assert "domains[1].host (line 7): 'tc' is not a declared host" in capsys.readouterr().err
    assert not leftovers(LabNames(spare_id))
