"""The lab's rule and policy files, generated from the mixin into a folder (no repository needed)."""

from __future__ import annotations

from pathlib import Path

import yaml

from virtbalance.mixin import rulefile
from virtbalance.mixin.config import Config, load_policy

# The names of the checked-in files the same policy generates (alerting-rules/).
RULE_FILE = "virtbalance-lab.rules.yml"
POLICY_FILE = "policy-lab.yaml"


def write_lab_files(directory: Path, policy_file: Path | None = None) -> tuple[Path, Path]:
    """The lab profile (with ``policy_file`` over it) -> (rule file, policy file) written in ``directory``.

    Prometheus's rules and the actioner then agree on every threshold and window; a bad policy file
    raises ConfigError listing every problem, before anything is written.
    """
    policy = load_policy(policy_file, "lab")
    source = POLICY_FILE if policy_file is None else f"{policy_file.name} over the lab profile"
    directory.mkdir(parents=True, exist_ok=True)
    rules = directory / RULE_FILE
    rules.write_text(rulefile.render(Config(policy=policy), source=source), encoding="utf-8")
    merged = directory / POLICY_FILE
    merged.write_text(yaml.safe_dump(policy.to_mapping(), sort_keys=False), encoding="utf-8")
    return rules, merged
