"""Read a config, policy or snapshot file: I/O errors, and a YAML file's syntax errors, become an error naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from virtbalance.errors import ConfigError, ValidationError


def read_text(path: Path, error: type[ValidationError] = ConfigError) -> str:
    """The file's UTF-8 text; ``error`` naming the file and the system's reason if it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(str(path), [f"cannot read: {exc.strerror}"]) from exc


def read_yaml(path: str | Path) -> Any:
    """The parsed document (None for an empty file); ConfigError if it cannot be read or parsed."""
    path = Path(path)
    text = read_text(path)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from exc
