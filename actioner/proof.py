"""What may be done to a domain after a migration ended badly, decided only from proof: a pure function.

libvirt leaves the source of a migration paused, with no job, whenever it cannot know whether the
destination runs the guest (the client died between Finish and Confirm, a libvirtd restarted, a link
broke). Resuming that copy while the destination runs it starts the VM twice; never resuming it loses the
VM. So the copies on every host are observed and judged here, and only these verdicts act:

- ``KEEP``: one copy runs, persistent, with no job: it is the VM (a move finished, or never happened);
  the paused leftovers of the migration elsewhere are destroyed and stale definitions removed. Destroying a paused copy beside a running one can never
  start a second instance, so no other host needs to answer.
- ``RESUME``: every configured host answered, no copy runs anywhere, exactly one copy is paused by a
  migration and no job is left: that copy is the VM and is resumed (paused incoming shells are
  destroyed first: their CPUs never ran).
- ``IN_FLIGHT``: some host still holds a job for the domain: its job decides, look again later. Once
  the caller knows the jobs outlived any migration of its own (``stale_jobs``), a job left only on
  receiving shells, beside one persistent copy that runs with no job while every host answered, is a
  dead migration's: the shells are destroyed (``KEEP``), since no Finish can come to start them.
- ``AMBIGUOUS``: anything else (a host that did not answer while nothing runs, two running copies, two
  paused sources, no copy at all, a source libvirt resumed after a failed migration while a host did
  not answer): nothing is touched, the caller journals it and an alert fires.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

import libvirt

MIGRATION_PAUSE_REASONS = frozenset(
    {libvirt.VIR_DOMAIN_PAUSED_MIGRATION, libvirt.VIR_DOMAIN_PAUSED_POSTCOPY}
)


@dataclass(frozen=True)
class Copy:
    """What one host holds of a domain: a definition, a running or paused process, a job on it."""

    active: bool
    persistent: bool
    state: int
    reason: int
    job: bool
    # libvirt's UUID: a definition with the same name and another UUID is another VM, never touched
    uuid: str = ""

    @property
    def paused_by_migration(self) -> bool:
        if not (self.active and self.state == libvirt.VIR_DOMAIN_PAUSED):
            return False
        # A destination's libvirtd restarted inside a migration re-adopts the receiving QEMU with its
        # migration job but may report another pause reason (campaign round 13:17): a transient copy,
        # paused, with a job, is a receiving shell whatever the reason says; its CPUs never ran.
        return self.reason in MIGRATION_PAUSE_REASONS or (self.job and not self.persistent)

    @property
    def incoming_shell(self) -> bool:
        """A destination's paused receiving QEMU: transient, its guest CPUs never ran there."""
        return self.paused_by_migration and not self.persistent

    @property
    def resumed_after_failed_migration(self) -> bool:
        """libvirt resumed this source after a migration it judged failed: if Finish had already started
        the guest on the destination before that host went silent, the guest runs there too."""
        return (
            self.active
            and self.state == libvirt.VIR_DOMAIN_RUNNING
            and self.reason == libvirt.VIR_DOMAIN_RUNNING_MIGRATION_CANCELED
        )

    @property
    def runs(self) -> bool:
        """Active and not held by a migration: the guest executes (or was paused by someone on purpose)."""
        return self.active and not self.paused_by_migration

    def describe(self) -> str:
        if not self.active:
            return "defined, not running"
        kind = "persistent" if self.persistent else "transient"
        what = "paused by a migration" if self.paused_by_migration else _STATE_NAMES.get(self.state)
        if self.state == libvirt.VIR_DOMAIN_PAUSED and not self.paused_by_migration:
            what = f"paused (reason {self.reason})"  # the operator's runbook tells reasons apart
        return f"{what or f'state {self.state}'} ({kind}{', migration job running' if self.job else ''})"


@dataclass(frozen=True)
class Unanswered:
    """A host that could not be asked (unreachable, or libvirt failed the lookup)."""

    error: str

    def describe(self) -> str:
        return f"did not answer: {self.error}"


# host -> what it holds of the domain; None when the host answered that it has no such domain
Observation = Mapping[str, Copy | Unanswered | None]


class Action(enum.Enum):
    SETTLED = "settled"
    KEEP = "keep"
    RESUME = "resume"
    IN_FLIGHT = "in_flight"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True)
class Verdict:
    """What to do, where the domain lives once it is done, and the copies to destroy or undefine."""

    action: Action
    host: str | None = None
    destroy: tuple[str, ...] = ()
    undefine: tuple[str, ...] = ()
    reason: str = ""

    @property
    def needs_action(self) -> bool:
        return bool(self.destroy or self.undefine) or self.action is Action.RESUME


def describe(observation: Observation) -> str:
    """What each host showed, for the journal and the log: ``hv1: paused by a migration (...); hv2: ...``."""
    parts = []
    for host in sorted(observation):
        seen = observation[host]
        parts.append(f"{host}: {'absent' if seen is None else seen.describe()}")
    return "; ".join(parts)


def judge(observation: Observation, *, stale_jobs: bool = False) -> Verdict:
    """The verdict for one domain from what every configured host showed of it.

    ``stale_jobs``: the jobs seen have outlived ``migration_timeout`` with no migration of this actioner
    in flight (the resolver's recheck knows; a single observation cannot)."""
    copies = {h: c for h, c in observation.items() if isinstance(c, Copy)}
    silent = sorted(h for h, c in observation.items() if isinstance(c, Unanswered))
    seen = describe(observation)
    running = sorted(h for h, c in copies.items() if c.runs)
    if len(running) > 1:
        # already twice: no job can make that right, and an operator must hear of it now
        return Verdict(Action.AMBIGUOUS, reason=f"active on {len(running)} hosts: {seen}")
    if any(c.job for c in copies.values()):
        busy = sorted(h for h, c in copies.items() if c.job)
        keeper = running[0] if running else None
        if (
            stale_jobs
            and keeper is not None
            and not silent
            and copies[keeper].persistent
            and not copies[keeper].job
            and all(copies[h].incoming_shell for h in busy)
        ):
            # a receiving QEMU whose migration died with its libvirtd: the source runs on alone and
            # holds no job, so nothing will ever finish this one; it never ran, destroying it is safe
            return _keep(
                keeper,
                copies,
                f"runs on {keeper} with no job; the receiving copies on {', '.join(busy)} hold a "
                "job that outlived the migration timeout",
            )
        return Verdict(
            Action.IN_FLIGHT, reason=f"a migration job is still running on {', '.join(busy)}"
        )
    paused = sorted(h for h, c in copies.items() if c.paused_by_migration)
    defined = sorted(h for h, c in copies.items() if not c.active and c.persistent)
    if len(running) == 1:
        host = running[0]
        if silent and copies[host].resumed_after_failed_migration:
            # the destination's libvirtd may have died inside Finish, after starting the guest: only
            # its answer can show that the guest does not run there as well
            return Verdict(
                Action.AMBIGUOUS,
                reason=(
                    f"libvirt resumed it on {host} after a failed migration, and "
                    f"{', '.join(silent)} did not answer: {seen}"
                ),
            )
        if not copies[host].persistent:
            # a transient copy runs: no definition to fall back on if the paused one is destroyed
            if paused:
                return Verdict(
                    Action.AMBIGUOUS, reason=f"runs without a definition on {host}: {seen}"
                )
            return Verdict(Action.SETTLED, host=host, reason=f"runs (transient) on {host}")
        if paused:
            return _keep(
                host,
                copies,
                f"runs on {host}; the paused copies are leftovers of a finished migration",
            )
        others = [h for h in defined if h != host and copies[h].uuid == copies[host].uuid]
        return Verdict(Action.SETTLED, host=host, undefine=tuple(others), reason=f"runs on {host}")
    # nothing runs: only a complete answer can prove which copy is the VM
    sources = [h for h in paused if copies[h].persistent]
    shells = [h for h in paused if not copies[h].persistent]
    if silent:
        return Verdict(
            Action.AMBIGUOUS,
            reason=f"not running on any host that answered, and {', '.join(silent)} did not: {seen}",
        )
    if len(sources) == 1:
        return Verdict(
            Action.RESUME,
            host=sources[0],
            destroy=tuple(shells),
            reason=f"paused by a migration on {sources[0]} and nowhere else: the move did not happen",
        )
    if not sources and not shells:
        return Verdict(Action.AMBIGUOUS, reason=f"running on no host: {seen}")
    return Verdict(Action.AMBIGUOUS, reason=f"no copy provably the VM: {seen}")


def _keep(host: str, copies: Mapping[str, Copy], reason: str) -> Verdict:
    """Keep the copy running on ``host``: destroy the migration's paused copies elsewhere, and remove
    the definitions of the same VM (same UUID) left on other hosts."""
    paused = sorted(h for h, c in copies.items() if c.paused_by_migration)
    stale = {
        h
        for h, c in copies.items()
        if h != host and not c.active and c.persistent and c.uuid == copies[host].uuid
    }
    return Verdict(
        Action.KEEP,
        host=host,
        destroy=tuple(paused),
        undefine=tuple(sorted(stale | {h for h in paused if copies[h].persistent})),
        reason=reason,
    )


_STATE_NAMES = {
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_BLOCKED: "blocked",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutting down",
    libvirt.VIR_DOMAIN_SHUTOFF: "shut off",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended",
}
