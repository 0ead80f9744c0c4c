"""pytest plugin: one lab for the whole session (``lab``), reset before each test that asks (``fresh_lab``)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import pytest

from virtbalance.lab import Lab
from virtbalance.lab.api import live_owner
from virtbalance.lab.naming import LabNames, lab_id_from_env
from virtbalance.lab.teardown import leftovers, teardown

log = logging.getLogger(__name__)

# The smallest lab worth a test of its own: two one-CPU hosts, a chunk of one on ta (lan7), one on tb.
TINY_SCENARIO = """\
name: tiny
hosts:
  - {name: ta, cpus: 1, memory: 256MiB}
  - {name: tb, cpus: 1, memory: 256MiB}
domains:
  - {name: t1, host: ta, memory: 32MiB, private_networks: [lan7], load: 10}
  - {name: t2, host: tb, memory: 32MiB}
"""


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (namespaces, one libvirtd per host); CI runs as root")


def clear_stale_lab(lab_id: int) -> None:
    """Tear down a lab a crashed run left with this id; refuse to touch one a live process still owns."""
    owner = live_owner(lab_id)
    if owner is not None and owner != os.getpid():
        pytest.fail(
            f"lab {lab_id} is in use by process {owner}; set VIRTBALANCE_LAB_ID to a free id (0..9) "
            f"or stop it with: virtbalance lab down --lab-id {lab_id}"
        )
    teardown(lab_id)


def spare_lab_id() -> int:
    """A lab id nothing of which exists, other than the session's: for a test that needs a scenario of
    its own, so the session lab stays up under the tests that come after it."""
    require_root()
    session_id = lab_id_from_env()
    free = [i for i in range(10) if i != session_id and not leftovers(LabNames(i))]
    if not free:
        pytest.fail(f"no free lab id besides the session's ({session_id})")
    return free[0]


@contextlib.contextmanager
def lab_up(scenario: str, lab_id: int) -> Iterator[Lab]:
    """``scenario`` up as lab ``lab_id``, torn down however the block ends."""
    instance = Lab.up(scenario, lab_id=lab_id)
    try:
        yield instance
    finally:
        instance.down()


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The default scenario on lab VIRTBALANCE_LAB_ID (default 0), always torn down at session end."""
    require_root()
    lab_id = lab_id_from_env()
    clear_stale_lab(lab_id)
    with lab_up("default", lab_id) as instance:
        yield instance


@pytest.fixture
def fresh_lab(lab: Lab) -> Lab:
    """The session lab with every guest back on its scenario host at its initial load.

    A test that failed may leave a guest on two hosts or paused; such guests are started anew (and
    the log says what was found), so one failure never makes the next tests error.
    """
    repaired = lab.repair()
    if repaired:
        log.warning("the lab was not in a known state, repaired: %s", "; ".join(repaired))
    lab.reset()
    return lab
