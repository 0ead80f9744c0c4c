"""The lab's generated monitoring config: Prometheus and VictoriaMetrics scrape jobs, vmalert flags."""

from __future__ import annotations

import pytest
import yaml

from virtbalance.lab.monitoring import (
    NO_NIGHT,
    SCRAPE_JOB,
    alertmanager_config,
    prometheus_config,
    victoriametrics_args,
    victoriametrics_scrape_config,
    vmalert_args,
)


def test_extra_jobs_are_scraped_beside_the_exporters():
    config = yaml.safe_load(
        prometheus_config(
            {"hv2": "198.18.0.12:9178", "hv1": "198.18.0.11:9178"},
            [],
            "2s",
            "2s",
            None,
            extra_jobs={"virtbalance-actioner": ["127.0.0.1:9999"]},
        )
    )
    jobs = {job["job_name"]: job["static_configs"] for job in config["scrape_configs"]}
    assert jobs[SCRAPE_JOB] == [
        {"targets": ["198.18.0.11:9178"], "labels": {"host": "hv1"}},
        {"targets": ["198.18.0.12:9178"], "labels": {"host": "hv2"}},
    ]
    assert jobs["virtbalance-actioner"] == [{"targets": ["127.0.0.1:9999"]}]


def test_an_extra_job_may_not_take_the_exporters_name():
    with pytest.raises(ValueError, match="would replace the exporters' job"):
        prometheus_config({}, [], "2s", "2s", None, extra_jobs={SCRAPE_JOB: ["x:1"]})


def test_extra_jobs_send_the_actioner_token_from_its_file(tmp_path):
    token = tmp_path / "webhook-token"
    config = yaml.safe_load(
        prometheus_config(
            {},
            [],
            "2s",
            "2s",
            None,
            extra_jobs={"virtbalance-actioner": ["127.0.0.1:9999"]},
            extra_jobs_token_file=token,
        )
    )
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["virtbalance-actioner"]["authorization"] == {"credentials_file": str(token)}
    assert "authorization" not in jobs[SCRAPE_JOB]


def test_victoriametrics_scrapes_the_same_jobs_without_prometheus_only_keys(tmp_path):
    targets = {"hv1": "198.18.0.2:9178", "hv2": "198.18.0.3:9178"}
    jobs = {"virtbalance-actioner": ["127.0.0.1:9096"]}
    token = tmp_path / "token"
    prometheus = yaml.safe_load(
        prometheus_config(
            targets,
            [tmp_path / "r.yml"],
            "2s",
            "2s",
            "127.0.0.1:9093",
            extra_jobs=jobs,
            extra_jobs_token_file=token,
        )
    )
    victoria = yaml.safe_load(
        victoriametrics_scrape_config(targets, "2s", extra_jobs=jobs, extra_jobs_token_file=token)
    )
    assert victoria["scrape_configs"] == prometheus["scrape_configs"]
    # VictoriaMetrics' strict parser refuses keys it does not know.
    assert victoria["global"] == {"scrape_interval": "2s"}
    assert set(victoria) == {"global", "scrape_configs"}


def test_victoriametrics_refuses_a_zero_scrape_interval():
    with pytest.raises(ValueError, match="scrape_interval"):
        victoriametrics_scrape_config({"hv1": "198.18.0.2:9178"}, "0s")


def test_vmalert_evaluates_every_rule_file_and_notifies_every_alertmanager(tmp_path):
    argv = vmalert_args(
        [tmp_path / "a.yml", tmp_path / "b.yml"],
        datasource="http://127.0.0.1:8428/",
        alertmanagers=["http://127.0.0.1:9093", "http://127.0.0.1:9094/"],
        listen="127.0.0.1:8880",
        evaluation_interval="2s",
    )
    assert argv[:2] == [f"-rule={tmp_path / 'a.yml'}", f"-rule={tmp_path / 'b.yml'}"]
    assert "-datasource.url=http://127.0.0.1:8428" in argv
    # Alert states are written back, as Prometheus keeps ALERTS, and restored after a restart.
    assert "-remoteWrite.url=http://127.0.0.1:8428" in argv
    assert "-remoteRead.url=http://127.0.0.1:8428" in argv
    assert [a for a in argv if a.startswith("-notifier.url=")] == [
        "-notifier.url=http://127.0.0.1:9093",
        "-notifier.url=http://127.0.0.1:9094",
    ]
    assert "-evaluationInterval=2s" in argv
    assert "-datasource.queryTimeAlignment=false" in argv


def test_vmalert_needs_a_rule_file():
    with pytest.raises(ValueError, match="rule file"):
        vmalert_args(
            [],
            datasource="http://127.0.0.1:8428",
            alertmanagers=["http://127.0.0.1:9093"],
            listen="127.0.0.1:8880",
            evaluation_interval="2s",
        )


def test_victoriametrics_answers_the_present_not_30s_ago(tmp_path):
    argv = victoriametrics_args(tmp_path / "scrape.yml", tmp_path / "data", "127.0.0.1:8428")
    assert f"-promscrape.config={tmp_path / 'scrape.yml'}" in argv
    assert f"-storageDataPath={tmp_path / 'data'}" in argv
    assert "-search.latencyOffset=1s" in argv


def test_the_night_lab_routes_underutilized_hosts_inside_its_night_interval(tmp_path):
    plain = yaml.safe_load(
        alertmanager_config("http://127.0.0.1:1/api/v1/alerts", None, "1s", "5s", "30s")
    )
    assert [r["matchers"] for r in plain["route"]["routes"]] == [
        ['alertname="HostSustainedOverload"']
    ]
    assert "time_intervals" not in plain
    night = yaml.safe_load(
        alertmanager_config(
            "http://127.0.0.1:1/api/v1/alerts", None, "1s", "5s", "30s", consolidate=True
        )
    )
    overload, consolidation = night["route"]["routes"]
    assert overload["matchers"] == ['alertname="HostSustainedOverload"']
    assert "active_time_intervals" not in overload
    assert consolidation["matchers"] == ['alertname="HostUnderutilized"']
    assert consolidation["receiver"] == "virtbalance"
    assert consolidation["active_time_intervals"] == ["night"]
    assert night["time_intervals"] == [
        {
            "name": "night",
            "time_intervals": [{"times": [{"start_time": "00:00", "end_time": "24:00"}]}],
        }
    ]
    never = yaml.safe_load(
        alertmanager_config(
            "http://127.0.0.1:1/api/v1/alerts",
            None,
            "1s",
            "5s",
            "30s",
            consolidate=True,
            night=NO_NIGHT,
        )
    )
    assert never["time_intervals"] == [{"name": "night", "time_intervals": [{"years": ["2001"]}]}]
