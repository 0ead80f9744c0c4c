"""Shared pytest fixtures and markers for the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.lab_fixtures", "tests.actioner_fixtures"]

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
