"""The verdicts on a domain in doubt: act only on proof (table of the cases, and properties over all)."""

from __future__ import annotations

from dataclasses import replace

import libvirt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from virtbalance.actioner.proof import Action, Copy, Unanswered, judge

RUNNING = Copy(active=True, persistent=True, state=libvirt.VIR_DOMAIN_RUNNING, reason=1, job=False)
# The other copies differ from a plain running one in what their names say.
SOURCE_PAUSED = replace(
    RUNNING, state=libvirt.VIR_DOMAIN_PAUSED, reason=libvirt.VIR_DOMAIN_PAUSED_MIGRATION
)
SHELL = replace(SOURCE_PAUSED, persistent=False)  # a paused incoming shell: transient
DEFINED = Copy(active=False, persistent=True, state=libvirt.VIR_DOMAIN_SHUTOFF, reason=0, job=False)
MIGRATING = replace(RUNNING, job=True)
SILENT = Unanswered("cannot connect to qemu+tcp://hv3/system")
# the source libvirt resumed itself after a migration it judged failed (Finish lost, Confirm cancelled)
RESUMED_SOURCE = replace(RUNNING, reason=libvirt.VIR_DOMAIN_RUNNING_MIGRATION_CANCELED)


@pytest.mark.parametrize(
    ("observation", "action", "host", "destroy", "undefine"),
    [
        # killed between Finish and Confirm: the destination runs, the source waits paused
        (
            {"hv1": SOURCE_PAUSED, "hv2": None, "hv3": RUNNING},
            Action.KEEP,
            "hv3",
            ("hv1",),
            ("hv1",),
        ),
        # ... and a host that does not answer changes nothing: destroying a paused copy is always safe
        (
            {"hv1": SOURCE_PAUSED, "hv2": SILENT, "hv3": RUNNING},
            Action.KEEP,
            "hv3",
            ("hv1",),
            ("hv1",),
        ),
        # killed before Finish: nothing runs anywhere, every host answered
        ({"hv1": SOURCE_PAUSED, "hv2": None, "hv3": None}, Action.RESUME, "hv1", (), ()),
        ({"hv1": SOURCE_PAUSED, "hv2": None, "hv3": SHELL}, Action.RESUME, "hv1", ("hv3",), ()),
        # the destination's libvirtd does not answer: it may run the guest, so nothing is resumed
        ({"hv1": SOURCE_PAUSED, "hv2": None, "hv3": SILENT}, Action.AMBIGUOUS, None, (), ()),
        # the destination's libvirtd died inside Finish and libvirt resumed the source: the guest may
        # run on the silent destination too, so nothing is settled until it answers
        ({"hv1": RESUMED_SOURCE, "hv2": None, "hv3": SILENT}, Action.AMBIGUOUS, None, (), ()),
        # ... once it answers: nothing there, so the move did not happen
        ({"hv1": RESUMED_SOURCE, "hv2": None, "hv3": None}, Action.SETTLED, "hv1", (), ()),
        # ... or it runs there too: twice, and an operator must hear of it
        ({"hv1": RESUMED_SOURCE, "hv2": None, "hv3": RUNNING}, Action.AMBIGUOUS, None, (), ()),
        # a source running as ever while some host is silent is no doubt
        ({"hv1": RUNNING, "hv2": None, "hv3": SILENT}, Action.SETTLED, "hv1", (), ()),
        # a destination whose migration died keeps a shell beside the running source
        ({"hv1": RUNNING, "hv2": None, "hv3": SHELL}, Action.KEEP, "hv1", ("hv3",), ()),
        # a finished move whose source definition was left behind
        ({"hv1": DEFINED, "hv2": None, "hv3": RUNNING}, Action.SETTLED, "hv3", (), ("hv1",)),
        ({"hv1": None, "hv2": None, "hv3": RUNNING}, Action.SETTLED, "hv3", (), ()),
        # already twice: touching either copy could destroy the one with the newer disk writes
        ({"hv1": RUNNING, "hv2": None, "hv3": RUNNING}, Action.AMBIGUOUS, None, (), ()),
        # a job still runs somewhere: it decides
        ({"hv1": MIGRATING, "hv2": None, "hv3": SHELL}, Action.IN_FLIGHT, None, (), ()),
        # two paused persistent copies: no proof which one is the VM
        ({"hv1": SOURCE_PAUSED, "hv2": None, "hv3": SOURCE_PAUSED}, Action.AMBIGUOUS, None, (), ()),
        # nothing active anywhere: not ours to start
        ({"hv1": DEFINED, "hv2": None, "hv3": None}, Action.AMBIGUOUS, None, (), ()),
        # a running transient copy beside a paused persistent one: keep both, say so
        (
            {"hv1": SOURCE_PAUSED, "hv2": None, "hv3": Copy(True, False, 1, 1, False)},
            Action.AMBIGUOUS,
            None,
            (),
            (),
        ),
    ],
    ids=[
        "finish-after-confirm-lost",
        "finish-with-a-silent-bystander",
        "resume-nothing-elsewhere",
        "resume-and-clear-the-shell",
        "destination-silent",
        "source-resumed-destination-silent",
        "source-resumed-destination-empty",
        "source-resumed-destination-runs",
        "running-with-a-silent-bystander",
        "shell-beside-running-source",
        "stale-definition",
        "settled",
        "two-running",
        "job-in-flight",
        "two-paused-sources",
        "nowhere",
        "transient-runs-beside-paused",
    ],
)
def test_verdicts(observation, action, host, destroy, undefine):
    verdict = judge(observation)
    assert verdict.action is action, verdict.reason
    assert (verdict.host, verdict.destroy, verdict.undefine) == (host, destroy, undefine)
    assert verdict.reason


def test_an_ambiguous_verdict_names_what_each_host_showed():
    verdict = judge({"hv1": SOURCE_PAUSED, "hv2": None, "hv3": SILENT})
    assert "hv1: paused by a migration (persistent)" in verdict.reason
    assert "hv2: absent" in verdict.reason
    assert "hv3: did not answer: cannot connect" in verdict.reason


COPIES = st.one_of(
    st.none(),
    st.builds(Unanswered, st.just("timeout")),
    st.builds(
        Copy,
        active=st.booleans(),
        persistent=st.booleans(),
        state=st.sampled_from(
            [libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_SHUTOFF]
        ),
        reason=st.sampled_from(
            [0, 1, libvirt.VIR_DOMAIN_PAUSED_MIGRATION, libvirt.VIR_DOMAIN_PAUSED_USER]
        ),
        job=st.booleans(),
    ),
)
OBSERVATIONS = st.dictionaries(st.sampled_from(["hv1", "hv2", "hv3", "hv4"]), COPIES, min_size=1)


# a receiving shell re-adopted by its restarted libvirtd: its migration job kept, another pause reason
STUCK_SHELL = replace(SHELL, job=True)
READOPTED_SHELL = replace(STUCK_SHELL, reason=libvirt.VIR_DOMAIN_PAUSED_UNKNOWN)


def test_a_paused_transient_copy_holding_a_job_is_a_receiving_shell_whatever_its_reason():
    assert READOPTED_SHELL.paused_by_migration and READOPTED_SHELL.incoming_shell
    assert not READOPTED_SHELL.runs
    # so beside the running source it is a migration in flight, not a double run
    verdict = judge({"hv1": RUNNING, "hv2": None, "hv3": READOPTED_SHELL})
    assert verdict.action is Action.IN_FLIGHT, verdict.reason
    # a paused persistent copy with another reason is the operator's pause: it runs, as before
    user_paused = Copy(True, True, libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_USER, True)
    assert user_paused.runs


@pytest.mark.parametrize("shell", [STUCK_SHELL, READOPTED_SHELL], ids=["migration", "readopted"])
def test_a_stale_job_on_a_receiving_shell_beside_the_running_source_destroys_the_shell(shell):
    observation = {"hv1": RUNNING, "hv2": None, "hv3": shell}
    assert judge(observation).action is Action.IN_FLIGHT  # not known stale: its job decides
    verdict = judge(observation, stale_jobs=True)
    assert (verdict.action, verdict.host, verdict.destroy, verdict.undefine) == (
        Action.KEEP,
        "hv1",
        ("hv3",),
        (),
    )
    assert "outlived the migration timeout" in verdict.reason


@pytest.mark.parametrize(
    "observation",
    [
        # a host that does not answer may hold the finished copy: nothing is touched
        {"hv1": RUNNING, "hv2": SILENT, "hv3": STUCK_SHELL},
        # the source itself still holds a job: a migration of someone's is alive
        {"hv1": MIGRATING, "hv2": None, "hv3": STUCK_SHELL},
        # the job is on a persistent copy: not a shell whose CPUs provably never ran
        {"hv1": RUNNING, "hv2": None, "hv3": MIGRATING},
        # nothing runs: which copy is the VM is not proven by a stale job
        {"hv1": SOURCE_PAUSED, "hv2": None, "hv3": STUCK_SHELL},
        # the only running copy is transient: no definition to fall back on
        {"hv1": Copy(True, False, libvirt.VIR_DOMAIN_RUNNING, 1, False), "hv3": STUCK_SHELL},
    ],
    ids=["host-silent", "source-job", "persistent-job", "nothing-runs", "transient-runs"],
)
def test_a_stale_job_decides_nothing_without_proof(observation):
    verdict = judge(observation, stale_jobs=True)
    assert verdict.action in (Action.IN_FLIGHT, Action.AMBIGUOUS), verdict.reason
    assert not verdict.needs_action


@given(OBSERVATIONS, st.booleans())
def test_no_verdict_can_leave_a_domain_running_twice_or_nowhere(observation, stale_jobs):
    verdict = judge(observation, stale_jobs=stale_jobs)
    copies = {h: c for h, c in observation.items() if isinstance(c, Copy)}
    running = {h for h, c in copies.items() if c.runs}
    if verdict.action is Action.RESUME:
        # resumed only when every host answered and none runs it
        assert all(c is None or isinstance(c, Copy) for c in observation.values())
        assert not running
        assert not any(c.job for c in copies.values())
        assert copies[verdict.host].paused_by_migration and copies[verdict.host].persistent
    if verdict.destroy:
        # only paused copies are ever destroyed, never the host that keeps the VM
        assert verdict.host not in verdict.destroy
        assert all(copies[h].paused_by_migration for h in verdict.destroy)
        # and something is left that runs, or is resumed
        assert verdict.host in running or verdict.action is Action.RESUME
    if verdict.undefine:
        assert verdict.host is not None and verdict.host not in verdict.undefine
        assert copies[verdict.host].persistent
    if len(running) > 1:
        assert verdict.action is Action.AMBIGUOUS and not verdict.needs_action
    elif any(c.job for c in copies.values()):
        if verdict.action is Action.KEEP:
            # only a stale job, only on receiving shells, beside a persistent copy running with none
            assert stale_jobs and verdict.host in running
            keeper = copies[verdict.host]
            assert keeper.persistent and not keeper.job
            assert all(c is None or isinstance(c, Copy) for c in observation.values())
            assert all(c.incoming_shell for c in copies.values() if c.job)
        else:
            assert verdict.action is Action.IN_FLIGHT and not verdict.needs_action
