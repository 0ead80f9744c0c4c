"""virtbalance lab: a real multi-host libvirt cluster on one machine, in namespaces."""
