"""virtbalance simulator: replay VM utilisation traces through the policy and its predecessors."""
