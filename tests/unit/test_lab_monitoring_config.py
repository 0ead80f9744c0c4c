"""The lab's generated Prometheus config: exporter job with host labels, extra jobs beside it."""

from __future__ import annotations

import pytest
import yaml

from lab.monitoring import NO_NIGHT, SCRAPE_JOB, alertmanager_config, prometheus_config


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
