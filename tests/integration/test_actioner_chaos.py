"""The fault campaign's short run: one round of each fault kind against the real actioner and libvirt.

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

pytestmark = [pytest.mark.integration, pytest.mark.lab, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _chaos():
    spec = importlib.util.spec_from_file_location("chaos", REPO / "benchmarks" / "chaos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_one_round_of_every_fault_breaks_no_invariant(lab, tmp_path):
    chaos = _chaos()
    seed = int(os.environ.get("VIRTBALANCE_CHAOS_SEED", "11"))
    chaos.register_event_loop()
    out = io.StringIO()
    keys = chaos.replay_keys(len(chaos.FAULTS), seed)
    results = chaos.run_rounds(lab, keys, out, tmp_path)
    assert sorted(r.fault for r in results) == sorted(chaos.FAULTS)
    failing = [r for r in results if r.violations]
    assert not failing, out.getvalue()
