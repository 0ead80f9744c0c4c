"""The files the mixin generates into the repository, writing them, and finding the stale ones."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from virtbalance.mixin import dashboards, rulefile
from virtbalance.mixin.config import Config, load_policy

# (policy file, rule file it generates), relative to the repository: Prometheus (deploy/, the lab) loads
# the rule files from there and the promtool tests in alerting-rules/tests read them.
RULE_FILES = (
    (Path("alerting-rules/policy.yaml"), Path("alerting-rules/virtbalance.rules.yml")),
    (Path("alerting-rules/policy-lab.yaml"), Path("alerting-rules/virtbalance-lab.rules.yml")),
)
# Grafana provisions the dashboards from this folder (grafana/provisioning/dashboards/).
DASHBOARD_DIR = Path("grafana/dashboards")


@dataclass(frozen=True)
class Output:
    """One generated file: where it goes and the text it must hold."""

    path: Path
    text: str


def rule_outputs(root: Path) -> list[Output]:
    """The checked-in rule files, each from its policy file under ``root``."""
    outputs = []
    for policy_file, rule_file in RULE_FILES:
        config = Config(policy=load_policy(root / policy_file))
        outputs.append(Output(root / rule_file, rulefile.render(config, source=policy_file.name)))
    return outputs


def dashboard_outputs(directory: Path, config: Config) -> list[Output]:
    """Every dashboard of ``config`` as a file in ``directory``."""
    return [
        Output(directory / name, dashboards.render(dashboard))
        for name, dashboard in dashboards.build_all(config).items()
    ]


def repository_outputs(root: Path) -> list[Output]:
    """Every file ``make generate`` writes: the rule files and the dashboards (default thresholds)."""
    return rule_outputs(root) + dashboard_outputs(root / DASHBOARD_DIR, Config())


def stale(outputs: Iterable[Output]) -> list[Path]:
    """The outputs whose file is missing or holds other text than the generator makes."""
    found = []
    for output in outputs:
        try:
            current = output.path.read_text(encoding="utf-8")
        except OSError:
            current = None  # missing or unreadable: either way not what the generator makes
        if current != output.text:
            found.append(output.path)
    return found


def write(outputs: Iterable[Output]) -> list[Path]:
    """Write every output (creating its folder); returns the paths written."""
    written = []
    for output in outputs:
        output.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(output.path, output.text)
        written.append(output.path)
    return written


def check_or_write(outputs: list[Output], *, check: bool, prog: str, stale_hint: str) -> int:
    """The command lines' last step: name every stale file (exit 1), or write them all (exit 0)."""
    if check:
        found = stale(outputs)
        for path in found:
            print(f"{prog}: {path} {stale_hint}", file=sys.stderr)
        return 1 if found else 0
    for path in write(outputs):
        print(path)
    return 0


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename.

    Prometheus may reload and Grafana rescan at any moment: they must see the old file or the new one,
    never half of one.
    """
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
