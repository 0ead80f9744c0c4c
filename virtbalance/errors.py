"""Error types shared by every virtbalance component."""

from __future__ import annotations

from collections.abc import Iterable


class ValidationError(ValueError):
    """Input that does not validate; carries every problem found, each naming its field path."""

    def __init__(self, source: str, problems: Iterable[str]) -> None:
        self.source = source
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__(self._render())

    def _render(self) -> str:
        if len(self.problems) == 1:
            return f"{self.source}: {self.problems[0]}"
        lines = [f"{self.source}: {len(self.problems)} problems:"]
        lines.extend(f"  - {problem}" for problem in self.problems)
        return "\n".join(lines)


class ConfigError(ValidationError):
    """A configuration or policy file that cannot be used; nothing may start with it."""
