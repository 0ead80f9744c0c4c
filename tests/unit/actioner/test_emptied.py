"""The emptied marks: set after a consolidation leaves a host empty, kept across a restart, cleared on use."""

from __future__ import annotations

from virtbalance.actioner import journal as jr
from virtbalance.actioner.emptied import EmptiedHosts
from virtbalance.actioner.journal import Journal
from virtbalance.actioner.metrics import Metrics
from virtbalance.plan import Migration, Mode, Plan
from virtbalance.snapshot import DomainState, HostState, Snapshot

GiB = 2**30
HOSTS = ("hv1", "hv2", "hv3")


def snapshot(placement: dict[str, str]) -> Snapshot:
    hosts = tuple(HostState(h, 4.0, 8 * GiB, 0.0, 0) for h in HOSTS)
    domains = tuple(DomainState(d, h, 1, 0.1, GiB) for d, h in sorted(placement.items()))
    return Snapshot(1000.0, hosts, domains)


def run(journal: Journal, mode: str, moves: list[tuple[str, str, str, str]]) -> tuple[int, Plan]:
    """Journal a plan whose moves (domain, source, destination, final state) ended as given."""
    plan_id = journal.create_plan("test", mode, [])
    migrations = []
    for step, (domain, source, destination, state) in enumerate(moves):
        row = journal.add_migration(
            plan_id=plan_id,
            step=step,
            domain=domain,
            chunk=f"domain:{domain}",
            source=source,
            destination=destination,
            state=jr.RUNNING,
        )
        journal.set_migration_state(row, state)
        migrations.append(Migration(domain, source, destination, f"domain:{domain}", "test"))
    return plan_id, Plan(Mode.parse(mode), tuple(migrations))


def gauge(metrics: Metrics, host: str) -> float | None:
    return metrics.registry.get_sample_value("virtbalance_host_emptied", {"host": host})


def test_a_consolidation_that_empties_a_host_marks_it_and_the_mark_survives_a_restart(tmp_path):
    path = tmp_path / "journal.sqlite"
    journal, metrics = Journal(path), Metrics()
    emptied = EmptiedHosts(journal, metrics, HOSTS)
    assert [gauge(metrics, h) for h in HOSTS] == [0, 0, 0]
    before = snapshot({"a": "hv1", "b": "hv2", "c": "hv3", "d": "hv3"})
    plan_id, plan = run(
        journal, "consolidate", [("c", "hv3", "hv1", jr.DONE), ("d", "hv3", "hv2", jr.DONE)]
    )
    assert emptied.after(plan_id, plan, before) == (["hv3"], [])
    assert [gauge(metrics, h) for h in HOSTS] == [0, 0, 1]
    journal.close()

    # A new process: a new journal connection and a fresh registry.
    journal, metrics = Journal(path), Metrics()
    emptied = EmptiedHosts(journal, metrics, HOSTS)
    assert [gauge(metrics, h) for h in HOSTS] == [0, 0, 1]
    assert journal.emptied_hosts()["hv3"]["plan_id"] == plan_id
    seen = emptied.view(snapshot({"a": "hv1", "b": "hv2", "c": "hv1", "d": "hv2"}))
    assert [h.emptied for h in seen.hosts] == [False, False, True]

    # Relief places something on it: unmarked, and the episode is kept.
    relief_id, relief = run(journal, "relieve", [("a", "hv1", "hv3", jr.DONE)])
    assert emptied.after(relief_id, relief, seen) == ([], ["hv3"])
    assert journal.emptied_hosts() == {}
    assert gauge(metrics, "hv3") == 0
    history = journal._db.execute("SELECT host, plan_id, how FROM emptied_history").fetchall()
    assert [tuple(r) for r in history] == [("hv3", plan_id, f"plan {relief_id} placed a on it")]


def test_a_host_left_with_a_domain_or_a_failed_move_is_not_marked(tmp_path):
    journal, metrics = Journal(tmp_path / "j.sqlite"), Metrics()
    emptied = EmptiedHosts(journal, metrics, HOSTS)
    before = snapshot({"a": "hv1", "c": "hv3", "d": "hv3", "e": "hv2"})
    # c moved, d failed: hv3 still runs d. e moved and was rolled back (a rollback row brings it home).
    plan_id, plan = run(
        journal,
        "consolidate",
        [
            ("c", "hv3", "hv1", jr.DONE),
            ("d", "hv3", "hv1", jr.FAILED),
            ("e", "hv2", "hv1", jr.DONE),
            ("e", "hv1", "hv2", jr.DONE),
        ],
    )
    assert emptied.after(plan_id, plan, before) == ([], [])
    assert journal.emptied_hosts() == {}


def test_only_consolidation_marks_and_a_marked_host_running_domains_again_is_unmarked(tmp_path):
    journal, metrics = Journal(tmp_path / "j.sqlite"), Metrics()
    emptied = EmptiedHosts(journal, metrics, HOSTS)
    before = snapshot({"a": "hv1", "c": "hv3"})
    plan_id, plan = run(journal, "drain:hv3", [("c", "hv3", "hv1", jr.DONE)])
    assert emptied.after(plan_id, plan, before) == ([], [])
    journal.mark_emptied("hv2", None, "by hand")
    seen = emptied.view(snapshot({"a": "hv1", "c": "hv2"}))
    assert [h.emptied for h in seen.hosts] == [False, False, False]
    assert journal.emptied_hosts() == {}
    assert gauge(metrics, "hv2") == 0
