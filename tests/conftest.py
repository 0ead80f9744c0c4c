"""Shared pytest fixtures and markers for the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["tests.lab_fixtures", "tests.actioner_fixtures"]

REPO_ROOT = Path(__file__).resolve().parent.parent

# Property tests prove invariants, not speed: hypothesis's default 200 ms deadline per example and its
# too-slow health check fail on a loaded machine with the same inputs that pass on an idle one
# (test_chunks' partition property did at load 30). Speed goals live in benchmarks/.
settings.register_profile(
    "virtbalance", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("virtbalance")
SHARED_DIR = REPO_ROOT.parent / "shared"


# The directory a test lives in says what it needs: `make unit`, `make integration` and `make e2e` select
# by these markers, so a test outside the three directories would be run by none of them.
# Below the first level, each tree mirrors the source folders (docs/architecture.md, "Tests").
MARKER_BY_DIRECTORY = {"unit": "unit", "integration": "integration", "e2e": "e2e"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        directory = item.path.relative_to(REPO_ROOT / "tests").parts[0]
        if directory not in MARKER_BY_DIRECTORY:
            raise pytest.UsageError(
                f"{item.nodeid}: a test belongs under tests/unit, tests/integration or tests/e2e"
            )
        item.add_marker(MARKER_BY_DIRECTORY[directory])


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
