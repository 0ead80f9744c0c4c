"""PromQL pieces the recording rules and the alerts share: the chosen CPU signal, emptied hosts."""

from __future__ import annotations

from virtbalance.contract import HOST_EMPTIED
from virtbalance.policy import Policy

SIGNAL_TEXT = {
    "demand": "the VMs' CPU demand",
    "node": "node CPU utilisation (VM demand where the node's CPU time is not exported)",
    "max": "the larger of the VMs' CPU demand and node CPU utilisation",
}


def indent(expr: str, by: str = "  ") -> str:
    """``expr`` with every line after the first indented ``by`` further (for nesting)."""
    return expr.replace("\n", "\n" + by)


def awake(expr: str) -> str:
    """``expr`` without the hosts the actioner emptied (unchanged where its metric is not scraped)."""
    return f"{expr} unless on (host) ({HOST_EMPTIED} == 1)"


def cpu_signal_expr(policy: Policy, demand: str, node: str) -> str:
    """The CPU signal the policy chose, from the demand and node expressions (record names or inline)."""
    if policy.cpu_signal == "demand":
        return demand
    if policy.cpu_signal == "node":
        # parenthesised: an alert compares it, and a comparison binds tighter than `or`
        return f"(\n  {indent(node)}\n  or on (host)\n  {indent(demand)}\n)"
    # max() over both skips a missing or NaN one: a host without node CPU time uses demand alone.
    # Each side gets its own `signal` label first, so `or` keeps both series of a host for max().
    return (
        "max by (host) (\n"
        f'  label_replace({indent(demand)}, "signal", "demand", "", "")\n'
        "  or\n"
        f'  label_replace({indent(node)}, "signal", "node", "", "")\n'
        ")"
    )
