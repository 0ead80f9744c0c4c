"""The components load as virtbalance.<name>, from this checkout's folders, and never as <name>."""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from pathlib import Path

import pytest

import virtbalance
import virtbalance.cli
from virtbalance.namespace import COMPONENTS, require_namespace

REPO = Path(__file__).resolve().parents[3]


def _loaded_under_a_bare_name() -> list[str]:
    return sorted(m for m in sys.modules if m.partition(".")[0] in COMPONENTS)


def test_every_package_at_the_top_of_the_checkout_is_virtbalance_a_component_or_the_tests():
    # a new package folder beside them would install under its bare name, or not at all
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")}
    assert packages == {"virtbalance", "tests", *COMPONENTS}


@pytest.mark.parametrize("name", COMPONENTS)
def test_each_component_is_a_link_from_virtbalance_to_its_folder(name):
    link = REPO / "virtbalance" / name
    assert link.is_symlink()
    # relative, so that every checkout and worktree links to its own folder
    assert os.readlink(link) == f"../{name}"


@pytest.mark.parametrize("name", COMPONENTS)
def test_each_component_loads_from_this_checkouts_folder(name):
    module = importlib.import_module(f"virtbalance.{name}")
    assert module.__file__ is not None
    assert Path(module.__file__) == REPO / "virtbalance" / name / "__init__.py"
    assert Path(module.__file__).resolve() == (REPO / name / "__init__.py").resolve()


@pytest.mark.parametrize("name", COMPONENTS)
def test_a_bare_component_name_refuses_to_load(name):
    with pytest.raises(ImportError, match=rf"^{name} installs as virtbalance\.{name}: "):
        importlib.import_module(name)
    assert name not in sys.modules


def test_require_namespace_accepts_only_names_under_virtbalance():
    require_namespace("virtbalance.lab")
    with pytest.raises(ImportError, match=r"^lab installs as virtbalance\.lab"):
        require_namespace("lab")


def _module_names(folder: Path, package: str) -> set[str]:
    """Every module and package under ``folder`` by its dotted name, from the files themselves."""
    names = set()
    for path in folder.rglob("*.py"):
        parts = path.relative_to(folder).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1:] != ("__main__",):
            names.add(".".join((package, *parts)))
    return names


def test_after_importing_every_module_none_is_loaded_under_a_bare_name():
    assert virtbalance.cli.build_parser() is not None
    imported = set()
    for info in pkgutil.walk_packages(virtbalance.__path__, "virtbalance."):
        if info.name.rpartition(".")[2] != "__main__":
            importlib.import_module(info.name)
            imported.add(info.name)
    # the walk went through the links: every file of every component's folder was imported
    for name in COMPONENTS:
        assert _module_names(REPO / name, f"virtbalance.{name}") <= imported, name
    assert _loaded_under_a_bare_name() == []
