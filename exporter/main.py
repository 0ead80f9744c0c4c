"""Entry point of ``virtbalance-exporter`` (placeholder until the exporter lands)."""

import sys


def main() -> int:
    print("virtbalance-exporter: not built yet", file=sys.stderr)
    return 1
