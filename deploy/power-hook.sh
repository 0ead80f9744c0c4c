#!/bin/sh
# Example power hook for hosts the actioner emptied (virtbalance_host_emptied == 1). virtbalance never
# switches power itself: run something like this from cron or a systemd timer on a machine that may.
#
# It asks Prometheus which hosts have been emptied for at least HOLD (so a host that relief is about to
# wake again is left alone), and powers each off through POWER_OFF (a command of yours: IPMI, Redfish,
# a PDU...). It also silences nothing: the generated rules already leave emptied hosts out of
# LibvirtExporterDown and LibvirtUnreachable. Bringing a host back is up to you as well: when
# VirtBalanceChunkUnplaceable or HostSustainedOverload fires and hosts are off, POWER_ON one; once its
# libvirtd answers, the next relief plan may place on it ("waking HOST" in the plan's reasons).
#
#   PROMETHEUS=https://prometheus.example.org:9090 POWER_OFF='ipmitool -H %s-bmc chassis power soft' \
#     deploy/power-hook.sh
set -eu
PROMETHEUS=${PROMETHEUS:-http://127.0.0.1:9090}
HOLD=${HOLD:-15m}
POWER_OFF=${POWER_OFF:-echo would power off %s}
query="min_over_time(virtbalance_host_emptied[$HOLD]) == 1"
curl -fsS --get "$PROMETHEUS/api/v1/query" --data-urlencode "query=$query" |
    python3 -c 'import json, sys; [print(r["metric"]["host"]) for r in json.load(sys.stdin)["data"]["result"]]' |
    while read -r host; do
        # shellcheck disable=SC2059 # POWER_OFF is a printf template with one %s: the host
        sh -c "$(printf "$POWER_OFF" "$host")"
    done
