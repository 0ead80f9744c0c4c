"""Configuration of the lab's metrics backends and Alertmanager (pure functions of their inputs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from virtbalance.contract import ALERT_OVERLOAD, ALERT_UNDERUTILIZED, LABEL_ALERTNAME, LABEL_HOST
from virtbalance.durations import parse_duration

# When the lab's consolidation may run (its route's active_time_intervals): every hour of the day, so a
# demo runs whenever it is started. NO_NIGHT never comes (a route outside its interval, for tests).
LAB_NIGHT: tuple[dict[str, Any], ...] = ({"times": [{"start_time": "00:00", "end_time": "24:00"}]},)
NO_NIGHT: tuple[dict[str, Any], ...] = ({"years": ["2001"]},)
SCRAPE_JOB = "virtbalance-exporter"


def scrape_configs(
    targets: Mapping[str, str],
    *,
    extra_jobs: Mapping[str, Sequence[str]] | None = None,
    extra_jobs_token_file: Path | None = None,
) -> list[dict[str, Any]]:
    """Every exporter target with the label host=<lab host>, then the extra jobs by name.

    Both backends read this list: VictoriaMetrics' -promscrape.config takes Prometheus's scrape_configs.
    """
    jobs: list[dict[str, Any]] = [
        {
            "job_name": SCRAPE_JOB,
            "static_configs": [
                {"targets": [target], "labels": {LABEL_HOST: host}}
                for host, target in sorted(targets.items())
            ],
        }
    ]
    for job, job_targets in sorted((extra_jobs or {}).items()):
        if job == SCRAPE_JOB:
            raise ValueError(f"extra job {job!r} would replace the exporters' job")
        extra: dict[str, Any] = {
            "job_name": job,
            "static_configs": [{"targets": list(job_targets)}],
        }
        if extra_jobs_token_file is not None:
            # The actioner's /metrics needs its bearer token, like every endpoint but /healthz.
            extra["authorization"] = {
                "credentials_file": str(Path(extra_jobs_token_file).resolve())
            }
        jobs.append(extra)
    return jobs


def _positive(**intervals: str) -> None:
    for name, value in intervals.items():
        if parse_duration(value) <= 0:
            raise ValueError(f"{name} must be more than 0, not {value!r}")


def prometheus_config(
    targets: Mapping[str, str],
    rule_files: Sequence[Path],
    scrape_interval: str,
    evaluation_interval: str,
    alertmanager: str | None,
    *,
    extra_jobs: Mapping[str, Sequence[str]] | None = None,
    extra_jobs_token_file: Path | None = None,
) -> str:
    """Scrape every exporter target with the label host=<lab host>; rules, Alertmanager and more jobs optional."""
    _positive(scrape_interval=scrape_interval, evaluation_interval=evaluation_interval)
    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "scrape_configs": scrape_configs(
            targets, extra_jobs=extra_jobs, extra_jobs_token_file=extra_jobs_token_file
        ),
    }
    if rule_files:
        config["rule_files"] = [str(Path(p).resolve()) for p in rule_files]
    if alertmanager:
        address = alertmanager.split("://", 1)[-1].rstrip("/")
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [address]}]}]}
    return yaml.safe_dump(config, sort_keys=False)


def victoriametrics_scrape_config(
    targets: Mapping[str, str],
    scrape_interval: str,
    *,
    extra_jobs: Mapping[str, Sequence[str]] | None = None,
    extra_jobs_token_file: Path | None = None,
) -> str:
    """VictoriaMetrics' -promscrape.config: the same jobs as Prometheus's, no rules (vmalert has them).

    Its parser is strict: Prometheus-only keys (evaluation_interval, rule_files, alerting) are refused.
    """
    _positive(scrape_interval=scrape_interval)
    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval},
        "scrape_configs": scrape_configs(
            targets, extra_jobs=extra_jobs, extra_jobs_token_file=extra_jobs_token_file
        ),
    }
    return yaml.safe_dump(config, sort_keys=False)


def victoriametrics_args(scrape_config: Path, data_dir: Path, listen: str) -> list[str]:
    """victoria-metrics' flags: scrape with ``scrape_config``, store in ``data_dir``, serve on ``listen``."""
    return [
        f"-promscrape.config={Path(scrape_config).resolve()}",
        f"-storageDataPath={Path(data_dir).resolve()}",
        f"-httpListenAddr={listen}",
        "-retentionPeriod=1d",
        # By default an instant query near "now" is answered 30s in the past (samples still in flight
        # from other ingesters); with one local scraper that only delays every alert by 30s against
        # Prometheus. One second covers the in-memory buffer VictoriaMetrics flushes every second.
        "-search.latencyOffset=1s",
    ]


def vmalert_args(
    rule_files: Sequence[Path],
    *,
    datasource: str,
    alertmanagers: Sequence[str],
    listen: str,
    evaluation_interval: str,
) -> list[str]:
    """vmalert's flags: evaluate ``rule_files`` against ``datasource``, notify every Alertmanager.

    Alert states go back to the datasource as ALERTS series (remote write), as Prometheus keeps them,
    so the dashboards' ALERTS queries work on both backends; they are restored from it after a restart.
    """
    _positive(evaluation_interval=evaluation_interval)
    if not rule_files:
        raise ValueError("vmalert needs at least one rule file")
    source = datasource.rstrip("/")
    argv = [f"-rule={Path(p).resolve()}" for p in rule_files]
    argv += [
        f"-datasource.url={source}",
        f"-remoteWrite.url={source}",
        f"-remoteRead.url={source}",
        f"-evaluationInterval={evaluation_interval}",
        f"-httpListenAddr={listen}",
        # The lab's alerts link back to vmalert itself, not to a Prometheus that is not there.
        f"-external.url=http://{listen}",
        # Remote write is batched every second by default; ALERTS would lag the rule state by as much.
        "-remoteWrite.flushInterval=500ms",
        # vmalert rounds each query's time down to a multiple of the interval by default: up to one
        # interval behind the moment Prometheus evaluates at. Query at the evaluation moment instead.
        "-datasource.queryTimeAlignment=false",
    ]
    argv += [f"-notifier.url={url.rstrip('/')}" for url in alertmanagers]
    return argv


def alertmanager_config(
    webhook_url: str,
    token_file: Path | None,
    group_wait: str,
    group_interval: str,
    repeat_interval: str,
    *,
    consolidate: bool = False,
    night: Sequence[Mapping[str, Any]] = LAB_NIGHT,
) -> str:
    """Route HostSustainedOverload to the webhook (bearer token from a file), everything else nowhere.

    ``consolidate``: HostUnderutilized too, inside the time interval ``night`` (``LAB_NIGHT`` unless
    given; deploy/alertmanager.yml has real nights).
    """
    for _name, value in (
        ("group_wait", group_wait),
        ("group_interval", group_interval),
        ("repeat_interval", repeat_interval),
    ):
        parse_duration(value)
    webhook: dict[str, Any] = {"url": webhook_url, "send_resolved": True}
    if token_file is not None:
        webhook["http_config"] = {
            "authorization": {"type": "Bearer", "credentials_file": str(Path(token_file).resolve())}
        }
    config: dict[str, Any] = {
        "route": {
            "receiver": "discard",
            "group_by": [LABEL_ALERTNAME, LABEL_HOST],
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
            "routes": [
                {"receiver": "virtbalance", "matchers": [f'{LABEL_ALERTNAME}="{ALERT_OVERLOAD}"']}
            ],
        },
        "receivers": [{"name": "discard"}, {"name": "virtbalance", "webhook_configs": [webhook]}],
    }
    if consolidate:
        config["route"]["routes"].append(
            {
                "receiver": "virtbalance",
                "matchers": [f'{LABEL_ALERTNAME}="{ALERT_UNDERUTILIZED}"'],
                # One group for every idle host: one consolidate plan packs them together.
                "group_by": [LABEL_ALERTNAME],
                "active_time_intervals": ["night"],
            }
        )
        config["time_intervals"] = [
            {"name": "night", "time_intervals": [dict(interval) for interval in night]}
        ]
    return yaml.safe_dump(config, sort_keys=False)
