"""The names every component shares: metrics, recording rules, alerts, labels and the migration record.

The exporter and the actioner serve these metrics; the rules, the dashboards, the actioner, the demo and
the simulator read them. A name changed here changes on both sides at once; a name spelt out elsewhere
would drift. ``tests/unit/virtbalance/test_contract.py`` checks each one against what is actually served and generated.
"""

from __future__ import annotations

from typing import NamedTuple

# --- metrics the exporter serves (drop-in names of the established libvirt exporter) ----------------

LIBVIRT_UP = "libvirt_up"
NODE_CPUS = "libvirt_node_cpus"
NODE_CPU_SECONDS = "libvirt_node_cpu_seconds_total"
NODE_MEMORY_TOTAL = "libvirt_node_memory_total_bytes"
NODE_MEMORY_FREE = "libvirt_node_memory_free_bytes"
NODE_MEMORY_AVAILABLE = "libvirt_node_memory_available_bytes"
DOMAIN_CPU_SECONDS = "libvirt_domain_info_cpu_time_seconds_total"
# Time vCPUs were runnable but waited for a real CPU: what a VM wants beyond what it got.
DOMAIN_VCPU_DELAY = "libvirt_domain_vcpu_delay_seconds_total"
DOMAIN_VIRTUAL_CPUS = "libvirt_domain_info_virtual_cpus"
DOMAIN_MAXIMUM_MEMORY = "libvirt_domain_info_maximum_memory_bytes"
DOMAIN_MEMORY_RSS = "libvirt_domain_memory_rss_bytes"
DOMAINS_NUMBER = "libvirt_domains_number"
# Ours, not the established exporter's: which chunk (domains that move together) a domain belongs to.
DOMAIN_CHUNK_INFO = "libvirt_domain_chunk_info"
SCRAPE_DURATION = "libvirt_exporter_scrape_duration_seconds"
SCRAPE_ERRORS = "libvirt_exporter_scrape_errors_total"

# --- metrics the actioner serves (counters without the ``_total`` the exposition adds) ---------------

MIGRATIONS = "virtbalance_migrations"
MIGRATION_DURATION = "virtbalance_migration_duration_seconds"
MIGRATION_RECENT_DURATION = "virtbalance_migration_recent_duration_seconds"
PLANS = "virtbalance_plans"
PLAN_DURATION = "virtbalance_plan_duration_seconds"
CHUNK_SPLIT = "virtbalance_chunk_split_seconds"
COOLDOWNS_ACTIVE = "virtbalance_cooldowns_active"
UNPLACEABLE_CHUNKS = "virtbalance_unplaceable_chunks"
# Plans made without a part of the forecast (peaks, averages) that Prometheus could not give.
PLANS_WITHOUT_FORECAST = "virtbalance_plans_without_forecast"
DOMAINS_AMBIGUOUS = "virtbalance_domains_ambiguous"
DOMAIN_AMBIGUOUS = "virtbalance_domain_ambiguous"
# 1 per domain and host while libvirt there holds a migration job of the domain it cannot end (the job
# outlived its abort, or the migration timeout with no migration of the actioner in flight).
MIGRATION_JOB_STUCK = "virtbalance_migration_job_stuck"
WEBHOOK_REQUESTS = "virtbalance_webhook_requests"
LAST_SUCCESSFUL_PLAN = "virtbalance_last_successful_plan_timestamp_seconds"
# 1 on a host the actioner emptied for power-off: off on purpose, so neither idle nor a blind spot.
HOST_EMPTIED = "virtbalance_host_emptied"

# --- recording rules (docs/architecture.md fixes them for the alerts and the dashboards) -------------

RECORD_CPU_DEMAND = "host:libvirt_cpu_demand:ratio"
RECORD_NODE_CPU = "host:libvirt_node_cpu_utilisation:ratio"
RECORD_CPU = "host:libvirt_cpu:ratio"
RECORD_MEMORY = "host:libvirt_memory_used:ratio"
RECORD_IMMOVABLE = "host:libvirt_cpu_immovable:cores"

# --- alerts ----------------------------------------------------------------------------------------

ALERT_OVERLOAD = "HostSustainedOverload"
ALERT_UNDERUTILIZED = "HostUnderutilized"
ALERT_IMBALANCED = "HostsImbalanced"
ALERT_HOT = "HostChronicallyHot"
ALERT_EXPORTER_DOWN = "LibvirtExporterDown"
ALERT_EXPORTER_ABSENT = "LibvirtExporterAbsent"
ALERT_LIBVIRT_DOWN = "LibvirtUnreachable"
ALERT_MIGRATIONS_FAILING = "VirtBalanceMigrationsFailing"
ALERT_UNPLACEABLE = "VirtBalanceChunkUnplaceable"
ALERT_AMBIGUOUS = "VirtBalanceDomainAmbiguous"
ALERT_JOB_STUCK = "VirtBalanceMigrationJobStuck"
# Not a rule's alert: the actioner posts it to Alertmanager for each move, so that an operator's
# silence on it freezes that move (actioner/silences.py), and the dashboards draw it.
ALERT_MIGRATION = "VirtBalanceMigration"

# --- labels ----------------------------------------------------------------------------------------

# Set by the scrape configuration, one per hypervisor; every rule aggregates by it.
LABEL_HOST = "host"
LABEL_DOMAIN = "domain"
LABEL_UUID = "uuid"
LABEL_CHUNK = "chunk"
# cpu or memory: which resource an overload alert is about.
LABEL_RESOURCE = "resource"
LABEL_ALERTNAME = "alertname"
# A move's two ends, on the migration alert and the migration metrics.
LABEL_SOURCE = "source"
LABEL_DESTINATION = "destination"


# --- the migration record --------------------------------------------------------------------------


class MigrationRecord(NamedTuple):
    """One finished migration; a plain ``(domain, source, destination, time)`` tuple works too.

    ``duration`` (seconds, 0 when unknown) lengthens the cooldown of a domain slow to migrate.
    """

    domain: str
    source: str
    destination: str
    time: float
    duration: float = 0.0


# What a migration history holds: a record, or the plain tuple with or without the duration.
HistoryItem = tuple[str, str, str, float] | tuple[str, str, str, float, float]
