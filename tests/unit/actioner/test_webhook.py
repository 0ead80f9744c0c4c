"""The webhook against recorded Alertmanager 0.25 notifications: auth, bad input, dedupe, resolved cancels."""

from __future__ import annotations

import copy
import io
import json
import logging
import threading

import pytest

from tests.actioner_fixtures import TOKEN, payload
from virtbalance.actioner.config import WebhookConfig
from virtbalance.actioner.webhook import mode_of

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def post(client, body, headers=AUTH, **kwargs):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(
        "/api/v1/alerts", data=data, headers=headers, content_type="application/json", **kwargs
    )


def problems(client, body):
    """The problems a rejected body is answered with, after checking the answer is a 400."""
    response = post(client, body)
    assert response.status_code == 400
    return response.get_json()["problems"]


def plan_states(services):
    return [(p.id, p.state, p.hosts, p.cancel_requested) for p in services.journal.plans()]


def test_firing_notification_queues_one_plan_for_its_host(client, actioner_services):
    response = post(client, payload("firing_hv1"))
    assert response.status_code == 200
    body = response.get_json()
    assert body["duplicate"] is False
    assert actioner_services.worker.submitted == [body["queued_plan"]]
    assert plan_states(actioner_services) == [(body["queued_plan"], "queued", ("hv1",), False)]


def test_repeats_and_ha_peer_duplicates_give_one_plan(client, actioner_services):
    first = post(client, payload("firing_hv1"))
    # the real re-send Alertmanager made on repeat_interval, and the same body from an HA peer
    repeat = post(client, payload("firing_hv1_repeat"))
    peer = post(client, payload("firing_hv1"))
    assert first.get_json()["queued_plan"] is not None
    assert repeat.get_json() == {
        "queued_plan": None,
        "queued_plans": {},
        "duplicate": True,
        "cancelled_plans": [],
        "ignored": [],
    }
    assert peer.get_json()["duplicate"] is True
    assert len(actioner_services.worker.submitted) == 1
    assert len(actioner_services.journal.plans()) == 1


def test_a_new_overload_of_the_same_host_gets_a_new_plan(client, actioner_services):
    post(client, payload("firing_hv1"))
    again = payload("firing_hv1")
    again["alerts"][0]["startsAt"] = "2026-11-21T18:00:00Z"  # it resolved and fired again later
    response = post(client, again)
    assert response.get_json()["queued_plan"] is not None
    assert len(actioner_services.worker.submitted) == 2


def test_two_hosts_in_one_group_give_one_plan_for_both(client, actioner_services):
    response = post(client, payload("firing_two_hosts"))
    plan_id = response.get_json()["queued_plan"]
    assert actioner_services.journal.plan(plan_id).hosts == ("hv1", "hv3")


def test_resolved_cancels_the_plan(client, actioner_services):
    plan_id = post(client, payload("firing_hv1")).get_json()["queued_plan"]
    response = post(client, payload("resolved_hv1"))
    assert response.status_code == 200
    assert response.get_json()["cancelled_plans"] == [plan_id]
    journal = actioner_services.journal
    assert journal.cancel_requested(plan_id) is True
    assert journal.alert_firing(plan_id) is False


def test_resolved_does_not_cancel_a_finished_plan(client, actioner_services):
    plan_id = post(client, payload("firing_hv1")).get_json()["queued_plan"]
    actioner_services.journal.set_plan_state(plan_id, "executed")
    response = post(client, payload("resolved_hv1"))
    assert response.get_json()["cancelled_plans"] == []
    assert actioner_services.journal.plan(plan_id).state == "executed"


def test_resolved_for_another_host_leaves_the_plan_alone(client, actioner_services):
    plan_id = post(client, payload("firing_two_hosts")).get_json()["queued_plan"]
    # hv1 resolves (same fingerprint as in the two-host group, other startsAt: unknown instance)
    resolved = payload("resolved_hv1")
    response = post(client, resolved)
    assert response.get_json()["cancelled_plans"] == []
    assert actioner_services.journal.cancel_requested(plan_id) is False


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    ],
    ids=["none", "wrong", "basic-scheme", "no-scheme"],
)
def test_without_the_right_token_401_and_nothing_recorded(client, actioner_services, headers):
    response = post(client, payload("firing_hv1"), headers=headers)
    assert response.status_code == 401
    assert actioner_services.journal.plans() == []
    assert actioner_services.worker.submitted == []


def test_token_never_appears_in_logs_or_answers(client, caplog):
    caplog.set_level(logging.DEBUG)
    responses = [
        post(client, payload("firing_hv1")),
        post(client, payload("firing_hv1"), headers={"Authorization": f"Bearer {TOKEN}x"}),
        post(client, b"{not json"),
        post(client, {"version": "4"}),
    ]
    assert [r.status_code for r in responses] == [200, 401, 400, 400]
    assert caplog.records, "the handlers log"
    assert TOKEN not in caplog.text
    for response in responses:
        assert TOKEN not in response.get_data(as_text=True)


def test_malformed_json_is_400_naming_it(client):
    response = post(client, b'{"version": "4", "alerts": [')
    assert response.status_code == 400
    assert response.get_json()["error"].startswith("malformed JSON")


def test_wrong_version_is_400_naming_it(client):
    body = payload("firing_hv1")
    body["version"] = "3"
    assert problems(client, body) == ["version: unsupported '3' (expected '4')"]


def test_not_an_object_is_400(client):
    assert problems(client, [1, 2]) == ["expected a JSON object, got list"]


def test_every_missing_field_is_named(client, actioner_services):
    body = payload("firing_hv1")
    del body["groupKey"]
    del body["status"]
    alert = body["alerts"][0]
    del alert["fingerprint"]
    del alert["startsAt"]
    alert["labels"] = "host=hv1"
    assert problems(client, body) == [
        "status: missing",
        "groupKey: missing",
        "alerts[0].labels: expected an object of string labels",
        "alerts[0].startsAt: missing",
        "alerts[0].fingerprint: missing",
    ]
    assert actioner_services.journal.plans() == []


def test_bad_status_and_alert_shapes(client):
    body = payload("firing_two_hosts")
    body["status"] = "burning"
    body["alerts"][0] = "hv1"
    body["alerts"][1]["status"] = "pending"
    assert problems(client, body) == [
        "status: expected firing or resolved, got 'burning'",
        "alerts[0]: expected an object, got str",
        "alerts[1].status: expected firing or resolved, got 'pending'",
    ]


def test_alerts_missing_is_400(client):
    body = payload("firing_hv1")
    del body["alerts"]
    assert problems(client, body) == ["alerts: missing"]


def test_oversize_payload_is_413_and_not_recorded(client, actioner_services):
    body = payload("firing_hv1")
    body["alerts"][0]["annotations"]["description"] = "x" * (70 * 1024)
    response = post(client, body)
    assert response.status_code == 413
    assert actioner_services.journal.plans() == []


def test_oversize_without_content_length_is_413(client, actioner_services):
    body = json.dumps(payload("firing_hv1")).encode() + b" " * (70 * 1024)

    # A chunked request: no Content-Length, the server reads until the stream ends.
    response = client.post(
        "/api/v1/alerts",
        input_stream=io.BytesIO(body),
        headers={**AUTH, "Transfer-Encoding": "chunked"},
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert actioner_services.journal.plans() == []


def test_unknown_host_and_other_alerts_are_ignored_with_a_note(client, actioner_services):
    body = payload("firing_two_hosts")
    body["alerts"][0]["labels"]["host"] = "hv9"
    body["alerts"][1]["labels"]["alertname"] = "LibvirtExporterDown"
    response = post(client, body)
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["queued_plan"] is None
    assert answer["ignored"] == [
        "ignored alert 'HostSustainedOverload': host 'hv9' is not in the config",
        "ignored alert 'LibvirtExporterDown': not one of HostSustainedOverload, "
        "HostChronicallyHot, HostUnderutilized, HostsImbalanced",
    ]
    assert actioner_services.journal.plans() == []


def test_get_on_the_webhook_is_405_once_authenticated(client):
    assert client.get("/api/v1/alerts", headers=AUTH).status_code == 405
    assert client.get("/api/v1/alerts").status_code == 401


def test_webhook_codes_are_counted(client):
    post(client, payload("firing_hv1"))
    post(client, payload("firing_hv1"), headers={})
    post(client, b"[")
    client.get("/api/v1/alerts", headers=AUTH)
    text = client.get("/metrics", headers=AUTH).get_data(as_text=True)
    assert 'virtbalance_webhook_requests_total{code="200"} 1.0' in text
    assert 'virtbalance_webhook_requests_total{code="401"} 1.0' in text
    assert 'virtbalance_webhook_requests_total{code="400"} 1.0' in text
    assert 'virtbalance_webhook_requests_total{code="405"} 1.0' in text
    assert 'virtbalance_webhook_requests_total{code="413"} 0.0' in text


def test_metrics_label_values_are_precreated(client):
    text = client.get("/metrics", headers=AUTH).get_data(as_text=True)
    for result in ("done", "failed", "rolled_back", "skipped", "timeout"):
        assert f'virtbalance_migrations_total{{result="{result}"}} 0.0' in text
    for outcome in ("executed", "empty", "unresolved", "failed", "cancelled", "dry_run", "frozen"):
        assert f'virtbalance_plans_total{{outcome="{outcome}"}} 0.0' in text
    for kind in ("vm", "host", "anti_flap", "rate"):
        assert f'virtbalance_cooldowns_active{{kind="{kind}"}} 0.0' in text
    for name in (
        "virtbalance_migration_duration_seconds_bucket",
        "virtbalance_plan_duration_seconds_bucket",
        "virtbalance_chunk_split_seconds_bucket",
        "virtbalance_unplaceable_chunks 0.0",
        "virtbalance_last_successful_plan_timestamp_seconds 0.0",
    ):
        assert name in text


def test_healthz_and_plans_api(client, actioner_services):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    plan_id = post(client, payload("firing_hv1")).get_json()["queued_plan"]
    journal = actioner_services.journal
    journal.add_migration(
        plan_id=plan_id, step=0, domain="web1", chunk="lan11", source="hv1", destination="hv2"
    )
    plans = client.get("/api/v1/plans", headers=AUTH).get_json()["plans"]
    assert [(p["id"], p["state"], p["hosts"]) for p in plans] == [(plan_id, "queued", ["hv1"])]
    assert [(m["domain"], m["state"]) for m in plans[0]["migrations"]] == [("web1", "planned")]
    assert client.get("/api/v1/plans?limit=x", headers=AUTH).status_code == 400


def test_drain_needs_the_token_and_a_known_host(client, actioner_services):
    assert client.post("/api/v1/drain/hv2").status_code == 401
    assert client.post("/api/v1/drain/hv9", headers=AUTH).status_code == 404
    response = client.post("/api/v1/drain/hv2", headers=AUTH)
    assert response.status_code == 202
    plan = actioner_services.journal.plan(response.get_json()["queued_plan"])
    assert (plan.trigger, plan.mode, plan.hosts) == ("drain", "drain:hv2", ("hv2",))
    assert actioner_services.worker.submitted == [plan.id]


def test_recorded_payloads_are_real_alertmanager_v4():
    for name in (
        "firing_hv1",
        "firing_hv1_repeat",
        "firing_hv2",
        "resolved_hv1",
        "firing_two_hosts",
    ):
        body = payload(name)
        assert body["version"] == "4"
        assert body["externalURL"].startswith("http://")
        assert all(len(a["fingerprint"]) == 16 for a in body["alerts"])
    first, repeat = payload("firing_hv1"), payload("firing_hv1_repeat")
    assert first["groupKey"] == repeat["groupKey"]
    assert first["alerts"][0]["startsAt"] == repeat["alerts"][0]["startsAt"]
    resolved = copy.deepcopy(payload("resolved_hv1"))
    assert resolved["alerts"][0]["fingerprint"] == first["alerts"][0]["fingerprint"]
    assert resolved["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"


def test_concurrent_deliveries_from_ha_peers_make_one_plan(app, actioner_services):
    body = json.dumps(payload("firing_hv1"))
    barrier = threading.Barrier(8)
    codes = []

    def deliver():
        client = app.test_client()
        barrier.wait()
        codes.append(post(client, body).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert codes == [200] * 8
    assert len(actioner_services.journal.plans()) == 1
    assert len(actioner_services.worker.submitted) == 1


def _as(alertname, body, host=None):
    for alert in body["alerts"]:
        alert["labels"]["alertname"] = alertname
        if host is not None:
            alert["labels"].pop("host", None)
    return body


def test_underutilized_hosts_queue_one_consolidate_plan(client, actioner_services):
    answer = post(client, _as("HostUnderutilized", payload("firing_two_hosts"))).get_json()
    plan = actioner_services.journal.plan(answer["queued_plan"])
    assert (plan.mode, plan.hosts, plan.state) == ("consolidate", ("hv1", "hv3"), "queued")
    assert answer["queued_plans"] == {"consolidate": plan.id}
    # The repeat of the same alerts is a duplicate, like an overload's.
    again = post(client, _as("HostUnderutilized", payload("firing_two_hosts"))).get_json()
    assert (again["queued_plan"], again["duplicate"]) == (None, True)


def test_the_cluster_imbalance_needs_no_host_and_queues_a_balance_plan(client, actioner_services):
    body = _as("HostsImbalanced", payload("firing_hv1"), host=False)
    assert "host" not in body["alerts"][0]["labels"]
    answer = post(client, body).get_json()
    plan = actioner_services.journal.plan(answer["queued_plan"])
    assert (plan.mode, plan.hosts) == ("balance", ())
    assert answer["ignored"] == []


def test_an_overload_without_host_is_still_ignored(client, actioner_services):
    body = payload("firing_hv1")
    del body["alerts"][0]["labels"]["host"]
    answer = post(client, body).get_json()
    assert answer["queued_plan"] is None
    assert answer["ignored"][0].endswith("no host label")


def test_one_notification_with_several_modes_gives_one_plan_per_mode(client, actioner_services):
    body = payload("firing_two_hosts")
    body["alerts"][1]["labels"]["alertname"] = "HostUnderutilized"
    answer = post(client, body).get_json()
    queued = answer["queued_plans"]
    assert set(queued) == {"relieve", "consolidate"}
    journal = actioner_services.journal
    assert journal.plan(queued["relieve"]).hosts == ("hv1",)
    assert journal.plan(queued["consolidate"]).hosts == ("hv3",)
    # Relief first: an overload outranks freeing a host.
    assert actioner_services.worker.submitted == [queued["relieve"], queued["consolidate"]]
    assert answer["queued_plan"] == queued["relieve"]


def test_a_chronically_hot_host_queues_a_relieve_plan_for_it(client, actioner_services):
    answer = post(client, _as("HostChronicallyHot", payload("firing_hv1"))).get_json()
    plan = actioner_services.journal.plan(answer["queued_plan"])
    assert (plan.mode, plan.hosts, plan.state) == ("relieve", ("hv1",), "queued")
    assert answer["queued_plans"] == {"relieve": plan.id}
    again = post(client, _as("HostChronicallyHot", payload("firing_hv1"))).get_json()
    assert (again["queued_plan"], again["duplicate"]) == (None, True)


def test_a_chronically_hot_alert_needs_its_host(client, actioner_services):
    # Relieve is per host: unlike HostsImbalanced, a HostChronicallyHot without host is ignored.
    body = _as("HostChronicallyHot", payload("firing_hv1"), host=False)
    answer = post(client, body).get_json()
    assert answer["queued_plan"] is None
    assert answer["ignored"][0].endswith("no host label")


def test_the_webhook_maps_every_actioner_alert_to_its_mode():
    assert {name: mode_of(name) for name in WebhookConfig().alertnames} == {
        "HostSustainedOverload": "relieve",
        "HostChronicallyHot": "relieve",
        "HostUnderutilized": "consolidate",
        "HostsImbalanced": "balance",
    }
