"""virtbalance exporter: libvirt host capacity, VM usage and chunk topology for Prometheus."""
