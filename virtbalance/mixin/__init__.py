"""virtbalance's monitoring mixin: alerts, recording rules and dashboards generated from one Config."""
