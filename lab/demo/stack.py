"""Start and stop the whole virtbalance stack on a lab: exporters, metrics backend, Alertmanager, actioner."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import requests
import yaml

from virtbalance.lab.api import Lab, LabHost
from virtbalance.lab.demo.clients import Alertmanager, Prometheus
from virtbalance.lab.monitoring import LAB_NIGHT
from virtbalance.lab.rules import write_lab_files
from virtbalance.lab.state import record_process, update_state
from virtbalance.lab.system import start_time
from virtbalance.policy import Policy

STATE_FILE = "stack.json"
ACTIONER_BINARY = "virtbalance-actioner"
ACTIONER_SCRAPE_JOB = "virtbalance-actioner"


# The actioner's bearer token, in the stack's state directory (Alertmanager and Prometheus read it too).
TOKEN_FILE = "webhook-token"


class StackError(RuntimeError):
    """The stack could not be brought up or found."""


class Backend(StrEnum):
    """Where the metrics are stored and the rules evaluated; both serve the Prometheus query API."""

    PROMETHEUS = "prometheus"
    # VictoriaMetrics single-node scrapes the exporters, vmalert evaluates the same rule files.
    VICTORIAMETRICS = "victoriametrics"


@dataclass(frozen=True)
class Timings:
    """Monitoring intervals: short, so a lab overload is noticed and relieved within a minute or two."""

    scrape_interval: str = "2s"
    evaluation_interval: str = "2s"
    group_wait: str = "1s"
    group_interval: str = "5s"
    repeat_interval: str = "15s"


@dataclass
class Stack:
    """A running stack: the lab it sits on and the URLs of its services."""

    lab: Lab
    # The Prometheus query API (Prometheus itself, or VictoriaMetrics).
    prometheus_url: str
    alertmanager_url: str
    actioner_url: str
    exporters: dict[str, str]
    policy: Policy
    state_dir: Path
    actioner_pid: int
    timings: Timings = field(default_factory=Timings)
    backend: Backend = Backend.PROMETHEUS
    # The rule manager's /api/v1/alerts: Prometheus itself, or vmalert beside VictoriaMetrics.
    rules_url: str = ""
    # The actioner's process handle when this process started it (not after ``demo down`` reattaches).
    actioner_process: subprocess.Popen[bytes] | None = None

    @property
    def hosts(self) -> list[str]:
        return [host.name for host in self.lab.hosts]

    @property
    def prometheus(self) -> Prometheus:
        return Prometheus(self.prometheus_url, alerts_url=self.rules_url or None)

    @property
    def alertmanager(self) -> Alertmanager:
        return Alertmanager(self.alertmanager_url)

    @property
    def actioner_metrics_url(self) -> str:
        return f"{self.actioner_url}/metrics"

    @property
    def token(self) -> str:
        """The webhook token: every actioner endpoint but /healthz needs it."""
        return (self.state_dir / TOKEN_FILE).read_text(encoding="utf-8").strip()

    @property
    def actioner_log(self) -> Path:
        return self.state_dir / "actioner.log"

    def save(self) -> None:
        """Record what ``demo down`` (another process) needs to stop the actioner."""
        record = {
            "backend": str(self.backend),
            "prometheus_url": self.prometheus_url,
            "rules_url": self.rules_url,
            "alertmanager_url": self.alertmanager_url,
            "actioner_url": self.actioner_url,
            "actioner_pid": self.actioner_pid,
            "exporters": self.exporters,
        }
        (self.state_dir / STATE_FILE).write_text(
            json.dumps(record, indent=2) + "\n", encoding="utf-8"
        )


def start(
    lab: Lab,
    *,
    timings: Timings = Timings(),
    policy_file: Path | None = None,
    actioner_settings: dict[str, Any] | None = None,
    ready_timeout: float = 60.0,
    backend: Backend = Backend.PROMETHEUS,
    consolidate: bool = False,
    night: Sequence[Mapping[str, Any]] = LAB_NIGHT,
) -> Stack:
    """Bring up exporters, Alertmanager, the metrics backend and the actioner on a running lab.

    Order matters: Alertmanager needs the actioner's webhook URL, Prometheus (or vmalert) needs
    Alertmanager's, and the actioner needs both. The actioner's port is chosen first, so it can start last.
    ``consolidate``: Alertmanager routes HostUnderutilized to the actioner as well (the night demo),
    inside the time interval ``night``. ``policy_file``: a policy over the lab profile (default: the
    profile alone); its rule file and merged policy are generated into the stack's folder, so the rules
    and the actioner agree on every threshold and window.
    """
    state_dir = Path(lab.state_dir) / "stack"
    rule_file, merged_policy = write_lab_files(state_dir, policy_file)
    policy = Policy.load(merged_policy)
    # A new stack on this lab: the previous actioner goes, and its history with it, so cooldowns
    # start from nothing (the lab's guests may have been put back by hand since).
    stop_actioner(state_dir)
    for leftover in state_dir.glob("journal.sqlite*"):
        leftover.unlink()
    token_file = state_dir / TOKEN_FILE
    if not token_file.exists():
        token_file.write_text(secrets.token_urlsafe(32) + "\n", encoding="utf-8")
        token_file.chmod(0o600)

    actioner_port = _free_port()
    actioner_url = f"http://127.0.0.1:{actioner_port}"
    exporters = lab.start_exporters()
    alertmanager_url = lab.start_alertmanager(
        webhook_url=f"{actioner_url}/api/v1/alerts",
        token_file=token_file,
        group_wait=timings.group_wait,
        group_interval=timings.group_interval,
        repeat_interval=timings.repeat_interval,
        consolidate=consolidate,
        night=night,
    )
    # The actioner's own metrics feed the rebalancing dashboard and the migration alerts.
    actioner_job = {ACTIONER_SCRAPE_JOB: [f"127.0.0.1:{actioner_port}"]}
    if backend is Backend.VICTORIAMETRICS:
        prometheus_url = lab.start_victoriametrics(
            scrape_interval=timings.scrape_interval,
            extra_jobs=actioner_job,
            extra_jobs_token_file=token_file,
        )
        rules_url = lab.start_vmalert(
            [rule_file],
            datasource=prometheus_url,
            alertmanagers=[alertmanager_url],
            evaluation_interval=timings.evaluation_interval,
        )
    else:
        prometheus_url = lab.start_prometheus(
            [rule_file],
            scrape_interval=timings.scrape_interval,
            evaluation_interval=timings.evaluation_interval,
            alertmanager=alertmanager_url,
            extra_jobs=actioner_job,
            extra_jobs_token_file=token_file,
        )
        rules_url = prometheus_url
    config_file = state_dir / "actioner.yml"
    config = actioner_config(
        lab,
        listen=f"127.0.0.1:{actioner_port}",
        prometheus_url=prometheus_url,
        alertmanager_url=alertmanager_url,
        token_file=token_file,
        journal=state_dir / "journal.sqlite",
        policy_file=merged_policy,
        overrides=actioner_settings or {},
    )
    config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    process = _spawn_actioner(config_file, state_dir / "actioner.log")
    pid = process.pid
    # Recorded with the lab's own processes, so `virtbalance lab down` stops the actioner too.
    started = start_time(pid)
    update_state(lab.state_dir, lambda state: record_process(state, "actioner", pid, started))
    stack = Stack(
        lab=lab,
        prometheus_url=prometheus_url,
        alertmanager_url=alertmanager_url,
        actioner_url=actioner_url,
        exporters=exporters,
        policy=policy,
        state_dir=state_dir,
        actioner_pid=pid,
        timings=timings,
        backend=backend,
        rules_url=rules_url,
        actioner_process=process,
    )
    stack.save()
    wait_ready(stack, ready_timeout)
    return stack


def actioner_hosts(
    hosts: Sequence[LabHost], cpus: Callable[[LabHost], float] | None = None
) -> dict[str, dict[str, Any]]:
    """The actioner config's ``hosts`` for lab hosts: their URIs and memory, and ``cpus(host)`` CPUs.

    By default each host's CPUs as the scenario declares them: lab hosts share one machine, whose
    whole CPU count libvirt would report for every one of them.
    """
    return {
        host.name: {
            "uri": host.libvirt_uri,
            "migration_uri": host.migration_uri,
            "cpus": host.cpus if cpus is None else cpus(host),
            "memory": host.memory_bytes,
        }
        for host in hosts
    }


def actioner_config(
    lab: Lab,
    *,
    listen: str,
    prometheus_url: str,
    alertmanager_url: str,
    token_file: Path,
    journal: Path,
    policy_file: Path,
    overrides: dict[str, Any],
) -> dict[str, Any]:
    """The actioner's YAML config for this lab (keys of ``virtbalance.actioner.config``); ``overrides`` merge per section."""
    config: dict[str, Any] = {
        "hosts": actioner_hosts(lab.hosts),
        "policy_file": str(policy_file),
        "journal": {"path": str(journal)},
        "prometheus": {"url": prometheus_url},
        "alertmanager": {"url": alertmanager_url},
        "webhook": {"token_file": str(token_file), "listen": listen},
        # no shared storage between lab hosts: guests with writable disks move with them
        "execution": {"copy_storage": "all"} if lab.scenario.local_storage else {},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _actioner_command(config_file: Path) -> list[str]:
    binary = Path(sys.executable).parent / ACTIONER_BINARY
    if binary.exists():
        return [str(binary), "--config", str(config_file)]
    return [sys.executable, "-m", "virtbalance.actioner.main", "--config", str(config_file)]


def _spawn_actioner(config_file: Path, log_file: Path) -> subprocess.Popen[bytes]:
    """Start the actioner detached from the caller, so ``demo up`` can return and leave it running."""
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            _actioner_command(config_file),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(config_file.parent),
        )
    return process


def wait_ready(stack: Stack, timeout: float) -> None:
    """Wait until Prometheus, Alertmanager and the actioner answer; say which did not."""
    deadline = time.monotonic() + timeout
    waiting = {"prometheus", "alertmanager", "actioner"}
    while waiting and time.monotonic() < deadline:
        if "prometheus" in waiting and stack.prometheus.ready():
            waiting.discard("prometheus")
        if "alertmanager" in waiting and stack.alertmanager.ready():
            waiting.discard("alertmanager")
        if "actioner" in waiting:
            process = stack.actioner_process
            exited = (
                process.poll() is not None
                if process is not None
                else not _alive(stack.actioner_pid)
            )
            if exited:
                raise StackError(
                    f"the actioner exited at start; see {stack.actioner_log}:\n{_tail(stack.actioner_log)}"
                )
            if _healthy(stack.actioner_url):
                waiting.discard("actioner")
        if waiting:
            time.sleep(0.5)
    if waiting:
        raise StackError(f"not ready after {timeout:.0f}s: {', '.join(sorted(waiting))}")


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return _cmdline(pid) != "" and "zombie" not in _status(pid)


def _status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text(encoding="utf-8").lower()
    except OSError:
        return ""


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_actioner(state_dir: Path, timeout: float = 30.0) -> bool:
    """Stop the actioner recorded in ``state_dir``; true when one was running."""
    record_file = state_dir / STATE_FILE
    if not record_file.exists():
        return False
    pid = int(json.loads(record_file.read_text(encoding="utf-8"))["actioner_pid"])
    # The pid may have been reused since: only signal a process that is our actioner.
    if "actioner" not in _cmdline(pid):
        record_file.unlink()
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        _reap(pid)
    record_file.unlink()
    return True


def _reap(pid: int) -> None:
    """Collect the exit status when the actioner is our own child (the test's case)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(stack: Stack) -> None:
    """Stop the actioner; the lab and its monitoring stay (``lab.down()`` removes them)."""
    stop_actioner(stack.state_dir)
    if stack.actioner_process is not None:
        # Collect the exit status, so no zombie and no "still running" handle is left behind.
        try:
            stack.actioner_process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            stack.actioner_process.kill()
            stack.actioner_process.wait()
