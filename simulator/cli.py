"""``virtbalance simulate``: replay traces under virtbalance and earlier systems' policies, side by side."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from virtbalance.errors import ValidationError
from virtbalance.policy import Policy
from virtbalance.simulator import cloudsim
from virtbalance.simulator.cluster import HostGroup
from virtbalance.simulator.config import TRACE_FORMATS, Simulation, load_simulation
from virtbalance.simulator.plot import plot_hosts
from virtbalance.simulator.policies import PLUGINS
from virtbalance.simulator.report import diagnosis_table, table, to_json
from virtbalance.simulator.run import compare
from virtbalance.simulator.traces import GIB, MEMORY_BASES


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``simulate`` to the ``virtbalance`` command."""
    parser = subparsers.add_parser(
        "simulate",
        help="replay VM utilisation traces through virtbalance and earlier policies",
        description=(
            "Replay Bitbrains or PlanetLab traces on a simulated cluster under each policy and "
            "compare overload, migrations, flaps and chunk splits. Flags override the --config file."
        ),
    )
    parser.add_argument(
        "--scenario",
        choices=(cloudsim.SCENARIO,),
        help="a fixed published setup instead of --config and the cluster flags: cloudsim-planetlab "
        "replays a PlanetLab day (--traces DAY_DIR) on CloudSim's 800 ML110 G4/G5 hosts, with energy "
        "and CloudSim's SLA metrics",
    )
    parser.add_argument(
        "--config", help="simulation YAML file (traces, cluster, policy, compare, policies)"
    )
    parser.add_argument("--traces", help="trace directory or file")
    parser.add_argument("--format", choices=TRACE_FORMATS, help="trace format (default bitbrains)")
    parser.add_argument("--limit", type=int, help="use only the first N VMs")
    parser.add_argument("--memory", choices=MEMORY_BASES, help="VM memory footprint (Bitbrains)")
    parser.add_argument("--strict", action="store_true", help="fail on a malformed trace line")
    parser.add_argument("--hosts", type=int, help="number of hosts")
    parser.add_argument("--cpus", type=float, help="CPUs per host")
    parser.add_argument("--memory-gib", type=float, help="memory per host in GiB")
    parser.add_argument(
        "--power",
        help="power model of the hosts whose group names none, for energy in kWh "
        "(known: ml110-g4, ml110-g5)",
    )
    parser.add_argument("--chunk-share", type=float, help="share of VMs chained into chunks")
    parser.add_argument("--seed", type=int, help="seed of the chunk assignment")
    parser.add_argument("--fill", type=float, help="first fit fills a host up to this memory share")
    parser.add_argument(
        "--host-groups",
        help="mixed hosts instead of --hosts/--cpus/--memory-gib: HOSTSxCPUSxGIB,... (5x32x128,5x64x512)",
    )
    parser.add_argument(
        "--bandwidth-gib", type=float, help="migration bandwidth per host pair, GiB/s (default 1)"
    )
    parser.add_argument(
        "--no-migration-cost",
        action="store_true",
        help="migrations take no time and add no load (the model before migration costs)",
    )
    parser.add_argument("--policy-file", help="virtbalance policy YAML (the production one)")
    parser.add_argument(
        "--policies", help=f"comma-separated policies to compare (known: {', '.join(PLUGINS)})"
    )
    parser.add_argument("--json", help="write the results as JSON to this file ('-' for stdout)")
    parser.add_argument("--plot", help="write host CPU plots, one panel per policy, to this PNG")
    parser.set_defaults(func=run)


def _simulation(args: argparse.Namespace) -> Simulation:
    simulation = load_simulation(args.config)
    traces = simulation.traces
    for flag, key in (
        ("traces", "path"),
        ("format", "format"),
        ("limit", "limit"),
        ("memory", "memory"),
    ):
        value = getattr(args, flag)
        if value is not None:
            traces = replace(traces, **{key: value})
    if args.strict:
        traces = replace(traces, strict=True)
    cluster = simulation.cluster
    overrides: dict[str, Any] = {}
    for flag in ("hosts", "cpus", "chunk_share", "seed", "fill", "power"):
        if getattr(args, flag) is not None:
            overrides[flag] = getattr(args, flag)
    if args.memory_gib is not None:
        overrides["memory_bytes"] = int(args.memory_gib * GIB)
    if args.host_groups:
        try:
            overrides["groups"] = tuple(
                HostGroup.parse(g) for g in args.host_groups.split(",") if g.strip()
            )
        except ValueError as exc:
            raise ValidationError("--host-groups", [str(exc)]) from exc
    cluster = replace(cluster, **overrides) if overrides else cluster
    migration = simulation.migration
    if args.bandwidth_gib is not None:
        migration = replace(migration, bandwidth=args.bandwidth_gib * GIB)
    if args.no_migration_cost:
        migration = replace(migration, enabled=False)
    policy = Policy.load(args.policy_file) if args.policy_file else simulation.policy
    names = simulation.compare
    if args.policies:
        names = tuple(n.strip() for n in args.policies.split(",") if n.strip())
    simulation = replace(
        simulation,
        traces=traces,
        cluster=cluster,
        policy=policy,
        compare=names,
        migration=migration,
    )
    problems = simulation.problems()
    if problems:
        raise ValidationError(args.config or "simulate", problems)
    return simulation


def _progress(result: Any) -> None:
    m = result.metrics
    print(f"simulate: {m.policy} done in {m.replay_seconds:.1f} s", file=sys.stderr)


def _scenario(args: argparse.Namespace) -> Simulation:
    """The cloudsim-planetlab setup: only the traces, the limit, the policies and the policy file vary."""
    problems = [
        f"--{flag.replace('_', '-')}: not with --scenario (the scenario fixes it)"
        for flag in (
            "config",
            "format",
            "memory",
            "hosts",
            "cpus",
            "memory_gib",
            "chunk_share",
            "seed",
            "fill",
            "host_groups",
            "bandwidth_gib",
            "power",
        )
        if getattr(args, flag) not in (None, False)
    ] + (["--no-migration-cost: not with --scenario"] if args.no_migration_cost else [])
    if not args.traces:
        problems.append("--traces: missing (a PlanetLab day directory)")
    policy = (
        Policy.load(args.policy_file)
        if args.policy_file
        else Policy.from_mapping(cloudsim.POLICY, source=cloudsim.SCENARIO)
    )
    names = cloudsim.COMPARE
    if args.policies:
        names = tuple(n.strip() for n in args.policies.split(",") if n.strip())
    simulation = Simulation(policy=policy, compare=names, migration=cloudsim.cost_model())
    problems += simulation.problems(require_path=False)
    if problems:
        raise ValidationError("simulate", problems)
    return simulation


def _run_scenario(args: argparse.Namespace) -> int:
    simulation = _scenario(args)
    workload = cloudsim.load_day(args.traces, limit=args.limit, strict=args.strict)
    cluster = cloudsim.build(workload)
    comparison = compare(
        simulation,
        workload=workload,
        cluster=cluster,
        record_series=bool(args.plot),
        progress=_progress,
    )
    out = sys.stderr if args.json == "-" else sys.stdout
    print(table(comparison.results, simulation.policy.cpu_high), file=out)
    for name, figures in cloudsim.published(args.traces).items():
        shown = ", ".join(f"{k} {v:g}" for k, v in figures.items())
        print(f"CloudSim 3.0.3 published, {name}: {shown}", file=out)
    setup = cloudsim.setup(workload, cluster, args.traces)
    setup["policy"] = simulation.policy.to_mapping()
    setup["migration"] = simulation.migration.to_mapping()
    _write(args, comparison, setup, simulation.policy.cpu_high)
    return 0


def _write(
    args: argparse.Namespace, comparison: Any, setup: dict[str, Any], cpu_high: float
) -> None:
    if args.json:
        document = to_json(comparison.results, setup)
        if args.json == "-":
            print(document)
        else:
            Path(args.json).write_text(document + "\n", encoding="utf-8")
    if args.plot:
        written = plot_hosts(comparison.results, args.plot, comparison.workload.step, cpu_high)
        print(f"plot: {written}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    if args.scenario:
        return _run_scenario(args)
    simulation = _simulation(args)
    comparison = compare(simulation, record_series=bool(args.plot), progress=_progress)
    # With the JSON on stdout the table goes to stderr, so the JSON stays parseable.
    out = sys.stderr if args.json == "-" else sys.stdout
    print(table(comparison.results, simulation.policy.cpu_high), file=out)
    why = diagnosis_table(comparison.results)
    if why:
        print("\n" + why, file=out)
    skipped = comparison.workload.skipped_lines
    if skipped:
        print(
            f"skipped {len(skipped)} malformed trace line(s), first: {skipped[0]}", file=sys.stderr
        )
    _write(args, comparison, comparison.setup(simulation), simulation.policy.cpu_high)
    return 0
