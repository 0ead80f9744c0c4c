"""The demo: the whole stack on a lab, an overload, and a live narration of the rebalancing."""
