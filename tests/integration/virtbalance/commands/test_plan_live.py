"""``virtbalance plan --live`` against the lab: a plan from the real cluster, and nothing migrated."""

from __future__ import annotations

import json

import pytest

from tests.integration.actioner.test_lab import write_config
from virtbalance.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.lab]

OVERLOADED = "hv1"


def test_plan_live_relieves_the_overloaded_host_in_whole_chunks_and_moves_nothing(
    fresh_lab, tmp_path, capsys
):
    # Real load on the chunk lan11+lan12 (web1, app1, db1 on hv1), as the actioner's lab tests do.
    fresh_lab.set_load("web1", 45)
    fresh_lab.set_load("app1", 45)
    try:
        run_and_check(fresh_lab, tmp_path, capsys)
    finally:
        fresh_lab.reset()


def run_and_check(fresh_lab, tmp_path, capsys):
    before = fresh_lab.placement()
    assert (
        main(
            [
                "plan",
                "--live",
                "--config",
                str(write_config(fresh_lab, tmp_path, overloaded=OVERLOADED)),
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "relieve"
    assert {h["name"] for h in out["hosts_after"]} == {h.name for h in fresh_lab.hosts}
    # hv1 is relieved or says why not; nothing else is touched as a source.
    assert out["migrations"] or any(u["host"] == OVERLOADED for u in out["unresolved"])
    assert {m["source"] for m in out["migrations"]} <= {OVERLOADED}
    for m in out["migrations"]:
        assert before[m["domain"]] == OVERLOADED
        assert m["destination"] != OVERLOADED and m["reason"]
    # Chunks move whole: every domain of the scenario's chunk on hv1 has the same fate.
    fate = {m["domain"]: m["destination"] for m in out["migrations"]}
    for chunk_id in {m["chunk"] for m in out["migrations"]}:
        assert len({m["destination"] for m in out["migrations"] if m["chunk"] == chunk_id}) == 1
    # The loaded chunk carries nearly all of hv1's CPU: it is what must leave, whole, to one host.
    chunk = {"app1", "db1", "web1"}
    assert chunk <= set(fate), out
    assert len({fate[name] for name in chunk}) == 1
    assert {m["chunk"] for m in out["migrations"] if m["domain"] in chunk} == {"lan11+lan12"}
    # Planning executes nothing.
    assert fresh_lab.placement() == before
