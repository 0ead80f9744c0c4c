"""The lab's monitoring processes: an exporter in each host, Prometheus or VictoriaMetrics, Alertmanager."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict, Unpack

from virtbalance.lab.errors import LabError
from virtbalance.lab.host_daemons import LabHosts
from virtbalance.lab.monitoring import (
    LAB_NIGHT,
    alertmanager_config,
    prometheus_config,
    victoriametrics_args,
    victoriametrics_scrape_config,
    vmalert_args,
)
from virtbalance.lab.naming import EXPORTER_PORT
from virtbalance.lab.processes import (
    require_free_port,
    spawn_recorded,
    stop_role_prefix,
    wait_for_http,
    wait_for_port,
)
from virtbalance.lab.state import read_state, update_state
from virtbalance.lab.system import MONITORING_TOOLS, find_tool, require_tools

# Recorded process roles of the monitoring stack (prefixes: one exporter per host).
MONITORING_ROLES = ("exporter:", "prometheus", "victoriametrics", "vmalert", "alertmanager")
# The state's keys for the addresses of what the monitoring stack serves.
MONITORING_KEYS = (
    "exporters",
    "prometheus",
    "victoriametrics",
    "vmalert",
    "alertmanager",
    "alertmanager_peer",
)


class RouteTimings(TypedDict, total=False):
    """Alertmanager's route timings (durations such as ``"5s"``); the lab's short ones where unset."""

    group_wait: str
    group_interval: str
    repeat_interval: str


class LabMonitoring(LabHosts):
    """The monitoring stack of one lab, on 127.0.0.1 beside it and in its hosts, started and stopped."""

    def start_exporters(self, extra_args: Iterable[str] = ()) -> dict[str, str]:
        """One ``virtbalance-exporter`` inside each host, with its declared capacity; host -> target."""
        exporter = _exporter_binary()
        stop_role_prefix(self.state_dir, "exporter:")
        targets: dict[str, str] = {}
        started: list[tuple[str, int]] = []
        for host in self.hosts:
            target = f"{host.address}:{EXPORTER_PORT}"
            argv = [
                exporter,
                "--libvirt.uri",
                "qemu:///system",
                "--web.listen-address",
                target,
                "--host.cpus",
                _number(host.cpus),
                "--host.memory-bytes",
                str(host.memory_bytes),
                *extra_args,
            ]
            process = spawn_recorded(
                self.state_dir,
                f"exporter:{host.name}",
                self._nsenter(host.name, argv),
                self._exporter_log(host.name),
            )
            started.append((host.name, process))
            targets[host.name] = target
        for name, process in started:
            wait_for_port(targets[name], process, self._exporter_log(name), f"exporter on {name}")
        self._remember(exporters=targets)
        return targets

    def _exporter_log(self, host: str) -> Path:
        return self.state_dir / f"exporter-{host}.log"

    def start_prometheus(
        self,
        rule_files: Sequence[Path] = (),
        scrape_interval: str = "2s",
        evaluation_interval: str = "2s",
        alertmanager: str | None = None,
        extra_jobs: Mapping[str, Sequence[str]] | None = None,
        *,
        extra_jobs_token_file: Path | None = None,
    ) -> str:
        """Debian's Prometheus on 127.0.0.1 scraping every exporter (started if needed); its URL.

        ``extra_jobs`` adds scrape jobs by name (the actioner's metrics, for instance), sending the
        bearer token of ``extra_jobs_token_file`` when given.
        """
        binary = _monitoring_tool("prometheus")
        config = self._write_config(
            "prometheus/prometheus.yml",
            prometheus_config(
                self._scrape_targets(),
                # by name: two durations side by side are easily swapped
                rule_files=rule_files,
                scrape_interval=scrape_interval,
                evaluation_interval=evaluation_interval,
                alertmanager=alertmanager,
                extra_jobs=extra_jobs,
                extra_jobs_token_file=extra_jobs_token_file,
            ),
        )
        stop_role_prefix(self.state_dir, "prometheus")
        address = f"127.0.0.1:{self.names.prometheus_port}"
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={config.parent / 'data'}",
            f"--web.listen-address={address}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=1d",
            # An alert that fires before the notifier has found Alertmanager (right after start) is only
            # sent again after the resend delay, 1 minute by default: far too slow for a lab's short loop.
            "--rules.alert.resend-delay=5s",
        ]
        url = self._serve("prometheus", address, argv, ready_path="/-/ready", what="Prometheus")
        self._remember(prometheus=url)
        return url

    def start_victoriametrics(
        self,
        scrape_interval: str = "2s",
        extra_jobs: Mapping[str, Sequence[str]] | None = None,
        *,
        extra_jobs_token_file: Path | None = None,
    ) -> str:
        """Debian's VictoriaMetrics single-node on 127.0.0.1 scraping Prometheus's jobs; its URL.

        It serves the Prometheus query API the actioner and the demo read; rules run in vmalert.
        """
        binary = _monitoring_tool("victoria-metrics")
        config = self._write_config(
            "victoriametrics/scrape.yml",
            victoriametrics_scrape_config(
                self._scrape_targets(),
                scrape_interval,
                extra_jobs=extra_jobs,
                extra_jobs_token_file=extra_jobs_token_file,
            ),
        )
        stop_role_prefix(self.state_dir, "victoriametrics")
        address = f"127.0.0.1:{self.names.victoriametrics_port}"
        argv = [binary, *victoriametrics_args(config, config.parent / "data", address)]
        url = self._serve(
            "victoriametrics", address, argv, ready_path="/health", what="VictoriaMetrics"
        )
        self._remember(victoriametrics=url)
        return url

    def start_vmalert(
        self,
        rule_files: Sequence[Path],
        datasource: str,
        alertmanagers: Sequence[str],
        evaluation_interval: str = "2s",
    ) -> str:
        """Debian's vmalert on 127.0.0.1: ``rule_files`` against ``datasource``, alerts to Alertmanager."""
        binary = _monitoring_tool("vmalert")
        stop_role_prefix(self.state_dir, "vmalert")
        address = f"127.0.0.1:{self.names.vmalert_port}"
        argv = vmalert_args(
            rule_files,
            datasource=datasource,
            alertmanagers=alertmanagers,
            listen=address,
            evaluation_interval=evaluation_interval,
        )
        url = self._serve("vmalert", address, [binary, *argv], ready_path="/health", what="vmalert")
        self._remember(vmalert=url)
        return url

    def start_alertmanager(
        self,
        webhook_url: str,
        token_file: Path | None = None,
        *,
        consolidate: bool = False,
        night: Sequence[Mapping[str, Any]] = LAB_NIGHT,
        **timings: Unpack[RouteTimings],
    ) -> str:
        """Debian's Alertmanager on 127.0.0.1, no gossip, routing HostSustainedOverload to the webhook
        (``consolidate``: HostUnderutilized too, see lab.monitoring.alertmanager_config)."""
        config = self._write_alertmanager_config(
            webhook_url, token_file, timings, consolidate=consolidate, night=night
        )
        stop_role_prefix(self.state_dir, "alertmanager")
        url = self._start_alertmanager_instance(
            "alertmanager", self.names.alertmanager_port, config, cluster=None
        )
        self._remember(alertmanager=url)
        return url

    def start_alertmanager_pair(
        self, webhook_url: str, token_file: Path | None = None, **timings: Unpack[RouteTimings]
    ) -> tuple[str, str]:
        """Two Alertmanagers gossiping on 127.0.0.1 (``--cluster.peer``), both routing to the webhook.

        They share notifications (one sends a group, the other sees it in the gossiped log) and
        silences (one made on either holds on both). Returns both URLs, the first also as ``alertmanager``.
        """
        config = self._write_alertmanager_config(webhook_url, token_file, timings)
        stop_role_prefix(self.state_dir, "alertmanager")
        gossip = [f"127.0.0.1:{self.names.alertmanager_cluster_port(i)}" for i in (0, 1)]
        urls = tuple(
            self._start_alertmanager_instance(
                role, port, config, cluster=(gossip[i], gossip[1 - i])
            )
            for i, (role, port) in enumerate(
                (
                    ("alertmanager", self.names.alertmanager_port),
                    ("alertmanager-peer", self.names.alertmanager_peer_port),
                )
            )
        )
        first, second = urls
        self._remember(alertmanager=first, alertmanager_peer=second)
        return first, second

    def _write_alertmanager_config(
        self,
        webhook_url: str,
        token_file: Path | None,
        timings: RouteTimings,
        *,
        consolidate: bool = False,
        night: Sequence[Mapping[str, Any]] = LAB_NIGHT,
    ) -> Path:
        """The lab's alertmanager.yml, which every instance of the lab reads (unset timings: the lab's)."""
        text = alertmanager_config(
            webhook_url,
            token_file,
            timings.get("group_wait", "1s"),
            timings.get("group_interval", "5s"),
            timings.get("repeat_interval", "30s"),
            consolidate=consolidate,
            night=night,
        )
        return self._write_config("alertmanager/alertmanager.yml", text)

    def _start_alertmanager_instance(
        self, role: str, port: int, config: Path, cluster: tuple[str, str] | None
    ) -> str:
        """One Alertmanager; ``cluster`` = (own gossip address, peer's) or None for no gossip."""
        binary = _monitoring_tool("prometheus-alertmanager")
        address = f"127.0.0.1:{port}"
        directory = self.state_dir / role
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.path={directory / 'data'}",
            f"--web.listen-address={address}",
            # Debug: the log then says when a route's time interval held a notification back.
            "--log.level=debug",
        ]
        if cluster is None:
            argv.append("--cluster.listen-address=")
        else:
            own, peer = cluster
            argv += [
                f"--cluster.listen-address={own}",
                # Loopback is not a private address: without this Alertmanager refuses to pick one.
                f"--cluster.advertise-address={own}",
                f"--cluster.peer={peer}",
                # The second instance waits this long for the first to send a group before sending
                # it itself (15 s by default): a lab's loop is shorter than that.
                "--cluster.peer-timeout=2s",
            ]
        return self._serve(
            role,
            address,
            argv,
            ready_path="/-/ready",
            what=f"Alertmanager ({role})",
            log_name="alertmanager",
        )

    def _scrape_targets(self) -> Mapping[str, str]:
        """The exporters' targets by host, starting the exporters when none run yet."""
        state = read_state(self.state_dir) or {}
        recorded: Mapping[str, str] | None = state.get("exporters")
        return recorded or self.start_exporters()

    def _write_config(self, relative: str, text: str) -> Path:
        """``text`` as the file ``relative`` (``<service>/<name>``) below the state directory."""
        config = self.state_dir / relative
        config.parent.mkdir(exist_ok=True)
        config.write_text(text)
        return config

    def _serve(
        self,
        role: str,
        address: str,
        argv: Sequence[str],
        *,
        ready_path: str,
        what: str,
        log_name: str | None = None,
    ) -> str:
        """Start ``argv`` listening on ``address`` (which must be free) as ``role``; its URL once ready.

        Its log is ``<role>/<log_name or role>.log`` in the state directory.
        """
        require_free_port(address)
        directory = self.state_dir / role
        directory.mkdir(exist_ok=True)
        log = directory / f"{log_name or role}.log"
        process = spawn_recorded(self.state_dir, role, argv, log)
        url = f"http://{address}"
        wait_for_http(f"{url}{ready_path}", process, log, what)
        return url

    def _remember(self, **addresses: Any) -> None:
        """Record where the monitoring stack serves, for ``attach``ed callers and the CLI's status."""
        update_state(self.state_dir, lambda s: s.update(addresses))

    def stop_monitoring(self) -> None:
        """Stop the exporters, metrics backends and Alertmanager of this lab (the hosts and guests stay)."""
        for role in MONITORING_ROLES:
            stop_role_prefix(self.state_dir, role)

        def forget(state: dict[str, Any]) -> None:
            for key in MONITORING_KEYS:
                state.pop(key, None)

        update_state(self.state_dir, forget)


def _monitoring_tool(name: str) -> str:
    """The path of monitoring tool ``name``, or LabError naming the Debian package to install."""
    return require_tools({name: MONITORING_TOOLS[name]})[name]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _exporter_binary() -> str:
    beside = Path(sys.executable).parent / "virtbalance-exporter"
    if beside.exists():
        return str(beside)
    found = find_tool("virtbalance-exporter")
    if found is None:
        raise LabError(
            "virtbalance-exporter not found; run scripts/bootstrap to install the project"
        )
    return found
