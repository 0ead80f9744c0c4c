"""virtbalance: chunk-aware automatic rebalancing for libvirt/KVM clusters."""

__version__ = "0.1.0"
