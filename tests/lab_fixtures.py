"""pytest plugin: one lab for the whole session (``lab``), reset before each test that asks (``fresh_lab``)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from lab import Lab
from lab.naming import lab_id_from_env
from lab.teardown import teardown


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The default scenario on lab VIRTBALANCE_LAB_ID (default 0), always torn down at session end."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (namespaces, one libvirtd per host); CI runs as root")
    lab_id = lab_id_from_env()
    teardown(lab_id)  # a lab left by a crashed run with this id would make Lab.up refuse
    instance = Lab.up("default", lab_id=lab_id)
    try:
        yield instance
    finally:
        instance.down()


@pytest.fixture
def fresh_lab(lab: Lab) -> Lab:
    """The session lab with every guest back on its scenario host at its initial load."""
    lab.reset()
    return lab
