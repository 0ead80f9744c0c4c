"""The wheel installs only virtbalance; the wheel, an editable install and a PYTHONPATH checkout all run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from virtbalance import __version__
from virtbalance.namespace import COMPONENTS

REPO = Path(__file__).resolve().parents[2]
# What a checkout holds beside the sources: none of it goes into a build.
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", "build", "dist", ".*_cache", ".hypothesis", "out"
)
MODULES = (
    "virtbalance.cli",
    "virtbalance.actioner.app",
    "virtbalance.actioner.main",
    "virtbalance.exporter.main",
    "virtbalance.lab.api",
    "virtbalance.lab.demo.stack",
    "virtbalance.simulator.run",
)


def _attempt(argv: list[str | Path], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # no checkout on the path: the interpreter finds virtbalance only where it was installed
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | env
    return subprocess.run(
        [str(a) for a in argv],
        check=False,
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _run(argv: list[str | Path], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    done = _attempt(argv, cwd, **env)
    assert done.returncode == 0, (argv, done.stdout, done.stderr)
    return done


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of this checkout (the links kept as links), so builds write nothing into the real one."""
    copy = tmp_path_factory.mktemp("checkout") / "virtbalance"
    shutil.copytree(REPO, copy, symlinks=True, ignore=NOT_SOURCES)
    return copy


@pytest.fixture(scope="module")
def wheel(checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # no build isolation: the build uses this venv's setuptools and needs no index
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            out,
            checkout,
        ],
        cwd=out,
    )
    (built,) = out.glob("virtbalance-*.whl")
    return built


def _venv(directory: Path) -> Path:
    """A new venv that sees this one's dependencies (offline) but none of its virtbalance install.

    A path in a .pth file is only added to sys.path: the .pth files inside it (this venv's editable
    install of virtbalance) are not run.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", directory], check=True)
    python = directory / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # this venv's site-packages, and those it reaches through .pth files itself; never a checkout
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    ours |= {p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")}
    (Path(purelib) / "virtbalance-test-dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    return python


def _pip_install(python: Path, *args: str | Path) -> None:
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            *args,
        ],
        cwd=python.parent,
    )


def _files_of(python: Path, cwd: Path, **env: str) -> dict[str, Path]:
    """Each of MODULES imported in ``python`` -> the file it was loaded from."""
    script = "import importlib, sys\nfor m in sys.argv[1:]: print(m, importlib.import_module(m).__file__)"
    out = _run([python, "-c", script, *MODULES], cwd=cwd, **env).stdout
    files = {name: Path(file) for name, file in (line.split(" ", 1) for line in out.splitlines())}
    assert set(files) == set(MODULES)
    return files


def _bare_names_fail(python: Path, cwd: Path) -> None:
    for name in COMPONENTS:
        done = _attempt([python, "-c", f"import {name}"], cwd)
        assert done.returncode == 1, (name, done.stderr)
        assert f"ModuleNotFoundError: No module named '{name}'" in done.stderr, (name, done.stderr)


def test_the_wheel_holds_only_virtbalance_with_every_module_and_data_file(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {n.split("/")[0] for n in names} == {
        "virtbalance",
        f"virtbalance-{__version__}.dist-info",
    }
    sources = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / "virtbalance").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    for name in COMPONENTS:
        sources |= {
            f"virtbalance/{p.relative_to(REPO).as_posix()}" for p in (REPO / name).rglob("*.py")
        }
    assert {n for n in names if n.endswith(".py")} == sources
    data = [*(REPO / "lab" / "scenarios").glob("*.yaml"), *(REPO / "lab" / "guest").iterdir()]
    assert len(data) > 2
    for path in data:
        assert f"virtbalance/{path.relative_to(REPO).as_posix()}" in names


def test_a_clean_venv_with_the_wheel_runs_every_command(wheel: Path, tmp_path: Path):
    python = _venv(tmp_path / "venv")
    _pip_install(python, wheel)
    site = Path(
        _run(
            [python, "-c", "import virtbalance; print(virtbalance.__file__)"], cwd=tmp_path
        ).stdout.strip()
    ).parent.parent
    for name, file in _files_of(python, tmp_path).items():
        assert file.is_relative_to(site / "virtbalance"), (name, file)
    _bare_names_fail(python, tmp_path)

    bin_dir = python.parent
    usage = _run([bin_dir / "virtbalance", "--help"], cwd=tmp_path).stdout
    for command in ("plan", "rules", "status", "lab", "simulate", "demo"):
        assert command in usage
    assert (
        "--web.listen-address"
        in _run([bin_dir / "virtbalance-exporter", "--help"], cwd=tmp_path).stdout
    )
    assert "--config" in _run([bin_dir / "virtbalance-actioner", "--help"], cwd=tmp_path).stdout
    # the rules from the installed code equal the checked-in file generated from the same policy
    policy = REPO / "alerting-rules" / "policy-lab.yaml"
    rules = _run([bin_dir / "virtbalance", "rules", "--policy", policy], cwd=tmp_path).stdout
    assert rules == (REPO / "alerting-rules" / "virtbalance-lab.rules.yml").read_text()
    # the lab's scenarios and guest sources come from the package data
    check = (
        "from virtbalance.lab import image, scenario\n"
        "print(sorted(scenario.shipped_scenarios()), image.GUEST_SOURCE.read_text() != '',"
        " image.WRITER_SOURCE.is_file(), len(scenario.load_scenario('default').hosts) > 1)"
    )
    shipped = sorted(p.stem for p in (REPO / "lab" / "scenarios").glob("*.yaml"))
    assert _run([python, "-c", check], cwd=tmp_path).stdout.strip() == f"{shipped} True True True"


def test_an_editable_install_loads_every_component_from_its_checkout(
    checkout: Path, tmp_path: Path
):
    # the bootstrap's way: pip install -e into the checkout's venv
    python = _venv(tmp_path / "venv")
    _pip_install(python, "--no-build-isolation", "-e", checkout)
    for name, file in _files_of(python, tmp_path).items():
        assert file.is_relative_to(checkout / "virtbalance"), (name, file)
    _bare_names_fail(python, tmp_path)


def test_a_checkout_on_pythonpath_wins_over_the_installed_one(checkout: Path, tmp_path: Path):
    # engineers run a worktree's tests on a venv another checkout installed: the worktree's code must load
    files = _files_of(Path(sys.executable), tmp_path, PYTHONPATH=str(checkout))
    for name, file in files.items():
        assert file.is_relative_to(checkout / "virtbalance"), (name, file)
