"""Cached label sets: escaped once, rebuilt when a domain's name or topology changes."""

from __future__ import annotations

import pytest

from virtbalance.exporter.exposition import LabelSet
from virtbalance.exporter.labels import LabelCache
from virtbalance.exporter.topology import parse_topology

XML = """<domain type='qemu'><name>a</name><devices>
<interface type='bridge'><source bridge='{bridge}'/><target dev='vnet1'/></interface>
</devices></domain>"""


def test_label_text_is_escaped_once_and_values_kept():
    label_set = LabelSet(("a", "b"), ('say "hi"', "back\\slash\nx"))
    assert label_set.text == '{a="say \\"hi\\"",b="back\\\\slash\\nx"} '
    assert label_set.values == ('say "hi"', "back\\slash\nx")
    assert LabelSet((), ()).text == " "


def test_label_set_rejects_values_that_do_not_match_the_names():
    with pytest.raises(ValueError, match="do not match"):
        LabelSet(("a", "b"), ("only one",))


def test_domain_labels_are_reused_until_name_or_topology_changes():
    cache = LabelCache()
    first_topology = parse_topology(XML.format(bridge="lan1"))
    labels = cache.get("a", "u-1", first_topology)
    assert cache.get("a", "u-1", first_topology) is labels
    assert labels.net("vnet1").values == ("a", "u-1", "lan1", "vnet1")
    assert labels.vcpu(2).values == ("a", "u-1", "2")
    # Sorted by label name, as prometheus_client writes them.
    assert labels.block("/img", "vda").text == (
        '{domain="a",source_file="/img",target_device="vda",uuid="u-1"} '
    )
    # The device lists of one scrape: the same objects while the devices stay.
    disks = labels.blocks(("/img", "vda", None, "vdb"))
    assert [d.values for d in disks] == [("a", "u-1", "/img", "vda"), ("a", "u-1", "", "vdb")]
    assert labels.blocks(("/img", "vda", None, "vdb")) is disks
    assert [d.values[-1] for d in labels.vcpus(3)] == ["0", "1", "2"]
    # A re-read XML (hotplug moved the NIC) is a new topology object: labels follow it.
    moved = cache.get("a", "u-1", parse_topology(XML.format(bridge="lan2")))
    assert moved is not labels
    assert moved.net("vnet1").values == ("a", "u-1", "lan2", "vnet1")
    assert cache.get("b", "u-1", moved.topology).ident.values == ("b", "u-1")


def test_cache_forgets_domains_that_left():
    cache = LabelCache()
    cache.get("a", "u-1", None)
    cache.get("b", "u-2", None)
    cache.retain({"u-2"})
    assert len(cache) == 1
