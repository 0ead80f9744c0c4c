"""Subcommands of the ``virtbalance`` CLI that belong to the core package."""
