"""The lab comes up on a brand-new machine: none of libvirt's system directories, nothing left in /run.

The test cannot delete those directories from the machine (a real libvirt may use them), so it runs a
lab in a private mount namespace where empty tmpfs mounts hide ``/var/lib``, ``/var/cache``,
``/var/log`` and ``/run``: there, as after a fresh install without libvirt-daemon-system and a reboot,
``/var/lib/libvirt``, ``/var/cache/libvirt``, ``/var/log/libvirt`` and ``/run/libvirt`` do not exist,
and no earlier lab's state or namespace is visible.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.lab_fixtures import TINY_SCENARIO, spare_lab_id
from virtbalance.lab.hosts import MOUNT_POINTS
from virtbalance.lab.naming import LabNames
from virtbalance.lab.teardown import leftovers

pytestmark = [pytest.mark.integration, pytest.mark.lab]

HIDDEN = ("/var/lib", "/var/cache", "/var/log", "/run")

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
        lab.migrate("t1", "tb")
        report["moved"] = lab.placement()
    finally:
        report["leftovers"] = bool(lab.down())
    print(json.dumps(report))
    """
)


def test_the_lab_comes_up_where_no_libvirt_directory_exists(tmp_path: Path) -> None:
    spare_id = spare_lab_id()
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY_SCENARIO)
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
    assert report["placement"] == {"t1": "ta", "t2": "tb"}
    assert report["moved"] == {"t1": "tb", "t2": "tb"}
    assert report["leftovers"] is True, "down() reports what it removed: the lab was really up"
