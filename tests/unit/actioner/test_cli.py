"""``virtbalance status|vms|history|drain``: tables, wildcards, the journal, the drain request."""

from __future__ import annotations

import json
from http.server import HTTPServer

import pytest
import yaml

from tests.http_fixtures import QuietHandler, serving
from virtbalance.actioner import cli
from virtbalance.actioner.journal import AlertKey, Journal
from virtbalance.cli import main
from virtbalance.snapshot import DomainState, HostState, Snapshot

GiB = 1024**3
MiB = 1024**2


def snap():
    domains = (
        DomainState("web1", "hv1", 2, 1.0, 512 * MiB, ("lan11",)),
        DomainState("app1", "hv1", 1, 0.5, 512 * MiB, ("lan11", "lan12")),
        DomainState("mysql1", "hv1", 1, 0.25, 1 * GiB, ("lan12",)),
        DomainState("mysql2", "hv2", 1, 0.1, 1 * GiB),
        DomainState("cache1", "hv2", 1, 0.0, 256 * MiB, group="cache", pinned=True),
    )
    hosts = (
        HostState("hv1", 4, 8 * GiB, 1.75, 2 * GiB),
        HostState("hv2", 2, 4 * GiB, 0.1, int(1.25 * GiB)),
    )
    return Snapshot(time=1.0, hosts=hosts, domains=domains)


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        ([], ["web1", "app1", "mysql1", "cache1", "mysql2"]),
        (["*sql*"], ["mysql1", "mysql2"]),
        (["hv1/*sql*"], ["mysql1"]),
        (["hv2/"], ["cache1", "mysql2"]),
        (["web?", "*/cache*"], ["web1", "cache1"]),
        (["nothing"], []),
    ],
)
def test_vm_patterns(patterns, expected):
    rows = cli.domain_rows(snap(), patterns)
    assert sorted(r["domain"] for r in rows) == sorted(expected)


def test_domain_rows_carry_chunk_and_load():
    rows = {r["domain"]: r for r in cli.domain_rows(snap(), [])}
    assert rows["web1"]["chunk"] == rows["mysql1"]["chunk"] == "lan11+lan12"
    assert rows["mysql2"]["chunk"] == "domain:mysql2"
    assert rows["cache1"]["chunk"] == "group:cache"
    assert rows["web1"]["cpu_ratio"] == 0.5


def test_status_table_per_host_and_totals():
    rows = cli.host_rows(snap())
    assert [(r["host"], r["domains"], r["chunks"]) for r in rows] == [("hv1", 3, 1), ("hv2", 2, 2)]
    text = cli.render_status(rows, ("hv3",))
    lines = text.splitlines()
    assert lines[0].split() == [
        "HOST",
        "CPUS",
        "CPU%",
        "MEM",
        "USED",
        "MEM",
        "FREE",
        "MEM%",
        "VMS",
        "CHUNKS",
    ]
    assert lines[1].split() == ["hv1", "4", "43.8", "2.00G", "6.00G", "25.0", "3", "1"]
    assert lines[2].split() == ["hv2", "2", "5.0", "1.25G", "2.75G", "31.2", "2", "2"]
    assert lines[3].split() == ["hv3", "-", "-", "-", "-", "-", "-", "unreachable"]
    assert lines[4].split() == ["TOTAL", "6", "30.8", "3.25G", "8.75G", "27.1", "5", "3"]


def write_config(tmp_path, port=9096):
    (tmp_path / "token").write_text("tok")
    path = tmp_path / "actioner.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "hosts": {
                    "hv1": "qemu+tcp://192.0.2.1/system",
                    "hv2": "qemu+tcp://192.0.2.2/system",
                },
                "journal": {"path": str(tmp_path / "journal.sqlite")},
                "webhook": {"token_file": str(tmp_path / "token"), "listen": f"127.0.0.1:{port}"},
            }
        )
    )
    return path


def test_history_prints_plans_and_migrations(tmp_path, capsys):
    config = write_config(tmp_path)
    assert main(["history", "--config", str(config)]) == 0
    assert "no journal" in capsys.readouterr().err
    journal = Journal(tmp_path / "journal.sqlite")
    plan_id = journal.record_firing([AlertKey("f", "s", "g", "hv1")])
    row = journal.add_migration(
        plan_id=plan_id, step=0, domain="web1", chunk="lan11", source="hv1", destination="hv2"
    )
    journal.set_migration_state(row, "done")
    journal.set_plan_state(plan_id, "executed", detail="1 of 1 chunk(s) moved")
    journal.close()
    assert main(["history", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"plan {plan_id}" in out and "executed  1 of 1 chunk(s) moved" in out
    assert "web1" in out and "done" in out
    assert main(["history", "--config", str(config), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["plans"][0]["migrations"][0]["state"] == "done"


def test_drain_posts_to_the_actioner_with_the_token(tmp_path, capsys):
    seen = {}

    class Handler(QuietHandler):
        def do_POST(self):
            seen["path"] = self.path
            seen["auth"] = self.headers.get("Authorization")
            self.answer(202, json.dumps({"queued_plan": 7}).encode())

    with serving(HTTPServer(("127.0.0.1", 0), Handler)) as port:
        config = write_config(tmp_path, port)
        assert main(["drain", "hv2", "--config", str(config)]) == 0
        assert seen == {"path": "/api/v1/drain/hv2", "auth": "Bearer tok"}
        assert "queued as plan 7" in capsys.readouterr().out
        assert main(["drain", "hv9", "--config", str(config)]) == 2
        assert "unknown host 'hv9'" in capsys.readouterr().err
