"""virtbalance exporter: libvirt host capacity, VM usage and chunk topology for Prometheus."""

from virtbalance.namespace import require_namespace

require_namespace(__name__)
