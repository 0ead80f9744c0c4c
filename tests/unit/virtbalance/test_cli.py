"""The ``virtbalance`` command: every subcommand is there, answers --help, and is composed statically."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

from virtbalance import cli
from virtbalance.cli import build_parser, main

REPO = Path(__file__).resolve().parents[3]
# Every subcommand path the command has had; a rename or a lost registration fails here.
SUBCOMMANDS = {
    ("plan",): ("--snapshot", "--live", "--config", "--policy", "--mode", "--json", "--all-hosts"),
    ("rules",): ("--policy", "--output", "--profile", "--runbook-base", "--check"),
    ("status",): ("--config", "--json"),
    ("vms",): ("--config", "--json"),
    ("drain",): ("--config", "--url", "--cacert", "--cert", "--key"),
    ("history",): ("--config", "--limit", "--json"),
    ("lab",): (),
    ("lab", "up"): ("--lab-id", "--scenario", "--with-monitoring", "--webhook-url", "--rules"),
    ("lab", "down"): ("--lab-id",),
    ("lab", "status"): ("--lab-id",),
    ("lab", "load"): ("--lab-id",),
    ("lab", "migrate"): ("--lab-id",),
    ("lab", "reset"): ("--lab-id",),
    ("simulate",): (),
    ("demo",): (),
    ("demo", "up"): ("--scenario", "--lab-id", "--timeout", "--policy", "--backend"),
    ("demo", "down"): ("--lab-id",),
}


def _paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    found = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= {(*prefix, name), *_paths(sub, (*prefix, name))}
    return found


def test_the_parser_has_exactly_the_known_subcommands():
    assert _paths(build_parser()) == set(SUBCOMMANDS)


@pytest.mark.parametrize("path", sorted(SUBCOMMANDS), ids=" ".join)
def test_every_subcommand_answers_help_with_its_options(path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*path, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: virtbalance {' '.join(path)}")
    for option in SUBCOMMANDS[path]:
        assert option in out, (path, option)


def test_no_subcommand_prints_usage_and_exits_2(capsys):
    assert main([]) == cli.EXIT_USAGE
    assert capsys.readouterr().err.startswith("usage: virtbalance")


def test_an_unknown_subcommand_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_the_cli_imports_every_command_module_at_the_top():
    # A reader and mypy can follow every subcommand: no importlib, no import inside a function.
    for path in [
        REPO / "virtbalance" / "cli.py",
        *(REPO / "virtbalance" / "commands").glob("*.py"),
    ]:
        tree = ast.parse(path.read_text())
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                assert id(node) in top, (path.name, node.lineno)
                names = [node.module] if isinstance(node, ast.ImportFrom) else []
                names += [alias.name for alias in node.names]
                assert not any(n and n.split(".")[0] == "importlib" for n in names), path.name
        assert "noqa: PLC0415" not in path.read_text(), path.name
