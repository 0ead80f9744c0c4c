"""The components' folders install as subpackages of virtbalance and load under no other name."""

from __future__ import annotations

# The folders at the repository's top that install as ``virtbalance.<name>`` (virtbalance/<name> is a
# symbolic link to ../<name> in the checkout, a plain folder in the wheel).
COMPONENTS = ("actioner", "exporter", "lab", "simulator")


def require_namespace(name: str) -> None:
    """Refuse to load a component's package under its bare folder name (``actioner``).

    From a checkout the folder is on sys.path under both names; loaded as both, every module of it would
    exist twice in one process, with two copies of its classes, registries and locks.
    """
    if not name.startswith(f"{__package__}."):
        raise ImportError(f"{name} installs as {__package__}.{name}: import that name instead")
