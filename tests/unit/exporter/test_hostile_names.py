"""Names a tenant controls (domain, group metadata, devices, bridges) never break the exposition format."""

from __future__ import annotations

import shutil
import subprocess
from xml.sax.saxutils import quoteattr

from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.exporter.fake_libvirt import (
    RECORDED_BRIDGES,
    FakeBridges,
    FakeClock,
    FakeConnection,
    recorded_host,
)
from virtbalance.exporter.collector import LibvirtCollector
from virtbalance.exporter.main import build_app
from virtbalance.exporter.source import LibvirtSource
from virtbalance.exporter.topology import TopologyCache

# Quotes, backslashes, a newline, a brace, a hash and an undecodable byte (as Python holds it).
HOSTILE = 'we"ird\\na\nme}# \udcff end'
FIXED = HOSTILE.replace("\udcff", "\ufffd")


def _xml_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def hostile_text() -> bytes:
    """What /metrics serves when domain vbexp-e has hostile names everywhere a tenant can put one."""
    conn = FakeConnection(recorded_host())
    dom = conn.domain("vbexp-e")
    dom._name = HOSTILE
    dom.stats["block.0.path"] = f"/images/{HOSTILE}.img"
    dom.stats["block.0.name"] = f"vd{HOSTILE}"
    # The XML libvirt hands back: the same names, escaped the way libvirt escapes them.
    xml = dom.xml if isinstance(dom.xml, str) else ""
    xml = xml.replace('group="web"', f"group={quoteattr(HOSTILE)}")
    xml = xml.replace("<name>vbexp-e</name>", f"<name>{_xml_text(HOSTILE)}</name>")
    dom.xml = xml.replace("\udcff", "\ufffd")  # XML text is Unicode; the byte arrives replaced
    clock = FakeClock()
    source = LibvirtSource(
        connect=lambda: conn, clock=clock, timeout=5.0, topology_cache=TopologyCache(60.0)
    )
    bridges = {**RECORDED_BRIDGES, HOSTILE: True}
    collector = LibvirtCollector(source, bridges=FakeBridges(bridges), clock=clock)
    status: list[str] = []
    app = build_app(collector, "/metrics")
    body = b"".join(app({"PATH_INFO": "/metrics"}, lambda s, h: status.append(s)))
    assert status == ["200 OK"]
    return body


def test_hostile_names_render_valid_utf8_exposition_that_promtool_accepts():
    text = hostile_text()
    decoded = text.decode("utf-8")  # strict: the undecodable byte became U+FFFD
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with the prometheus package (scripts/bootstrap)"
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert "\ufffd" in decoded


def test_hostile_names_round_trip_through_a_parser():
    samples = [
        s for f in text_string_to_metric_families(hostile_text().decode()) for s in f.samples
    ]
    domains = {s.labels["domain"] for s in samples if "domain" in s.labels}
    assert FIXED in domains
    paths = {s.labels.get("source_file") for s in samples if s.labels.get("domain") == FIXED}
    assert f"/images/{FIXED}.img" in paths
    chunks = {s.labels.get("chunk") for s in samples if s.labels.get("domain") == FIXED}
    assert any(chunk and FIXED in chunk for chunk in chunks), chunks
    # Every other domain's series are still there, one sample per label set.
    assert {"vbexp-a", "vbexp-b", "vbexp-f"} <= domains
    keys = [(s.name, tuple(sorted(s.labels.items()))) for s in samples]
    assert len(keys) == len(set(keys))
