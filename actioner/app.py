"""The Flask app factory and its blueprints: the Alertmanager webhook, the plans/drain API, health and metrics."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException

from actioner.config import Config
from actioner.runtime import build_services
from actioner.services import Services
from actioner.webhook import PayloadError, check_token, overload_alerts, parse_notification

log = logging.getLogger(__name__)


def services() -> Services:
    return current_app.extensions["virtbalance"]  # type: ignore[no-any-return]


def _error(code: int, message: str, problems: list[str] | None = None) -> Response:
    body: dict[str, Any] = {"error": message}
    if problems:
        body["problems"] = problems
    response = jsonify(body)
    response.status_code = code
    return response


def _authorised() -> bool:
    return check_token(request.headers.get("Authorization"), services().token)


webhook = Blueprint("webhook", __name__)


@webhook.after_request
def _count(response: Response) -> Response:
    services().metrics.webhook_requests.labels(code=str(response.status_code)).inc()
    return response


@webhook.post("/api/v1/alerts")
def receive_alerts() -> Response:
    """Validate, record, queue; answer at once. Dedupe happens in the journal (fingerprint + startsAt)."""
    svc = services()
    if not _authorised():
        return _error(401, "missing or wrong bearer token")
    length = request.content_length
    if length is not None and length > svc.config.webhook.max_body_bytes:
        return _error(413, f"payload over {svc.config.webhook.max_body_bytes} bytes")
    # Read at most one byte past the limit: a chunked body has no Content-Length to check first.
    raw = request.stream.read(svc.config.webhook.max_body_bytes + 1)
    if len(raw) > svc.config.webhook.max_body_bytes:
        return _error(413, f"payload over {svc.config.webhook.max_body_bytes} bytes")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        message = getattr(exc, "msg", str(exc))
        return _error(400, f"malformed JSON: {message}")
    try:
        notification = parse_notification(data)
    except PayloadError as exc:
        return _error(400, "not an Alertmanager version 4 notification", list(exc.problems))
    relevant, notes = overload_alerts(
        notification, svc.config.webhook.alertnames, svc.config.host_names
    )
    firing = [a.key(notification.group_key) for a in relevant if a.status == "firing"]
    resolved = [a.key(notification.group_key) for a in relevant if a.status == "resolved"]
    plan_id = (
        svc.journal.record_firing(firing, replan_after=svc.config.policy.host_settle)
        if firing
        else None
    )
    cancelled = svc.journal.record_resolved(resolved) if resolved else []
    if plan_id is not None:
        svc.worker.submit(plan_id)
        log.info("plan %s queued for %s", plan_id, ", ".join(sorted({k.host for k in firing})))
    for note in notes:
        log.info("%s", note)
    return jsonify(
        {
            "queued_plan": plan_id,
            "duplicate": bool(firing) and plan_id is None,
            "cancelled_plans": cancelled,
            "ignored": notes,
        }
    )


api = Blueprint("api", __name__)


@api.get("/api/v1/plans")
def list_plans() -> Response:
    svc = services()
    try:
        limit = max(1, min(500, int(request.args.get("limit", "20"))))
    except ValueError:
        return _error(400, "limit: expected a whole number")
    out = []
    for plan in svc.journal.plans(limit):
        item = plan.to_dict()
        item["migrations"] = [m.to_dict() for m in svc.journal.migrations(plan.id)]
        out.append(item)
    return jsonify({"plans": out, "in_progress": svc.progress or {}})


@api.post("/api/v1/drain/<host>")
def drain(host: str) -> Response:
    svc = services()
    if not _authorised():
        return _error(401, "missing or wrong bearer token")
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
    svc = services()
    worker = svc.worker.status()
    ok = bool(worker.get("alive", True))
    response = jsonify({"status": "ok" if ok else "worker stopped", "worker": worker})
    response.status_code = 200 if ok else 503
    return response


@health.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(services().metrics.registry), mimetype=CONTENT_TYPE_LATEST)


def create_app(config: Config, *, services: Services | None = None) -> Flask:
    """The WSGI app. Without ``services`` it builds the real ones (libvirt, journal, worker thread)."""
    if services is None:
        services = build_services(config)
    app = Flask("actioner")
    # Flask refuses bigger bodies itself (413); one byte of slack lets the handler see that a chunked
    # body (no Content-Length, which werkzeug silently cuts at the limit) was too long.
    app.config["MAX_CONTENT_LENGTH"] = config.webhook.max_body_bytes + 1
    app.extensions["virtbalance"] = services
    app.register_blueprint(webhook)
    app.register_blueprint(api)
    app.register_blueprint(health)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        # Inside the webhook blueprint its after_request counts; routing errors (405) land here only.
        if request.path == "/api/v1/alerts" and request.blueprint is None:
            services_ = app.extensions["virtbalance"]
            services_.metrics.webhook_requests.labels(code=str(code)).inc()
        return _error(code, exc.description or exc.name)

    return app
