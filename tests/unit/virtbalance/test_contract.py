"""The shared names against what is really served and generated, and the core's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from tests.fixtures.exporter.fake_libvirt import (
    RECORDED_BRIDGES,
    FakeBridges,
    FakeClock,
    FakeConnection,
    recorded_host,
)
from virtbalance import contract
from virtbalance.actioner.metrics import Metrics
from virtbalance.exporter.collector import LibvirtCollector
from virtbalance.exporter.source import DIRTYRATE_GROUP, STATS_GROUPS, LibvirtSource
from virtbalance.exporter.topology import TopologyCache
from virtbalance.namespace import COMPONENTS

REPO = Path(__file__).resolve().parents[3]
RULE_FILE = REPO / "alerting-rules" / "virtbalance.rules.yml"
EXPORTER_METRICS = (
    "LIBVIRT_UP",
    "NODE_CPUS",
    "NODE_CPU_SECONDS",
    "NODE_MEMORY_TOTAL",
    "NODE_MEMORY_FREE",
    "NODE_MEMORY_AVAILABLE",
    "DOMAIN_CPU_SECONDS",
    "DOMAIN_VCPU_DELAY",
    "DOMAIN_VIRTUAL_CPUS",
    "DOMAIN_MAXIMUM_MEMORY",
    "DOMAIN_MEMORY_RSS",
    "DOMAINS_NUMBER",
    "DOMAIN_CHUNK_INFO",
    "SCRAPE_DURATION",
    "SCRAPE_ERRORS",
)
ACTIONER_METRICS = (
    "MIGRATIONS",
    "MIGRATION_DURATION",
    "MIGRATION_RECENT_DURATION",
    "PLANS",
    "PLAN_DURATION",
    "CHUNK_SPLIT",
    "COOLDOWNS_ACTIVE",
    "UNPLACEABLE_CHUNKS",
    "DOMAINS_AMBIGUOUS",
    "DOMAIN_AMBIGUOUS",
    "WEBHOOK_REQUESTS",
    "LAST_SUCCESSFUL_PLAN",
    "HOST_EMPTIED",
)
# The domain model, the planner and the barriers: what any component may import without the others.
CORE = (
    "contract",
    "barriers",
    "policy",
    "snapshot",
    "plan",
    "chunks",
    "durations",
    "sizes",
    "errors",
    "reader",
    "namespace",
)
OUTER = set(COMPONENTS)


def _names(prefix: str) -> set[str]:
    return {getattr(contract, n) for n in dir(contract) if n.startswith(prefix)}


def _rules() -> list[dict[str, str]]:
    data = yaml.safe_load(RULE_FILE.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_every_alert_but_the_migration_alert_is_in_the_rule_file():
    alerts = {r["alert"] for r in _rules() if "alert" in r}
    assert _names("ALERT_") - {contract.ALERT_MIGRATION} == alerts


def test_every_recording_rule_is_in_the_rule_file():
    assert _names("RECORD_") == {r["record"] for r in _rules() if "record" in r}


def test_the_exporter_serves_every_exporter_metric():
    clock = FakeClock()
    conn = FakeConnection(recorded_host())
    source = LibvirtSource(
        connect=lambda: conn,
        clock=clock,
        timeout=5.0,
        topology_cache=TopologyCache(60.0),
        stats_groups=STATS_GROUPS | DIRTYRATE_GROUP,
    )
    collector = LibvirtCollector(source, bridges=FakeBridges(RECORDED_BRIDGES), clock=clock)
    served = {s.name for family in collector.collect() for s in family.samples}
    for name in EXPORTER_METRICS:
        assert getattr(contract, name) in served, name


def test_the_actioner_serves_every_actioner_metric():
    served = {family.name for family in Metrics().registry.collect()}
    served |= {s.name for family in Metrics().registry.collect() for s in family.samples}
    for name in ACTIONER_METRICS:
        assert getattr(contract, name) in served, name


def _outer_imports(path: Path) -> set[str]:
    """The outer packages (``virtbalance.actioner``, ...) a module imports, at any depth of its body."""
    modules = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.append(node.module)
        if isinstance(node, ast.Import):
            modules += [a.name for a in node.names]
    found = set()
    for module in modules:
        parts = module.split(".")
        # the bare folder names too: they cannot load (virtbalance.namespace), but say which file tried
        component = parts[1] if parts[0] == "virtbalance" and len(parts) > 1 else parts[0]
        found.add(component)
    return found & OUTER


def test_outer_imports_sees_the_namespaced_and_the_bare_names(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "import virtbalance.policy\nfrom virtbalance import exporter\n"
        "def f():\n    from virtbalance.actioner.config import X\n    import lab.api\n"
    )
    assert _outer_imports(module) == {"actioner", "lab"}


def test_the_core_imports_no_outer_package():
    files = [REPO / "virtbalance" / f"{name}.py" for name in CORE]
    for path in [*files, *(REPO / "virtbalance" / "planner").glob("*.py")]:
        assert not _outer_imports(path), path.name


def test_only_the_cli_entry_point_under_virtbalance_imports_an_outer_package():
    # The entry point composes every component's subcommands; nothing else under virtbalance/ may
    # depend on them, so the outer packages depend on virtbalance and never the other way round.
    # virtbalance/<component> are links to the components' folders: those are the outer packages.
    core = [
        path
        for path in (REPO / "virtbalance").rglob("*.py")
        if path.relative_to(REPO / "virtbalance").parts[0] not in OUTER
    ]
    assert len(core) > len(CORE)
    importing = {path.relative_to(REPO).as_posix() for path in core if _outer_imports(path)}
    assert importing == {"virtbalance/cli.py"}
