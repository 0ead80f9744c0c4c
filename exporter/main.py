"""Entry point of ``virtbalance-exporter``: parse flags, wire the collector, serve HTTP."""

from __future__ import annotations

import gzip
import html
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import libvirt

from virtbalance.basic_auth import BasicAuth, require_basic_auth
from virtbalance.errors import ConfigError
from virtbalance.exporter.bridges import SysfsBridgeInspector
from virtbalance.exporter.collector import CapacityOverride, LibvirtCollector
from virtbalance.exporter.config import ExporterConfig, parse_config
from virtbalance.exporter.exposition import CONTENT_TYPE
from virtbalance.exporter.jobs import JobWatch, start_event_loop
from virtbalance.exporter.procfs import QemuProcesses, is_local_system_uri
from virtbalance.exporter.rendering import Renderer
from virtbalance.exporter.source import DIRTYRATE_GROUP, STATS_GROUPS, LibvirtSource
from virtbalance.exporter.topology import TopologyCache
from virtbalance.libvirt_client import quiet_libvirt
from virtbalance.redact import install_log_redaction, redact, uri_secrets
from virtbalance.tls_server import SecureThreadingMixIn
from virtbalance.webconfig import WebConfig, load_web_config

log = logging.getLogger("virtbalance.exporter")
EXIT_USAGE = 2
LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
LOGFMT = "time=%(asctime)s level=%(levelname)s source=%(name)s msg=%(message)r"


class _JsonFormatter(logging.Formatter):
    """One JSON object per line (``--log.format json``)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "source": record.name,
            "msg": record.getMessage(),
        }
        return json.dumps(fields)


# Level 1: the exposition repeats itself so much that more effort saves little and costs CPU.
GZIP_LEVEL = 1


def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header allows gzip (``gzip`` or ``*``, a q-value above 0)."""
    for item in header.split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        q = params.strip()
        if not q.lower().startswith("q="):
            return True
        try:
            return float(q[2:]) > 0
        except ValueError:
            return False
    return False


StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def build_collector(config: ExporterConfig) -> LibvirtCollector:
    """The production wiring: a real libvirt connection, sysfs bridges, the monotonic clock."""
    quiet_libvirt()  # the exporter logs what matters itself
    if config.job_sweep_seconds > 0:
        # Domain events tell which domains may be in a job, so scrapes ask only those.
        start_event_loop()
    source = LibvirtSource(
        connect=lambda: libvirt.open(config.libvirt_uri),
        clock=time.monotonic,
        timeout=config.scrape_timeout,
        topology_cache=TopologyCache(config.xml_max_age),
        stats_groups=STATS_GROUPS | (DIRTYRATE_GROUP if config.collect_dirty_rate else 0),
        concurrency=config.stats_concurrency,
        jobs=JobWatch(time.monotonic, config.job_sweep_seconds),
        # On the hypervisor itself, RSS comes from /proc instead of a QEMU query per domain.
        processes=QemuProcesses() if is_local_system_uri(config.libvirt_uri) else None,
    )
    return LibvirtCollector(
        source=source,
        bridges=SysfsBridgeInspector(),
        clock=time.monotonic,
        capacity=CapacityOverride(cpus=config.host_cpus, memory_bytes=config.host_memory_bytes),
        private_bridges=config.private_bridges,
        public_bridges=config.public_bridges,
    )


def build_app(collector: LibvirtCollector, telemetry_path: str, health_path: str = "") -> WsgiApp:
    """The WSGI app: metrics on the telemetry path, a landing page on /, 404 elsewhere.

    With a health path, that path answers 200 while libvirt answers and 503 otherwise. The
    metrics are gzipped when the client accepts it (Prometheus does).

    The metrics are rendered by ``virtbalance.exporter.exposition`` rather than prometheus_client's
    ``generate_latest``: the same text, a tenth of the CPU for a host with many domains, and
    less again on the next scrapes (``virtbalance.exporter.rendering`` keeps what did not change).
    """
    path_html = html.escape(telemetry_path)
    landing = (
        "<html><head><title>virtbalance exporter</title></head><body>"
        "<h1>virtbalance libvirt exporter</h1>"
        f'<p><a href="{path_html}">Metrics</a></p>'
        + (f'<p><a href="{html.escape(health_path)}">Health</a></p>' if health_path else "")
        + "</body></html>"
    ).encode()
    renderer = Renderer()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == telemetry_path:
            body = renderer.render(collector.families())
            headers = [("Content-Type", CONTENT_TYPE), ("Vary", "Accept-Encoding")]
            if accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING", "")):
                body = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
                headers.append(("Content-Encoding", "gzip"))
            start_response("200 OK", [*headers, ("Content-Length", str(len(body)))])
            return [body]
        if health_path and path == health_path:
            if collector.healthy():
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [b"ok\n"]
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"libvirt is not reachable\n"]
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [landing]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    return app


def secure_app(app: WsgiApp, web: WebConfig) -> WsgiApp:
    """``app`` behind the web config's basic-auth users (unchanged when there are none)."""
    if not web.basic_auth_users:
        return app
    return require_basic_auth(app, BasicAuth(web.basic_auth_users))


class _ThreadingServer(SecureThreadingMixIn, WSGIServer):
    pass


def make_exporter_server(host: str, port: int, app: WsgiApp, web: WebConfig) -> WSGIServer:
    """The HTTP(S) server of the exporter: TLS and basic auth as the web config says."""
    server = make_server(
        host, port, secure_app(app, web), server_class=_ThreadingServer, handler_class=_QuietHandler
    )
    if web.tls is not None:
        assert isinstance(server, _ThreadingServer)
        server.ssl_context = web.tls.ssl_context()
        server.base_environ["HTTPS"] = "on"
    return server


class _QuietHandler(WSGIRequestHandler):
    # A client that stops sending mid-request frees its thread after this long.
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = parse_config(argv)
    except ConfigError as exc:
        print(f"virtbalance-exporter: {exc}", file=sys.stderr)
        return EXIT_USAGE
    handler = logging.StreamHandler()
    handler.setFormatter(
        _JsonFormatter() if config.log_format == "json" else logging.Formatter(LOGFMT)
    )
    logging.basicConfig(level=LOG_LEVELS[config.log_level], handlers=[handler])
    install_log_redaction(uri_secrets([config.libvirt_uri]))
    try:
        web = load_web_config(config.web_config_file)
    except ConfigError as exc:
        print(f"virtbalance-exporter: {exc}", file=sys.stderr)
        return EXIT_USAGE
    collector = build_collector(config)
    app = build_app(collector, config.telemetry_path, config.health_path)
    try:
        server = make_exporter_server(config.listen_host or "0.0.0.0", config.listen_port, app, web)
    except OSError as exc:
        print(
            f"virtbalance-exporter: cannot listen on {config.listen_host}:{config.listen_port}: {exc}",
            file=sys.stderr,
        )
        return 1
    log.info(
        "serving %s on %s://%s:%d for %s",
        config.telemetry_path,
        "https" if web.tls else "http",
        config.listen_host or "0.0.0.0",
        config.listen_port,
        redact(config.libvirt_uri),
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
