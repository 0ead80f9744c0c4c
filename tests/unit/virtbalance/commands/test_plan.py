"""``virtbalance plan``: table and JSON output, modes, and bad input giving exit 2 with no plan."""

from __future__ import annotations

import argparse
import copy
import json

import pytest

from virtbalance.cli import main
from virtbalance.commands import plan as plan_command
from virtbalance.forecast import Forecast
from virtbalance.snapshot import parse_snapshot

GiB = 2**30

SNAPSHOT = {
    "version": 1,
    "time": 1000.0,
    "hosts": [
        {"name": "a", "cpus": 4, "memory_bytes": 8 * GiB},
        {"name": "b", "cpus": 4, "memory_bytes": 8 * GiB},
    ],
    "domains": [
        {"name": "x", "host": "a", "vcpus": 2, "cpu_used": 2.0, "memory_bytes": GiB},
        {
            "name": "y",
            "host": "a",
            "vcpus": 2,
            "cpu_used": 1.5,
            "memory_bytes": GiB,
            "private_networks": ["n1"],
        },
        {
            "name": "z",
            "host": "a",
            "vcpus": 1,
            "cpu_used": 0.2,
            "memory_bytes": GiB // 2,
            "private_networks": ["n1"],
        },
    ],
}


def write(tmp_path, data, name="snap.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_json_plan_relieves_with_least_memory(tmp_path, capsys):
    assert main(["plan", "--snapshot", write(tmp_path, SNAPSHOT), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "relieve"
    # a: 3.7 cores of 4 -> needs 1.1 cores out; x (1 GiB, 2 cores) beats chunk n1 (1.5 GiB)
    assert [(m["domain"], m["destination"], m["chunk"]) for m in out["migrations"]] == [
        ("x", "b", "domain:x")
    ]
    assert out["unresolved"] == []
    after = {h["name"]: h for h in out["hosts_after"]}
    assert after["a"]["cpu_ratio"] == pytest.approx(0.425)
    assert after["b"]["cpu_ratio"] == pytest.approx(0.5)


def test_table_output_names_moves_and_hosts(tmp_path, capsys):
    assert main(["plan", "--snapshot", write(tmp_path, SNAPSHOT)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("plan (relieve): 1 migration(s) in 1 chunk(s)")
    assert "domain:x  x       a     b" in out
    assert "relieve a: cpu 92.5%" in out


def test_drain_mode_and_policy_file(tmp_path, capsys):
    policy = tmp_path / "policy.yaml"
    policy.write_text("cpu_high: 0.95\ncpu_target: 0.95\nmemory_high: 1.0\nmemory_target: 1.0\n")
    assert (
        main(
            [
                "plan",
                "--snapshot",
                write(tmp_path, SNAPSHOT),
                "--policy",
                str(policy),
                "--mode",
                "drain:a",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "drain:a"
    assert sorted(m["domain"] for m in out["migrations"]) == ["x", "y", "z"]
    assert {m["destination"] for m in out["migrations"]} == {"b"}


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(colour=1), "colour: unknown key"),
        (
            lambda d: d["domains"][0].update(host="nowhere"),
            "domains[0].host: unknown host 'nowhere'",
        ),
        (
            lambda d: d["domains"][1].update(memory_bytes=-1),
            "domains[1].memory_bytes: must not be negative",
        ),
        (lambda d: d["hosts"][0].update(cpus=-2), "hosts[0].cpus: must not be negative"),
        (lambda d: d["domains"][2].pop("cpu_used"), "domains[2].cpu_used: missing"),
        (lambda d: d["hosts"][1].pop("name"), "hosts[1].name: missing"),
    ],
)
def test_malformed_snapshot_exits_2_naming_the_field(tmp_path, capsys, mutate, field):
    data = copy.deepcopy(SNAPSHOT)
    mutate(data)
    assert main(["plan", "--snapshot", write(tmp_path, data), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert field in captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "drain"], "drain needs a host"),
        (["--mode", "drain:ghost"], "unknown host 'ghost'"),
        (["--mode", "shuffle"], "unknown mode 'shuffle'"),
    ],
)
def test_bad_mode_exits_2(tmp_path, capsys, args, message):
    assert main(["plan", "--snapshot", write(tmp_path, SNAPSHOT), *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err


def test_bad_policy_and_missing_file_exit_2(tmp_path, capsys):
    policy = tmp_path / "policy.yaml"
    policy.write_text("cpu_high: 3\n")
    assert main(["plan", "--snapshot", write(tmp_path, SNAPSHOT), "--policy", str(policy)]) == 2
    assert "cpu_high" in capsys.readouterr().err
    assert main(["plan", "--snapshot", str(tmp_path / "absent.json")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "cannot read" in captured.err


def test_live_needs_config(capsys):
    assert main(["plan", "--live"]) == 2
    assert "--live needs --config" in capsys.readouterr().err


def test_live_with_unusable_config_exits_2(tmp_path, capsys):
    assert main(["plan", "--live", "--config", str(tmp_path / "absent.yaml")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "absent.yaml" in captured.err


def test_json_says_nothing_was_cut(tmp_path, capsys):
    assert main(["plan", "--snapshot", write(tmp_path, SNAPSHOT), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cut_short"] is None


def test_a_plan_cut_by_its_budget_says_so_in_json_and_table(tmp_path, capsys):
    # A tight cluster with the caps lifted (issue 16's kind): the greedy search alone takes seconds.
    from virtbalance.planner.instances import generate, tight  # noqa: PLC0415

    snapshot = write(tmp_path, generate(17, tight(17)).to_dict())
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "max_migrations: 100000\nmax_per_host: 100000\nplan_budget: 10ms\nplan_solver: greedy\n"
    )
    assert main(["plan", "--snapshot", snapshot, "--policy", str(policy), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cut_short"]["budget_seconds"] == 0.01
    assert out["cut_short"]["stage"] in {"search", "improvement", "variants"}
    assert out["migrations"]  # the first sets found still move
    assert main(["plan", "--snapshot", snapshot, "--policy", str(policy)]) == 0
    assert "cut short: plan_budget 0.01s ran out during" in capsys.readouterr().out


def test_a_bad_budget_is_bad_input(tmp_path, capsys):
    policy = tmp_path / "policy.yaml"
    policy.write_text("plan_budget: 0s\n")
    snapshot = write(tmp_path, SNAPSHOT)
    assert main(["plan", "--snapshot", snapshot, "--policy", str(policy)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "plan_budget: must be a positive duration, got '0s'" in captured.err


def test_live_plans_on_the_forecast_the_actioner_reads_and_says_what_it_lacks(capsys):
    live_data = copy.deepcopy(SNAPSHOT)
    live_data["hosts"].append({"name": "c", "cpus": 4, "memory_bytes": 8 * GiB})
    live_data["domains"] += [
        {"name": "w", "host": "b", "vcpus": 2, "cpu_used": 0.2, "memory_bytes": GiB},
        {"name": "v", "host": "c", "vcpus": 2, "cpu_used": 0.5, "memory_bytes": GiB},
    ]
    snapshot = parse_snapshot(live_data)
    # On the samples x (2 cores) goes to b, the emptier (0.2 of 4 cores against c's 0.5); at b's
    # recent peak (2.8 cores) b would pass cpu_high, so the forecast sends it to c.
    peaks = Forecast(domains={"w": 2.8}, hosts={"b": 2.8})
    seen: list[str] = []

    def live(config_path: str) -> plan_command.LiveCluster:
        seen.append(config_path)
        return plan_command.LiveCluster(snapshot, None, peaks, ("no averages: 20m of history",))

    parser = argparse.ArgumentParser()
    plan_command.register(parser.add_subparsers(), live=live)
    args = parser.parse_args(["plan", "--live", "--config", "actioner.yaml", "--json"])
    assert args.func(args) == 0
    captured = capsys.readouterr()
    assert seen == ["actioner.yaml"]
    assert [(m["domain"], m["destination"]) for m in json.loads(captured.out)["migrations"]] == [
        ("x", "c")
    ]
    assert captured.err == "plan: no averages: 20m of history\n"
