"""The fault campaign's short run: one round of each fault kind against the real actioner and libvirt,
on the default lab's read-only disks and on the chunk's writable, leased disks (``chaos-disks``).

The full campaign (hundreds of rounds, many seeds) is ``benchmarks/chaos.py``; figures in
docs/benchmarks.md. The seed is fixed so a failure here replays with ``benchmarks/chaos.py --replay``;
VIRTBALANCE_CHAOS_SEED picks another one.
"""

from __future__ import annotations

import importlib.util
import io
import os
import sys
from pathlib import Path

import pytest

from tests.lab_fixtures import lab_up, spare_lab_id
from virtbalance.lab import Lab

pytestmark = [pytest.mark.integration, pytest.mark.lab, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
# Lines of a failing round's actioner log (DEBUG left out) carried in the failure's text.
KEPT_LOG_LINES = 80


def _chaos():
    spec = importlib.util.spec_from_file_location("chaos", REPO / "benchmarks" / "chaos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _one_round_of_each(chaos, lab: Lab, workdir: Path) -> None:
    seed = int(os.environ.get("VIRTBALANCE_CHAOS_SEED", "11"))
    chaos.register_event_loop()
    out = io.StringIO()
    keys = chaos.replay_keys(len(chaos.FAULTS), seed)
    results = chaos.run_rounds(lab, keys, out, workdir)
    assert sorted(r.fault for r in results) == sorted(chaos.FAULTS)
    failing = [r for r in results if r.violations]
    assert not failing, out.getvalue() + "".join(_kept_logs(failing))


def _kept_logs(failing) -> list[str]:
    """The end of each failing round's actioner log: pytest rotates its temporary directories, so the
    kept round directory can be gone before anyone reads it; the failure's own text keeps this."""
    texts = []
    for result in failing:
        for detail in result.details:
            if detail.startswith("kept: "):
                log = Path(detail.removeprefix("kept: ")) / "actioner.log"
                lines = log.read_text(errors="replace").splitlines() if log.exists() else []
                kept = [line for line in lines if " DEBUG " not in line][-KEPT_LOG_LINES:]
                texts.append(f"\n--- {result.key}: the end of {log}\n" + "\n".join(kept) + "\n")
    return texts


def test_one_round_of_every_fault_breaks_no_invariant(lab, tmp_path):
    _one_round_of_each(_chaos(), lab, tmp_path)


def test_one_round_of_every_fault_on_leased_writable_disks_breaks_no_invariant(tmp_path):
    # a lab of its own (the session lab keeps the default scenario for the tests after this one)
    chaos = _chaos()
    with lab_up("chaos-disks", spare_lab_id()) as disks:
        assert all(disks.scenario.domain(name).writable_disk for name in chaos.CHUNK)
        _one_round_of_each(chaos, disks, tmp_path)
