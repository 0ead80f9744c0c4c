"""Entry point of ``virtbalance-actioner`` (placeholder until the actioner lands)."""

import sys


def main() -> int:
    print("virtbalance-actioner: not built yet", file=sys.stderr)
    return 1
