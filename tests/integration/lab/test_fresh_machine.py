"""The lab comes up on a brand-new machine: none of libvirt's system directories, nothing left in /run.

The test cannot delete those directories from the machine (a real libvirt may use them), so it runs a
lab in a private mount namespace where empty tmpfs mounts hide ``/var/lib``, ``/var/cache``,
``/var/log`` and ``/run``: there, as after a fresh install without libvirt-daemon-system and a reboot,
``/var/lib/libvirt``, ``/var/cache/libvirt``, ``/var/log/libvirt`` and ``/run/libvirt`` do not exist,
and no earlier lab's state or namespace is visible.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from virtbalance.lab.hosts import MOUNT_POINTS
from virtbalance.lab.naming import LabNames, lab_id_from_env
from virtbalance.lab.teardown import leftovers

pytestmark = [pytest.mark.integration, pytest.mark.lab]

HIDDEN = ("/var/lib", "/var/cache", "/var/log", "/run")
SCENARIO = """\
name: fresh
hosts:
  - {name: fa, cpus: 1, memory: 256MiB}
  - {name: fb, cpus: 1, memory: 256MiB}
domains:
  - {name: f1, host: fa, memory: 32MiB, private_networks: [lan3], load: 10}
  - {name: f2, host: fb, memory: 32MiB}
"""

# Runs inside the private mount namespace: report what existed, bring the lab up, migrate, tear down.
CHILD = textwrap.dedent(
    """
    import json, os, sys
    from virtbalance.lab import Lab
    points, scenario, lab_id = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    report = {"before": {p: os.path.exists(p) for p in points}}
    lab = Lab.up(scenario, lab_id=lab_id)
    try:
        report["after"] = {p: os.path.isdir(p) for p in points}
        report["placement"] = lab.placement()
        lab.migrate("f1", "fb")
        report["moved"] = lab.placement()
    finally:
        report["leftovers"] = bool(lab.down())
    print(json.dumps(report))
    """
)


@pytest.fixture
def spare_id() -> Iterator[int]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (namespaces, one libvirtd per host); CI runs as root")
    session_id = lab_id_from_env()
    free = [i for i in range(10) if i != session_id and not leftovers(LabNames(i))]
    if not free:
        pytest.fail("no free lab id for the fresh-machine test")
    yield free[-1]


def test_the_lab_comes_up_where_no_libvirt_directory_exists(spare_id: int, tmp_path: Path) -> None:
    scenario = tmp_path / "fresh.yaml"
    scenario.write_text(SCENARIO)
    hide = " && ".join(f"mount -t tmpfs -o mode=0755 vbfresh {p}" for p in HIDDEN)
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{hide} && exec "$@"']
    argv += ["sh", sys.executable, "-c", CHILD, json.dumps(MOUNT_POINTS), str(scenario)]
    argv += [str(spare_id)]
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=300, check=False, cwd=Path.cwd()
    )
    # whatever happened inside, nothing of that lab may be left in the shared network namespace
    assert not leftovers(LabNames(spare_id)).links
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])

    libvirt_dirs = [p for p in MOUNT_POINTS if p != "/etc/libvirt"]
    assert {p: report["before"][p] for p in libvirt_dirs} == dict.fromkeys(libvirt_dirs, False)
    assert report["after"] == dict.fromkeys(MOUNT_POINTS, True)
    assert report["placement"] == {"f1": "fa", "f2": "fb"}
    assert report["moved"] == {"f1": "fb", "f2": "fb"}
    assert report["leftovers"] is True, "down() reports what it removed: the lab was really up"
