"""One actioner per journal, and a clean stop that fits inside systemd's stop timeout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from virtbalance.actioner.config import STOP_GRACE
from virtbalance.actioner.journal import JournalLock, JournalLockedError

REPO = Path(__file__).resolve().parents[3]


def test_a_second_lock_on_the_journal_names_the_journal_and_the_holder(tmp_path):
    journal = tmp_path / "journal.sqlite"
    held = JournalLock(journal)
    try:
        with pytest.raises(JournalLockedError) as caught:
            JournalLock(journal)
        message = str(caught.value)
        assert f"the journal {journal} is in use by another actioner (pid {os.getpid()}" in message
        assert "only one actioner may run per journal" in message
    finally:
        held.release()
    JournalLock(journal).release()  # released: the next one gets it


def test_a_second_actioner_process_exits_at_once_with_the_reason(tmp_path):
    journal = tmp_path / "journal.sqlite"
    config = tmp_path / "actioner.yml"
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    config.write_text(
        yaml.safe_dump(
            {
                # loopback URIs: the lock is taken before any host is contacted, nothing is sent
                "hosts": {"hv1": "qemu+tcp://127.0.0.1:1/system"},
                "journal": {"path": str(journal)},
                "webhook": {"token_file": str(token), "listen": "127.0.0.1:9"},
            }
        )
    )
    held = JournalLock(journal)
    try:
        result = subprocess.run(
            # -X importtime lists every module the process imported, on stderr
            [
                sys.executable,
                "-X",
                "importtime",
                "-m",
                "virtbalance.actioner.main",
                "--config",
                str(config),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        held.release()
    assert result.returncode == 3, result.stderr
    assert f"pid {os.getpid()}" in result.stderr
    assert str(journal) in result.stderr
    # "at once": refused before the web stack, libvirt and the planner were even imported
    imported = set(re.findall(r"^import time:.*\|\s*(\S+)$", result.stderr, re.MULTILINE))
    assert "virtbalance.actioner.config" in imported and "virtbalance.actioner.journal" in imported
    assert not imported & {"flask", "libvirt", "virtbalance.actioner.serve", "virtbalance.planner"}


def test_the_stop_grace_fits_inside_the_units_stop_timeout():
    unit = (REPO / "deploy" / "virtbalance-actioner.service").read_text()
    (timeout,) = re.findall(r"^TimeoutStopSec=(\d+)s?$", unit, re.MULTILINE)
    # some seconds are left for waitress and the process to exit after the worker is done
    assert int(timeout) >= STOP_GRACE + 10
