"""Read a YAML file for a config or policy, turning I/O and syntax errors into a ConfigError naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from virtbalance.errors import ConfigError


def read_yaml(path: str | Path) -> Any:
    """The parsed document (None for an empty file); ConfigError if it cannot be read or parsed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read: {exc.strerror}"]) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from exc
