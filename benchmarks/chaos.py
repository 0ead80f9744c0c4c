"""Fault campaign: chunk moves in the lab, one fault per round at a moment drawn from a seed, then checks.

    benchmarks/chaos.py --rounds 200 --seed 1 --json benchmarks/out/chaos.json [--lab-id 0]
    benchmarks/chaos.py --replay 1:17          # round 17 of seed 1 alone, same fault, same moment

Each round: the lab's chunk (web1, app1, db1 on hv1, joined by private bridges) is made to move by a
firing alert sent to a real ``virtbalance-actioner`` process; once its first migration is journaled
``running``, one fault is injected after a delay drawn from the round's seed: SIGKILL or SIGTERM of the
actioner, the source's or the destination's libvirtd killed and restarted, a host's link cut and
restored, the journal's filesystem (a small tmpfs) full for a while, a second actioner started on the
same journal. Peer-to-peer and client-driven migration alternate by seed. The actioner is restarted if
it was stopped and left to settle; then the invariants are checked:

- ``running_once``: every domain active on exactly one host, and running (nothing paused);
- ``persistent_once``: defined on exactly one host, the one it runs on;
- ``chunk_whole``: the chunk on one host;
- ``journal_closed``: no row left planned, running or ambiguous, no domain journaled in doubt;
- ``journal_matches_libvirt``: every migration libvirt completed (a ``RESUMED_MIGRATED`` event on the
  destination) has a journal row that says it moved, per domain, and the rows end where it runs;
- ``fault_handled``: the fault's own expectation (SIGTERM exits 0, a second actioner exits 3 at once,
  no actioner dies of something the campaign did not do to it).

The JSON has ``rounds``, ``faults`` (count by kind), ``violations`` (count by invariant) and each failing
round with its replay key. Needs root and the lab (``virtbalance lab up`` is done here).

The harness plays the operator in one case only, the one a runbook step exists for: while the actioner
serves ``virtbalance_migration_job_stuck`` (alert ``VirtBalanceMigrationJobStuck``: libvirt 9.0 kept a
migration job it cannot end), the harness restarts the libvirtd that series names, as the runbook says,
and the round goes on; the invariants are judged after that. Each such restart is in the round's details
and counted in ``rounds_with_operator_restarts``; a series naming the wrong host restarts the wrong
daemon and the round fails.

``--scenario chaos-disks`` runs the same rounds on writable disks: the chunk's members write to images
of their own on hv1, every move copies storage, and libvirt's lock manager holds each disk's lease, as
on production guests. The default lab's read-only disks carry no lease, so there nothing stops libvirt's
own resume of a source whose Finish answer was lost (docs/benchmarks.md, round 7:164).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import libvirt
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from virtbalance.actioner import event_loop
from virtbalance.contract import ALERT_OVERLOAD, MIGRATION_JOB_STUCK
from virtbalance.domain_metadata import NAMESPACE, PREFIX, Placement
from virtbalance.lab import Lab
from virtbalance.lab.actioner_process import ensure_stopped, start_actioner, wait_healthy
from virtbalance.lab.demo.stack import actioner_hosts
from virtbalance.lab.errors import LabError
from virtbalance.lab.naming import lab_id_from_env
from virtbalance.lab.teardown import teardown

REPO = Path(__file__).resolve().parent.parent
FAULTS = (
    "sigkill",
    "sigterm",
    "kill_source_libvirtd",
    "kill_destination_libvirtd",
    "cut_link",
    "journal_full",
    "second_actioner",
)
INVARIANTS = (
    # the one an operator never forgives: the guest's vCPUs running on two hosts at once
    "ran_twice",
    "running_once",
    "persistent_once",
    "chunk_whole",
    "journal_closed",
    "journal_matches_libvirt",
    "fault_handled",
)
# not an invariant: the harness itself could not run the round (counted apart, reported with the key)
ROUND_ABORTED = "round_aborted"
CHUNK = ("app1", "db1", "web1")
SOURCE = "hv1"
TOKEN = "chaos-token"
SETTLE_TIMEOUT = 240.0
MIGRATION_TIMEOUT = 60.0  # the actioner's execution.migration_timeout in every round
# How long a SIGKILLed actioner may take to be reaped (seen: over 10 s at load 14, in round 24:7).
KILLED_EXIT_SECONDS = 60.0
# What a host back from an outage may need: 15 rechecks of the actioner (recheck_interval 2 s), after
# the migration timeout a job left on a receiving shell must outlive before it counts as stale
RECHECK_GRACE = MIGRATION_TIMEOUT + 30.0
EXIT_LOCKED = 3
SCENARIOS = ("default", "chaos-disks")


@dataclass
class RoundResult:
    """One round: what was done to the actioner and which invariants broke."""

    key: str
    fault: str
    peer2peer: bool
    delay: float
    destination: str | None = None
    violations: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    # copies libvirt lists as active with no QEMU behind them, at the final check
    ghosts: list[str] = field(default_factory=list)
    # the libvirtds restarted as VirtBalanceMigrationJobStuck asked ("hv1 (db1)")
    operator_restarts: list[str] = field(default_factory=list)
    seconds: float = 0.0


class MigrationWatch:
    """Counts the migrations libvirt completes: ``RESUMED_MIGRATED`` on the destination, per domain.

    One event connection per host, reopened when its libvirtd restarts; libvirt's default event loop
    runs in a thread of its own.
    """

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self._lock = threading.Lock()
        self.completed: Counter[str] = Counter()
        self.where: list[str] = []
        self._seen: set[tuple[str, str, int]] = set()
        self._conns: dict[str, Any] = {}
        self._stop = threading.Event()
        threading.Thread(target=self._keep_open, name="event-connections", daemon=True).start()

    def reset(self) -> None:
        """Count from now on. The QEMUs running now are not new: a source that libvirt resumes after a
        failed migration also sends ``RESUMED_MIGRATED``, and is no completed migration."""
        running = set()
        for host in self.lab.hosts:
            with contextlib.suppress(libvirt.libvirtError, LabError):
                for dom in self.lab.connection(host.name).listAllDomains(
                    libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE
                ):
                    running.add((dom.name(), host.name, dom.ID()))
        with self._lock:
            self.completed.clear()
            self.where.clear()
            self._seen = running

    def reset_connections(self) -> None:
        conns, self._conns = self._conns, {}
        for conn in conns.values():
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.completed)

    def _keep_open(self) -> None:
        while not self._stop.is_set():
            for host in self.lab.hosts:
                conn = self._conns.get(host.name)
                alive = False
                with contextlib.suppress(libvirt.libvirtError):
                    alive = conn is not None and conn.isAlive() == 1
                if alive:
                    continue
                with contextlib.suppress(libvirt.libvirtError):
                    conn = libvirt.open(host.libvirt_uri)
                    conn.setKeepAlive(2, 3)
                    conn.domainEventRegisterAny(
                        None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._event, host.name
                    )
                    self._conns[host.name] = conn
            time.sleep(0.3)

    def _event(self, _conn: Any, dom: Any, event: int, detail: int, host: str) -> None:
        if (
            event == libvirt.VIR_DOMAIN_EVENT_RESUMED
            and detail == libvirt.VIR_DOMAIN_EVENT_RESUMED_MIGRATED
        ):
            # one completion is one new QEMU on the destination: a (domain, host, id) seen twice (two
            # event connections during a reconnect) is one migration
            seen = (dom.name(), host, dom.ID())
            with self._lock:
                if seen in self._seen:
                    return
                self._seen.add(seen)
                self.completed[dom.name()] += 1
                self.where.append(f"{dom.name()}@{host} {time.strftime('%H:%M:%S')}")

    def wait_connected(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self._conns) == len(self.lab.hosts):
                return
            time.sleep(0.1)
        raise RuntimeError("cannot open event connections to every lab host")


def register_event_loop() -> None:
    """libvirt's default event loop, registered and RUNNING before the first connection.

    A connection opened once an implementation is registered offers keepalive, and libvirtd closes it
    when its pings go unanswered for 30 s: a loop that ran only while a round watched migrations let
    the lab's own connections die during a slow ``Lab.up`` ("received hangup event on socket").
    """
    event_loop.DEFAULT.start()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of its own for the round's journal, so it can be filled without touching the machine."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "chaos-journal", str(path)], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def alert(host: str) -> dict[str, Any]:
    """A firing HostSustainedOverload notification for ``host``, as Alertmanager sends it (version 4)."""
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    fingerprint = hashlib.sha256(f"{host}{now}".encode()).hexdigest()[:16]
    labels = {"alertname": ALERT_OVERLOAD, "host": host, "resource": "cpu"}
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{ALERT_OVERLOAD}", host="{host}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "virtbalance",
        "groupLabels": {"alertname": ALERT_OVERLOAD, "host": host},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {},
                "startsAt": now,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:9090/graph",
                "fingerprint": fingerprint,
            }
        ],
    }


class Campaign:
    """Rounds against one lab; the lab's independent guests on hv1 are pinned so the chunk is the move."""

    def __init__(self, lab: Lab, workdir: Path, log: Any) -> None:
        """``workdir`` keeps a directory per failing round (config, actioner log, journal copy)."""
        self.lab = lab
        self.workdir = workdir
        self.log = log
        self.watch = MigrationWatch(lab)
        self.watch.wait_connected()
        self.policy = yaml.safe_load((REPO / "alerting-rules" / "policy-lab.yaml").read_text())

    def _pin_the_others(self, pinned: bool = True) -> None:
        """hv1's guests outside the chunk stay put, so relieving hv1 means moving the chunk."""
        for spec in self.lab.scenario.domains:
            if spec.host == SOURCE and spec.name not in CHUNK:
                dom = self.lab.connection(SOURCE).lookupByName(spec.name)
                dom.setMetadata(
                    libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                    Placement(spec.group, spec.anti_affinity, pinned or spec.pinned).to_xml(),
                    PREFIX,
                    NAMESPACE,
                    libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG,
                )

    def rebuild(self) -> None:
        """A new lab in place of this one (same id and scenario), its event connections reopened."""
        lab_id = self.lab.lab_id
        self.lab.down()
        self.lab = Lab.up(self.lab.scenario.name, lab_id=lab_id)
        self.watch.lab = self.lab
        self.watch.reset_connections()
        self.watch.wait_connected()
        self.say(f"  lab {lab_id} rebuilt")

    def close(self) -> None:
        """Leave the lab as the scenario made it (placement metadata too) for whoever uses it next."""
        self.lab.repair()
        self.lab.reset()
        self._pin_the_others(pinned=False)

    # --- one round ----------------------------------------------------------------------------

    def round(self, key: str, fault: str) -> RoundResult:
        rng = random.Random(key)
        result = RoundResult(
            key=key,
            fault=fault,
            peer2peer=rng.random() < 0.5,
            delay=round(rng.uniform(0.0, 4.0), 2),
        )
        began = time.monotonic()
        found = self.lab.repair()
        if found:
            self.say(f"  repaired before the round: {found}")
        self.lab.reset()
        self._pin_the_others()
        time.sleep(1.5)  # the events of the reset's own moves arrive before the count starts
        self.watch.reset()
        directory = Path(
            tempfile.mkdtemp(prefix=f"round-{key.replace(':', '-')}-", dir=self.workdir)
        )
        with small_tmpfs(directory / "journal") as journal_dir:
            config = self._config(directory, journal_dir, result.peer2peer)
            try:
                self._run(
                    config, journal_dir / "journal.sqlite", directory / "actioner.log", rng, result
                )
            finally:
                if result.violations:
                    for part in journal_dir.glob("journal.sqlite*"):
                        shutil.copy(part, directory / part.name)
        if result.violations:
            result.details.append(f"kept: {directory}")
        else:
            shutil.rmtree(directory)
        result.seconds = round(time.monotonic() - began, 1)
        return result

    @property
    def _writable_chunk(self) -> bool:
        return any(self.lab.scenario.domain(name).writable_disk for name in CHUNK)

    def _config(self, directory: Path, journal_dir: Path, peer2peer: bool) -> Path:
        token = directory / "token"
        token.write_text(TOKEN)
        data = {
            # a tiny declared capacity makes the chunk's idle guests an overload of hv1
            "hosts": actioner_hosts(self.lab.hosts, lambda h: 0.1 if h.name == SOURCE else 16),
            "policy": self.policy,
            "journal": {"path": str(journal_dir / "journal.sqlite")},
            "webhook": {"token_file": str(token), "listen": f"127.0.0.1:{free_port()}"},
            "prometheus": {"fallback_sample_interval": "1s"},
            "execution": {
                "migration_timeout": f"{MIGRATION_TIMEOUT:.0f}s",
                "bandwidth_mib_per_s": 16,  # seconds per member: room for a fault inside a move
                "peer2peer": peer2peer,
                "recheck_interval": "2s",
                # writable disks are host-local: a move copies them (and the lease guards them)
                "copy_storage": "all" if self._writable_chunk else "none",
            },
        }
        path = directory / "actioner.yml"
        path.write_text(yaml.safe_dump(data))
        return path

    def _run(
        self, config: Path, journal: Path, log: Path, rng: random.Random, result: RoundResult
    ) -> None:
        url = f"http://{yaml.safe_load(config.read_text())['webhook']['listen']}"
        process = start_actioner(config, log, REPO)
        try:
            wait_healthy(url, process, 300.0)
            answer = requests.post(
                f"{url}/api/v1/alerts",
                json=alert(SOURCE),
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=10,
            )
            if answer.status_code != 200:
                raise RuntimeError(f"the webhook answered {answer.status_code}: {answer.text}")
            result.destination = wait_first_migration(journal, log)
            time.sleep(result.delay)
            process = self._inject(
                result, rng=rng, config=config, journal=journal, log=log, process=process
            )
            if process.poll() is not None:
                result.violations.append("fault_handled")
                result.details.append(f"the actioner died on its own ({process.returncode})")
                process = start_actioner(config, log, REPO)
            wait_healthy(url, process, 300.0)
            self._settle(url, journal, result)
            if self._restart_stuck_libvirtds(url, result):
                self._settle(url, journal, result)
            process.send_signal(signal.SIGTERM)
            code = process.wait(120)
            if code != 0:
                result.violations.append("fault_handled")
                result.details.append(f"the final SIGTERM ended with {code}")
        finally:
            ensure_stopped(process)
        self._check(journal, result)

    def _inject(
        self,
        result: RoundResult,
        *,
        rng: random.Random,
        config: Path,
        journal: Path,
        log: Path,
        process: subprocess.Popen[bytes],
    ) -> subprocess.Popen[bytes]:
        fault = result.fault
        destination = result.destination or "hv3"
        if fault == "sigkill":
            process.kill()
            # A killed process is reaped only once its threads leave the kernel: a journal fsync can
            # hold one there for seconds on a loaded disk. Its successor must not start beside it.
            process.wait(KILLED_EXIT_SECONDS)
            return start_actioner(config, log, REPO)
        if fault == "sigterm":
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(110)
            except subprocess.TimeoutExpired:
                code = None
            if code != 0:
                result.violations.append("fault_handled")
                result.details.append(f"SIGTERM mid-migration ended with {code}")
                ensure_stopped(process)
            return start_actioner(config, log, REPO)
        if fault in ("kill_source_libvirtd", "kill_destination_libvirtd"):
            host = SOURCE if fault == "kill_source_libvirtd" else destination
            self.lab.stop_libvirtd(host)
            time.sleep(rng.uniform(1.0, 5.0))
            self.lab.start_libvirtd(host)
            return process
        if fault == "cut_link":
            host = rng.choice((SOURCE, destination))
            result.details.append(f"link of {host} cut")
            self.lab.disconnect(host)
            try:
                time.sleep(rng.uniform(1.0, 6.0))
            finally:
                self.lab.reconnect(host)
            return process
        if fault == "journal_full":
            filler = journal.parent / "filler"
            with contextlib.suppress(OSError), filler.open("wb") as out:
                while True:
                    out.write(b"\0" * 65536)
                    out.flush()
            time.sleep(rng.uniform(1.0, 4.0))
            filler.unlink()
            return process
        if fault == "second_actioner":
            second = start_actioner(config, log, REPO)
            try:
                code = second.wait(30)
            except subprocess.TimeoutExpired:
                second.kill()
                second.wait(10)
                code = None
            if code != EXIT_LOCKED:
                result.violations.append("fault_handled")
                result.details.append(f"a second actioner on the journal ended with {code}")
            return process
        raise ValueError(f"unknown fault {fault!r}")

    def _settle(self, url: str, journal: Path, result: RoundResult) -> None:
        """Wait for the journal to close and the recheck to clear what the fault left, or until the
        actioner reports a migration job libvirt cannot end (nothing settles before its restart)."""
        problem = wait_settled(journal, SETTLE_TIMEOUT, until=lambda: bool(stuck_jobs(url)))
        if problem:
            result.details.append(problem)
        self._let_the_recheck_run(journal, until=lambda: bool(stuck_jobs(url)))

    def _restart_stuck_libvirtds(self, url: str, result: RoundResult) -> bool:
        """The runbook's step for VirtBalanceMigrationJobStuck: restart the libvirtd it names."""
        stuck = stuck_jobs(url)
        for host, domains in sorted(stuck.items()):
            self.lab.stop_libvirtd(host)
            self.lab.start_libvirtd(host)
            result.operator_restarts.append(f"{host} ({', '.join(domains)})")
            result.details.append(
                f"operator: restarted libvirtd on {host}, as VirtBalanceMigrationJobStuck asked "
                f"for {', '.join(domains)}"
            )
        return bool(stuck)

    def _let_the_recheck_run(
        self, journal: Path, until: Callable[[], bool] = lambda: False
    ) -> None:
        """A closed journal is not yet a settled cluster: a host whose libvirtd was away may come back
        with copies the actioner's periodic recheck (every 2 s here) has still to clear, some only once
        their job outlived the migration timeout. Wait until the invariants hold or RECHECK_GRACE has
        passed; the final check then judges."""
        deadline = time.monotonic() + RECHECK_GRACE
        while time.monotonic() < deadline and not until():
            probe = RoundResult(key="", fault="", peer2peer=False, delay=0.0)
            self._check(journal, probe)
            if not probe.violations:
                return
            time.sleep(1.0)

    # --- the invariants -----------------------------------------------------------------------

    def _check(self, journal: Path, result: RoundResult) -> None:
        active: dict[str, list[str]] = {}
        on_cpu: dict[str, list[str]] = {}
        defined: dict[str, list[str]] = {}
        paused: list[str] = []
        ghosts: list[str] = []
        for host in self.lab.hosts:
            conn = self.lab.connection(host.name)
            processes = self.lab.qemu_guests(host.name)
            for dom in conn.listAllDomains(0):
                try:
                    name = dom.name()
                    persistent, running = dom.isPersistent(), dom.isActive()
                    state = dom.state()[0] if running else None
                except libvirt.libvirtError as exc:
                    # a transient copy (an incoming shell) removed between the listing and the
                    # question holds nothing any more
                    if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                        continue
                    raise
                if persistent:
                    defined.setdefault(name, []).append(host.name)
                if running:
                    active.setdefault(name, []).append(host.name)
                    if state == libvirt.VIR_DOMAIN_RUNNING:
                        on_cpu.setdefault(name, []).append(host.name)
                    else:
                        paused.append(f"{name}@{host.name}")
                    if name not in processes:
                        ghosts.append(f"{name}@{host.name}")
        names = [d.name for d in self.lab.scenario.domains]
        twice = {n: hosts for n, hosts in on_cpu.items() if len(hosts) > 1}
        if twice:
            result.violations.append("ran_twice")
            result.details.append(f"running on two hosts: {twice}")
        result.ghosts = ghosts
        if ghosts:
            # libvirt lists them active, yet no QEMU runs for them there (lab/ghosts.py): told apart
            # so a failing round says whether a second copy existed at all
            result.details.append(
                f"active in libvirt with no QEMU behind (libvirt ghosts): {ghosts}"
            )
        wrong = {n: active.get(n, []) for n in names if len(active.get(n, [])) != 1}
        if wrong or paused:
            result.violations.append("running_once")
            result.details.append(f"active: {wrong}, not running: {paused}")
        undefined = {
            n: defined.get(n, []) for n in names if defined.get(n, []) != active.get(n, [])[:1]
        }
        if undefined:
            result.violations.append("persistent_once")
            result.details.append(f"persistent on {undefined} (active on {active})")
        if len({tuple(active.get(d, [])) for d in CHUNK}) != 1:
            result.violations.append("chunk_whole")
            result.details.append(f"chunk on {[active.get(d) for d in CHUNK]}")
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT domain, source, destination, state, kind FROM migrations ORDER BY id"
            ).fetchall()
            doubts = db.execute("SELECT domain, reason FROM ambiguous").fetchall()
            plans = db.execute(
                "SELECT state FROM plans WHERE state IN ('queued','running')"
            ).fetchall()
        open_rows = [r for r in rows if r[3] in ("planned", "running", "ambiguous", "split")]
        if open_rows or doubts or plans:
            result.violations.append("journal_closed")
            result.details.append(f"open rows {open_rows}, in doubt {doubts}, open plans {plans}")
        moved: Counter[str] = Counter(
            r[0]
            for r in rows
            if (r[4] == "move" and r[3] in ("done", "rolled_back"))
            or (r[4] == "rollback" and r[3] == "done")
            or r[3] == "split"
        )
        completed = Counter(self.watch.counts())
        ends: dict[str, str] = {}
        for domain, _source, destination, state, kind in rows:
            if (kind == "move" and state == "done") or (kind == "rollback" and state == "done"):
                ends[domain] = destination
            elif kind == "move" and state == "rolled_back":
                ends.setdefault(domain, SOURCE)
            elif state == "split":
                ends[domain] = destination
        mismatch = {
            d: (completed.get(d, 0), moved.get(d, 0))
            for d in set(completed) | set(moved)
            if completed.get(d, 0) != moved.get(d, 0)
        }
        misplaced = {d: (h, active.get(d)) for d, h in ends.items() if active.get(d) != [h]}
        if mismatch or misplaced:
            result.violations.append("journal_matches_libvirt")
            result.details.append(
                f"libvirt completed vs journal moved {mismatch}; journal ends vs placement "
                f"{misplaced}; completions seen: {self.watch.where}"
            )

    def say(self, text: str) -> None:
        print(text, file=self.log, flush=True)


def _query(journal: Path, sql: str) -> list[tuple[Any, ...]]:
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5) as db:
            return db.execute(sql).fetchall()
    except sqlite3.Error:
        return []


def wait_first_migration(journal: Path, log: Path, timeout: float = 90.0) -> str:
    """The destination of the first migration journaled running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _query(journal, "SELECT destination FROM migrations WHERE state='running' LIMIT 1")
        if rows:
            return str(rows[0][0])
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"no migration started within {timeout:.0f} s: {tail}")


def stuck_jobs(url: str) -> dict[str, list[str]]:
    """host -> domains, from the actioner's ``virtbalance_migration_job_stuck`` series (its alert's)."""
    try:
        answer = requests.get(
            f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
        )
    except requests.RequestException:
        return {}  # an actioner restarting serves them again once it is up
    answer.raise_for_status()
    text = answer.text
    stuck: dict[str, list[str]] = {}
    for family in text_string_to_metric_families(text):
        if family.name == MIGRATION_JOB_STUCK:
            for sample in family.samples:
                if sample.value > 0:
                    stuck.setdefault(sample.labels["host"], []).append(sample.labels["domain"])
    return stuck


def wait_settled(
    journal: Path, timeout: float, until: Callable[[], bool] = lambda: False
) -> str | None:
    """Until no row is open, nothing is in doubt and no plan runs (or ``until`` holds); what is still
    open otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        open_rows = _query(
            journal,
            "SELECT count(*) FROM migrations WHERE state IN ('planned','running','ambiguous')",
        )
        doubts = _query(journal, "SELECT count(*) FROM ambiguous")
        plans = _query(journal, "SELECT count(*) FROM plans WHERE state IN ('queued','running')")
        counts = [r[0][0] if r else -1 for r in (open_rows, doubts, plans)]
        if counts == [0, 0, 0] or until():
            return None
        if time.monotonic() >= deadline:
            return f"not settled after {timeout:.0f} s: open rows, in doubt, open plans = {counts}"
        time.sleep(0.5)


def replay_keys(rounds: int, seed: int, only: str | None = None) -> list[tuple[str, str]]:
    """(key, fault) of each round: the faults in turn, so each kind gets rounds / 7 of them."""
    if only:
        return [(only, FAULTS[int(only.split(":")[1]) % len(FAULTS)])]
    return [(f"{seed}:{i}", FAULTS[i % len(FAULTS)]) for i in range(rounds)]


def run_rounds(
    lab: Lab,
    keys: list[tuple[str, str]],
    log: Any,
    workdir: Path,
    after_each: Callable[[list[RoundResult]], None] | None = None,
    *,
    tidy: bool = True,
) -> list[RoundResult]:
    """Every round on a running lab (which is left up); a round the harness could not run counts.

    ``tidy`` puts the lab back as the scenario made it afterwards, for whoever uses it next; a caller
    that tears the lab down anyway passes False and saves the repair's minutes.
    """
    campaign = Campaign(lab, workdir, log)
    results: list[RoundResult] = []
    _rounds(campaign, keys, results, after_each)
    if tidy:
        campaign.close()
    return results


def _rounds(
    campaign: Campaign,
    keys: list[tuple[str, str]],
    results: list[RoundResult],
    after_each: Callable[[list[RoundResult]], None] | None,
) -> None:
    for key, fault in keys:
        try:
            result = campaign.round(key, fault)
        except Exception as exc:  # a round the harness could not run is reported, not hidden
            result = RoundResult(key=key, fault=fault, peer2peer=False, delay=0.0)
            result.violations.append(ROUND_ABORTED)
            where = " <- ".join(
                f"{Path(frame.filename).name}:{frame.lineno} {frame.name}"
                for frame in reversed(traceback.extract_tb(exc.__traceback__)[-4:])
            )
            result.details.append(f"round aborted: {type(exc).__name__}: {exc} (at {where})")
            # a lab left unusable (a job stuck in a restarted libvirtd) must not abort the rest
            campaign.rebuild()
        results.append(result)
        status = "ok" if not result.violations else "VIOLATED " + ",".join(result.violations)
        mode = "p2p" if result.peer2peer else "client"
        campaign.say(
            f"round {key:>8} {fault:<26} {mode:<6} delay {result.delay:4.2f}s "
            f"{result.seconds:5.1f}s {status}"
        )
        for detail in result.details:
            campaign.say(f"    {detail}")
        if after_each is not None:
            after_each(results)


def summary(results: list[RoundResult], seed: int, seconds: float) -> dict[str, Any]:
    violations = Counter(v for r in results for v in set(r.violations))
    return {
        "date": dt.date.today().isoformat(),
        "command": " ".join(["benchmarks/chaos.py", *sys.argv[1:]]),
        "seed": seed,
        "rounds": len(results),
        "seconds": round(seconds),
        "faults": dict(Counter(r.fault for r in results)),
        "modes": dict(Counter("peer2peer" if r.peer2peer else "client-driven" for r in results)),
        "violations": {name: violations.get(name, 0) for name in INVARIANTS},
        "rounds_aborted": violations.get(ROUND_ABORTED, 0),
        "rounds_with_libvirt_ghosts": sum(1 for r in results if r.ghosts),
        "rounds_with_operator_restarts": sum(1 for r in results if r.operator_restarts),
        "failing_rounds": [asdict(r) for r in results if r.violations],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=len(FAULTS))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lab-id", type=int, default=lab_id_from_env())
    parser.add_argument("--json", type=Path, help="write the summary here")
    parser.add_argument("--replay", metavar="SEED:ROUND", help="run that one round again")
    parser.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default="default",
        help="the lab: read-only disks (default) or the chunk on writable, leased disks",
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("chaos: needs root (the lab)", file=sys.stderr)
        return 2
    register_event_loop()
    began = time.monotonic()
    work = REPO / "benchmarks" / "out" / f"chaos-{args.seed}"
    work.mkdir(parents=True, exist_ok=True)
    done: list[RoundResult] = []
    interrupted = False

    def save(results: list[RoundResult]) -> None:
        """The summary so far after every round: a campaign cut short still reports its rounds."""
        done[:] = results
        write_summary(args.json, summary(done, args.seed, time.monotonic() - began))

    teardown(args.lab_id)
    stop_on_interrupt(args.lab_id, work)
    try:
        lab = Lab.up(args.scenario, lab_id=args.lab_id)
        run_rounds(
            lab,
            replay_keys(args.rounds, args.seed, args.replay),
            sys.stdout,
            work,
            save,
            tidy=False,
        )
    except KeyboardInterrupt:
        # Ctrl-C ends the campaign at once: the round in flight is dropped, not judged, and the lab
        # is torn down rather than repaired (a repair can wait minutes on a job the fault left behind).
        interrupted = True
        print(
            f"chaos: interrupted after {len(done)} rounds; tearing lab {args.lab_id} down",
            file=sys.stderr,
        )
    finally:
        with _TEARING_DOWN:
            teardown(args.lab_id)
    result = summary(done, args.seed, time.monotonic() - began)
    result["interrupted"] = interrupted
    write_summary(args.json, result)
    print(
        json.dumps(
            {
                k: result[k]
                for k in ("rounds", "faults", "violations", "rounds_aborted", "interrupted")
            }
        )
    )
    if interrupted:
        return 130
    return 1 if any(result["violations"].values()) or result["rounds_aborted"] else 0


# How long Ctrl-C waits for the main thread before tearing the lab down itself: a libvirt call blocked on
# a host the fault made silent returns only when its keepalive gives up, and Python acts on a signal only
# between calls.
INTERRUPT_GRACE = 30.0
_TEARING_DOWN = threading.Lock()


def stop_on_interrupt(lab_id: int, work: Path) -> None:
    """The first Ctrl-C raises KeyboardInterrupt and starts a watchdog; later ones are ignored, so the
    teardown they would interrupt runs to its end."""

    def force(lab_id: int) -> None:
        print(
            f"chaos: still busy {INTERRUPT_GRACE:.0f} s after Ctrl-C; tearing lab {lab_id} down",
            file=sys.stderr,
        )
        with _TEARING_DOWN:  # waits for a teardown the main thread has begun, then makes sure
            teardown(lab_id)
        for mount in Path("/proc/mounts").read_text().splitlines():
            source, target = mount.split()[:2]
            if source == "chaos-journal" and target.startswith(f"{work}/"):
                subprocess.run(["umount", "-l", target], check=False)
        os._exit(130)

    def interrupted(_signum: int, _frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        watchdog = threading.Timer(INTERRUPT_GRACE, force, args=(lab_id,))
        watchdog.daemon = True
        watchdog.start()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupted)


def write_summary(path: Path | None, result: dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
