"""virtbalance actioner: the Alertmanager webhook receiver that plans and live-migrates chunks."""
