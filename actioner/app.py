"""The Flask app factory and its blueprints: the Alertmanager webhook, the plans/drain API, health and metrics."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException

from virtbalance.actioner.auth import PUBLIC_PATHS, RequestAuth
from virtbalance.actioner.config import Config
from virtbalance.actioner.journal import JournalLock
from virtbalance.actioner.payload_limits import BodyError, decode_body
from virtbalance.actioner.runtime import build_services
from virtbalance.actioner.services import Services
from virtbalance.actioner.webhook import PayloadError, mode_of, overload_alerts, parse_notification
from virtbalance.basic_auth import REALM, BasicAuth
from virtbalance.redact import redact

log = logging.getLogger(__name__)
MAX_PLANS_PER_REQUEST = 100
_MODE_ORDER = ("relieve", "consolidate", "balance")


def services() -> Services:
    return current_app.extensions["virtbalance"]  # type: ignore[no-any-return]


def _error(code: int, message: str, problems: list[str] | None = None) -> Response:
    body: dict[str, Any] = {"error": message}
    if problems:
        body["problems"] = problems
    response = jsonify(body)
    response.status_code = code
    return response


def _redacted(value: Any) -> Any:
    """``value`` with every string passed through redact (plans carry raw libvirt errors)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


webhook = Blueprint("webhook", __name__)


@webhook.after_request
def _count(response: Response) -> Response:
    services().metrics.webhook_requests.labels(code=str(response.status_code)).inc()
    return response


@webhook.post("/api/v1/alerts")
def receive_alerts() -> Response:
    """Validate, record, queue; answer at once. Dedupe happens in the journal (fingerprint + startsAt)."""
    svc = services()
    length = request.content_length
    if length is not None and length > svc.config.webhook.max_body_bytes:
        return _error(413, f"payload over {svc.config.webhook.max_body_bytes} bytes")
    # Read at most one byte past the limit: a chunked body has no Content-Length to check first.
    raw = request.stream.read(svc.config.webhook.max_body_bytes + 1)
    if len(raw) > svc.config.webhook.max_body_bytes:
        return _error(413, f"payload over {svc.config.webhook.max_body_bytes} bytes")
    try:
        data = decode_body(raw)
    except BodyError as exc:
        return _error(400, str(exc))
    try:
        notification = parse_notification(data)
    except PayloadError as exc:
        return _error(400, "not an Alertmanager version 4 notification", list(exc.problems))
    relevant, notes = overload_alerts(
        notification, svc.config.webhook.alertnames, svc.config.host_names
    )
    # One plan per mode the alerts ask for (relieve, consolidate, balance), in that order.
    by_mode: dict[str, list[Any]] = {}
    for alert in relevant:
        if alert.status == "firing":
            by_mode.setdefault(mode_of(alert.labels["alertname"]), []).append(alert)
    queued: dict[str, int] = {}
    for mode, alerts in sorted(by_mode.items(), key=lambda item: _MODE_ORDER.index(item[0])):
        keys = [a.key(notification.group_key) for a in alerts]
        plan_id = svc.journal.record_firing(
            keys, replan_after=svc.config.policy.host_settle, mode=mode
        )
        if plan_id is not None:
            queued[mode] = plan_id
            svc.worker.submit(plan_id)
            hosts = ", ".join(sorted({k.host for k in keys if k.host})) or "the cluster"
            log.info("plan %s (%s) queued for %s", plan_id, mode, hosts)
    resolved = [a.key(notification.group_key) for a in relevant if a.status == "resolved"]
    cancelled = svc.journal.record_resolved(resolved) if resolved else []
    for note in notes:
        log.info("%s", note)
    return jsonify(
        {
            "queued_plan": next(iter(queued.values()), None),
            "queued_plans": queued,
            "duplicate": bool(by_mode) and not queued,
            "cancelled_plans": cancelled,
            "ignored": notes,
        }
    )


api = Blueprint("api", __name__)


@api.get("/api/v1/plans")
def list_plans() -> Response:
    svc = services()
    try:
        # Each plan costs a journal query for its migrations: bounded per request.
        limit = max(1, min(MAX_PLANS_PER_REQUEST, int(request.args.get("limit", "20"))))
    except ValueError:
        return _error(400, "limit: expected a whole number")
    out = []
    for plan in svc.journal.plans(limit):
        item = plan.to_dict()
        item["migrations"] = [m.to_dict() for m in svc.journal.migrations(plan.id)]
        out.append(item)
    return jsonify(
        _redacted({"plans": out, "in_progress": svc.progress or {}, "worker": svc.worker.status()})
    )


@api.post("/api/v1/drain/<host>")
def drain(host: str) -> Response:
    svc = services()
    if host not in svc.config.host_names:
        return _error(404, f"unknown host {host!r} (known: {', '.join(svc.config.host_names)})")
    plan_id = svc.journal.create_plan("drain", f"drain:{host}", [host])
    svc.worker.submit(plan_id)
    response = jsonify({"queued_plan": plan_id, "mode": f"drain:{host}"})
    response.status_code = 202
    return response


health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz() -> Response:
    """Served without credentials: ok or unavailable, nothing about hosts, plans or the worker's work."""
    ok = bool(services().worker.status().get("alive", True))
    response = jsonify({"status": "ok" if ok else "unavailable"})
    response.status_code = 200 if ok else 503
    return response


@health.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(services().metrics.registry), mimetype=CONTENT_TYPE_LATEST)


def create_app(
    config: Config,
    *,
    services: Services | None = None,
    basic_auth: BasicAuth | None = None,
    journal_lock: JournalLock | None = None,
) -> Flask:
    """The WSGI app. Without ``services`` it builds the real ones (libvirt, journal, worker thread).

    ``basic_auth``: the web config's users, accepted besides the bearer token. ``journal_lock``: the
    journal's lock when the caller took it already (see build_services).
    """
    if services is None:
        services = build_services(config, lock=journal_lock)
    auth = RequestAuth(token=services.token, basic=basic_auth)
    app = Flask("actioner")
    # Flask refuses bigger bodies itself (413); one byte of slack lets the handler see that a chunked
    # body (no Content-Length, which werkzeug silently cuts at the limit) was too long.
    app.config["MAX_CONTENT_LENGTH"] = config.webhook.max_body_bytes + 1
    app.extensions["virtbalance"] = services
    app.register_blueprint(webhook)
    app.register_blueprint(api)
    app.register_blueprint(health)

    @app.before_request
    def _authenticate() -> Response | None:
        # Every route but the health check, before the body is parsed or any journal query is made.
        if request.path in PUBLIC_PATHS or auth.allows(request.headers.get("Authorization")):
            return None
        # The webhook blueprint's after_request counts its own answers; a wrong method is not routed there.
        if request.path == "/api/v1/alerts" and request.blueprint is None:
            app.extensions["virtbalance"].metrics.webhook_requests.labels(code="401").inc()
        response = _error(401, "missing or wrong credentials (bearer token or basic auth)")
        response.headers["WWW-Authenticate"] = f'Bearer realm="{REALM}", Basic realm="{REALM}"'
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        # Inside the webhook blueprint its after_request counts; routing errors (405) land here only.
        if request.path == "/api/v1/alerts" and request.blueprint is None:
            services_ = app.extensions["virtbalance"]
            services_.metrics.webhook_requests.labels(code=str(code)).inc()
        return _error(code, exc.description or exc.name)

    return app
