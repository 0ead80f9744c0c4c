"""The Lab: bring a scenario up as real libvirt hosts in namespaces, drive its guests, tear it down."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from virtbalance.lab.errors import LabAlreadyUp, LabNotUp
from virtbalance.lab.host_daemons import LabHost
from virtbalance.lab.naming import LabNames, check_lab_id
from virtbalance.lab.preconditions import prepare_machine
from virtbalance.lab.recovery import LabRecovery
from virtbalance.lab.scenario import load_scenario, parse_scenario
from virtbalance.lab.services import LabMonitoring
from virtbalance.lab.state import read_state, update_state, write_state
from virtbalance.lab.system import REQUIRED_TOOLS, is_same_process, require_root, start_time
from virtbalance.lab.teardown import Leftovers, leftovers, teardown


class Lab(LabRecovery, LabMonitoring):
    """A running lab; get one with ``Lab.up`` or ``Lab.attach``.

    Its jobs are its parts' (lab.host_daemons: the hosts; lab.guests and lab.recovery: the guests;
    lab.services: the monitoring processes); the Lab itself only brings them up and down together.
    """

    @classmethod
    def up(cls, scenario: str | Path = "default", lab_id: int = 0) -> Lab:
        """Start every host and guest of ``scenario``; on any failure remove what was started, re-raise."""
        check_lab_id(lab_id)
        parsed = load_scenario(scenario)  # a bad scenario fails here, before anything exists
        tools = prepare_machine(REQUIRED_TOOLS)
        names = LabNames(lab_id)
        found = leftovers(names)
        if found:
            raise LabAlreadyUp(
                f"lab {lab_id} is already up (or left over from a crash): {_describe(found)}; "
                f"use it, or run: virtbalance lab down --lab-id {lab_id}"
            )
        names.state_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            names.state_dir.mkdir(mode=0o755)
        except FileExistsError:
            raise LabAlreadyUp(f"lab {lab_id} is being brought up by another process") from None
        lab: Lab | None = None
        try:
            (names.state_dir / "scenario.yaml").write_text(
                Path(parsed.source).read_text(encoding="utf-8")
            )
            state: dict[str, Any] = {
                "lab_id": lab_id,
                "status": "starting",
                "scenario_source": parsed.source,
                "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                # who brought it up: a test session tells its own lab from one a crashed run left
                "owner": {"pid": os.getpid(), "started": start_time(os.getpid())},
                "hosts": [],
                "processes": [],
                "loads": {},
            }
            write_state(names.state_dir, state)
            lab = cls(lab_id, parsed, state)
            image = lab._build_images()
            lab._start_hosts(tools)
            lab._start_scenario_guests(image, tools["qemu-system-x86_64"])
            update_state(names.state_dir, lambda s: s.update(status="up"))
            return lab
        except BaseException:
            if lab is not None:
                lab._close()
            teardown(lab_id)
            raise

    @classmethod
    def attach(cls, lab_id: int = 0) -> Lab:
        """The running lab with this id, from its state file."""
        check_lab_id(lab_id)
        names = LabNames(lab_id)
        state = read_state(names.state_dir)
        if state is None:
            raise LabNotUp(
                f"no lab {lab_id} is up; start one with: virtbalance lab up --lab-id {lab_id}"
            )
        if state.get("status") != "up":
            raise LabNotUp(f"lab {lab_id} is {state.get('status')!r}, not up")
        text = (names.state_dir / "scenario.yaml").read_text(encoding="utf-8")
        return cls(
            lab_id, parse_scenario(text, str(state.get("scenario_source", "scenario.yaml"))), state
        )

    def down(self) -> Leftovers:
        """Remove everything of this lab; what was found is returned (empty if it was already down)."""
        self._close()
        return teardown(self.lab_id)

    @staticmethod
    def teardown(lab_id: int = 0) -> Leftovers:
        """Remove lab ``lab_id`` without attaching: works after a crash and when nothing is there."""
        require_root()
        return teardown(check_lab_id(lab_id))


def _describe(found: Leftovers) -> str:
    parts = []
    if found.namespaces:
        parts.append(f"namespaces {', '.join(found.namespaces)}")
    if found.links:
        parts.append(f"links {', '.join(found.links)}")
    if found.processes:
        parts.append(f"{len(found.processes)} processes")
    if found.mounts:
        parts.append(f"mounts {', '.join(found.mounts)}")
    if found.state_dir:
        parts.append("its state directory")
    if found.cpu_group:
        parts.append("its CPU cgroup")
    return "; ".join(parts)


def live_owner(lab_id: int) -> int | None:
    """The pid of the still-running process that brought lab ``lab_id`` up, None if it is gone."""
    state = read_state(LabNames(lab_id).state_dir) or {}
    owner = state.get("owner")
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        return None
    return int(owner["pid"]) if is_same_process(int(owner["pid"]), owner.get("started")) else None


def is_up(lab_id: int) -> bool:
    """Whether lab ``lab_id`` has a state file saying it is up and its libvirtds still run."""
    state = read_state(LabNames(lab_id).state_dir)
    if not state or state.get("status") != "up":
        return False
    return all(
        is_same_process(int(p["pid"]), p.get("started"))
        for p in state.get("processes", [])
        if str(p.get("role", "")).startswith("libvirtd:")
    )


__all__ = ["Lab", "LabHost", "is_up", "live_owner"]
