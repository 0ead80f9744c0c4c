"""The exporter's HTTP server with a web config: TLS handshakes in connection threads, a connection cap, basic auth."""

from __future__ import annotations

import gzip
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from tests.fixtures.exporter.fake_libvirt import (
    RECORDED_BRIDGES,
    FakeBridges,
    FakeConnection,
    recorded_host,
)
from tests.http_fixtures import serving
from tests.tls_fixtures import PASSWORD, USER, Certs, make_certs, password_hash, write_web_config
from virtbalance.exporter.collector import LibvirtCollector
from virtbalance.exporter.main import build_app, make_exporter_server
from virtbalance.exporter.source import LibvirtSource
from virtbalance.exporter.topology import TopologyCache
from virtbalance.webconfig import WebConfig, load_web_config

pytestmark = pytest.mark.integration


def _app(environ, start_response):
    body = b"# TYPE x gauge\nx 1.0\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def test_metrics_are_gzipped_over_http_when_asked(tmp_path):
    """The real server, the exporter's app and the recorded host: a gzip body over a socket."""
    conn = FakeConnection(recorded_host())
    source = LibvirtSource(
        connect=lambda: conn, clock=time.monotonic, timeout=5.0, topology_cache=TopologyCache(60.0)
    )
    collector = LibvirtCollector(
        source, bridges=FakeBridges(RECORDED_BRIDGES), clock=time.monotonic
    )
    httpd = make_exporter_server("127.0.0.1", 0, build_app(collector, "/metrics"), WebConfig())
    with serving(httpd) as port:
        url = f"http://127.0.0.1:{port}/metrics"
        # requests would decompress on its own: read the raw stream to see what was sent.
        zipped = requests.get(url, headers={"Accept-Encoding": "gzip"}, stream=True, timeout=10)
        raw = zipped.raw.read(decode_content=False)
        plain = requests.get(url, headers={"Accept-Encoding": "identity"}, timeout=10)
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert int(zipped.headers["Content-Length"]) == len(raw) < len(plain.content) / 4
    assert "Content-Encoding" not in plain.headers
    text = gzip.decompress(raw).decode()
    assert 'libvirt_domain_state_code{domain="vbexp-a"' in text
    assert text.count("\n") == plain.text.count("\n")


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def server(tmp_path, certs) -> Iterator[tuple[str, object]]:
    web = load_web_config(
        write_web_config(tmp_path / "web.yml", certs, users={USER: password_hash()})
    )
    httpd = make_exporter_server("127.0.0.1", 0, _app, web)
    with serving(httpd) as port:
        yield f"https://127.0.0.1:{port}", httpd


def _get(url: str, certs: Certs, **kwargs) -> requests.Response:
    return requests.get(f"{url}/metrics", verify=str(certs.ca), timeout=10, **kwargs)


def test_basic_auth_over_tls(server, certs):
    url, _ = server
    assert _get(url, certs, auth=(USER, PASSWORD)).text == "# TYPE x gauge\nx 1.0\n"
    refused = _get(url, certs, auth=(USER, "wrong"))
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == 'Basic realm="virtbalance"'
    assert _get(url, certs).status_code == 401


def test_a_stalled_handshake_does_not_block_other_clients(server, certs):
    url, _ = server
    port = int(url.rsplit(":", 1)[1])
    # Connected, sending nothing: the handshake waits in its own thread.
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        assert _get(url, certs, auth=(USER, PASSWORD)).status_code == 200


def test_connections_over_the_cap_are_closed_at_once(server, certs):
    url, httpd = server
    httpd.max_connections = 1
    port = int(url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(certs.ca))
    held = context.wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="127.0.0.1"
    )
    with held, pytest.raises(requests.exceptions.ConnectionError):
        _get(url, certs, auth=(USER, PASSWORD))
    # The held connection's thread ends (the handler times out or sees it closed): room again.
    for _ in range(50):
        try:
            if _get(url, certs, auth=(USER, PASSWORD)).status_code == 200:
                return
        except requests.exceptions.ConnectionError:
            threading.Event().wait(0.2)
    raise AssertionError("the connection slot was not given back")
